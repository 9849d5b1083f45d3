"""Loopback GitLab REST API (v4) server for python-gitlab, backed by real bare repositories.

Projects: ``{repos}/{group}/{subgroup...}/{project}.git``, with numeric ids assigned in order of
discovery. Point python-gitlab at it with ``gitlab.Gitlab(server.url,
private_token=server.token)`` (``oauth_token`` / ``Authorization: Bearer`` and ``JOB-TOKEN``
work too). Git smart HTTP for the same projects is at ``/{group path}/{project}.git`` with
Basic auth ``oauth2:<token>`` (or ``gitlab-ci-token:<token>``, or any user name).

Endpoints (GitLab's field names, status codes and pagination headers):
``/api/v4/user``, ``/version``, ``/projects/{id or url-encoded path}``,
``/projects/{id}/repository/commits`` and ``/commits/{sha}``, ``/commits/{sha}/refs?type=``,
``/repository/branches`` and ``/branches/{name}``, ``/repository/tree?recursive=&ref=&path=``
(paginated: X-Page, X-Per-Page, X-Next-Page, X-Prev-Page, X-Total, X-Total-Pages, Link),
``/repository/archive[.tar.gz|.tar|.zip|.tar.bz2]?sha=&path=``,
``/repository/files/{url-encoded path}`` and ``/raw?ref=``, ``/repository/blobs/{sha}/raw``.

Archive top folder, as GitLab's ``Gitlab::Git::Repository#archive_prefix`` makes it with the API's
``append_sha: true``: ``{project}-{ref with / -> -}-{commit sha}`` plus ``-{path with / -> -}``
when ``path=`` is given; the ref is the ``sha`` parameter as given (default: the default branch
name), so ``sha=<full sha>`` gives ``{project}-{sha}-{sha}``. With ``path=`` the archive holds
``{prefix}/{path}/...``.

Auth: a wrong token gets 401 ``{"message": "401 Unauthorized"}``; a private project without a
token is a 404 ``{"message": "404 Project Not Found"}``.

Run standalone: ``python -m tests.infra.gitlab_server --repos DIR --token T [--public g/p]``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
import zlib
from collections.abc import Sequence
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote

from tests.infra import gitrepos
from tests.infra.gitrepos import ARCHIVE_FORMATS, BareRepo, CommitInfo
from tests.infra.httpbase import (
    RATE_LIMIT,
    TOO_MANY,
    Auth,
    Fault,
    Handler,
    LoopbackServer,
    Route,
    cli_main,
    link_header,
    page_params,
)

_P = r"/api/v4/projects/(?P<id>[^/]+)"
_MIME = {
    "tar.gz": "application/gzip",
    "tar": "application/x-tar",
    "zip": "application/zip",
    "tar.bz2": "application/x-bzip2",
}


class GitLabServer(LoopbackServer):
    kind = "gitlab"
    description = "Loopback GitLab REST API v4 (python-gitlab) + git smart HTTP, on bare repos."
    realm = "GitLab"
    token_prefix = "glpat-"
    token_headers = ("PRIVATE-TOKEN", "JOB-TOKEN")
    #: Answer compares as GitLab does when it gives up on a large one: `compare_timeout`.
    compare_times_out = False
    version = "17.0.0"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ids: dict[str, int] = {}
        self._paths: dict[int, str] = {}
        self._id_lock = threading.Lock()
        self._routes: list[Route] = [
            ("GET", re.compile(r"/api/v4/user"), self.get_user),
            ("GET", re.compile(r"/api/v4/(?:version|metadata)"), self.get_version),
            ("GET", re.compile(_P), self.get_project),
            ("GET", re.compile(_P + r"/repository/commits"), self.list_commits),
            ("GET", re.compile(_P + r"/repository/commits/(?P<sha>[^/]+)"), self.get_commit),
            ("GET", re.compile(_P + r"/repository/commits/(?P<sha>[^/]+)/refs"),
             self.commit_refs),
            ("GET", re.compile(_P + r"/repository/branches"), self.list_branches),
            ("GET", re.compile(_P + r"/repository/branches/(?P<branch>.+)"), self.get_branch),
            ("GET", re.compile(_P + r"/repository/tree"), self.get_tree),
            ("GET", re.compile(_P + r"/repository/compare"), self.compare),
            ("GET", re.compile(_P + r"/repository/archive(?:\.(?P<fmt>[a-z0-9.]+))?"),
             self.archive),
            ("GET", re.compile(_P + r"/repository/files/(?P<path>.+)/raw"), self.file_raw),
            ("GET", re.compile(_P + r"/repository/files/(?P<path>.+)"), self.file_get),
            ("GET", re.compile(_P + r"/repository/blobs/(?P<sha>[^/]+)/raw"), self.blob_raw),
        ]

    # ------------------------------------------------------------------ project ids
    def on_repo_created(self, handle: gitrepos.RepoHandle) -> None:
        self.project_id(handle.path)

    def project_id(self, path: str) -> int:
        """The numeric id of the project at ``path`` (assigned on first sight)."""
        with self._id_lock:
            if path not in self._ids:
                new_id = len(self._ids) + 1
                self._ids[path] = new_id
                self._paths[new_id] = path
            return self._ids[path]

    def _path_for_id(self, project_id: int) -> str | None:
        with self._id_lock:
            known = self._paths.get(project_id)
        if known is not None:
            return known
        for path in gitrepos.list_repos(self.repos_dir):
            self.project_id(path)
        with self._id_lock:
            return self._paths.get(project_id)

    # ------------------------------------------------------------------ plumbing
    def routes(self) -> Sequence[Route]:
        return self._routes

    def error(self, h: Handler, status: int, message: str) -> None:
        h.send_json(status, {"message": message})

    def not_found(self, h: Handler) -> None:
        h.send_json(404, {"error": "404 Not Found"})

    def fault_response(self, fault: Fault) -> tuple[int, dict[str, str], bytes, str]:
        status, headers, body, ctype = super().fault_response(fault)
        if fault.kind == TOO_MANY:
            now = int(time.time())
            retry_after = int(fault.params["retry_after"])
            headers.update({
                "RateLimit-Name": "throttle_authenticated_api",
                "RateLimit-Limit": "60",
                "RateLimit-Observed": "61",
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(now + retry_after),
                "RateLimit-ResetTime": formatdate(now + retry_after, usegmt=True),
            })
            return status, headers, b"Retry later\n", "text/plain"
        if fault.kind != RATE_LIMIT:
            return status, headers, f'{{"message":"{status} Server Error"}}'.encode(), ctype
        return status, headers, body, ctype

    def _project(self, h: Handler, m: re.Match[str]) -> tuple[str, int, BareRepo] | None:
        """(path, id, repo) if the caller may read the project; otherwise the error is sent."""
        state = h.auth_state()
        if state is Auth.INVALID:
            self.error(h, 401, "401 Unauthorized")
            return None
        ident = unquote(m.group("id"))
        path: str | None
        if ident.isdigit():
            path = self._path_for_id(int(ident))
        else:
            try:
                path = gitrepos.validate_repo_path(ident)
            except ValueError:
                path = None
        if path is None or not self.repo_exists(path) or (
            state is Auth.NONE and not self.is_public(path)
        ):
            self.error(h, 404, "404 Project Not Found")
            return None
        return path, self.project_id(path), BareRepo(self.repo_dir(path))

    def _paginated(self, h: Handler, items: list[Any], default: int = 20,
                   maximum: int = 100) -> tuple[list[Any], dict[str, str]]:
        page, per_page = page_params(h, default, maximum)
        total_pages = max((len(items) + per_page - 1) // per_page, 1)
        next_page = page + 1 if page < total_pages else None
        prev_page = page - 1 if page > 1 else None
        links: dict[str, int] = {}
        if prev_page:
            links["prev"] = prev_page
        if next_page:
            links["next"] = next_page
        links["first"] = 1
        links["last"] = total_pages
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Next-Page": str(next_page or ""),
            "X-Prev-Page": str(prev_page or ""),
            "X-Total": str(len(items)),
            "X-Total-Pages": str(total_pages),
            "Link": link_header(self.url, h.raw_path, h.query, links, per_page),
        }
        return items[(page - 1) * per_page: page * per_page], headers

    # ------------------------------------------------------------------ JSON shapes
    def user_json(self) -> dict[str, Any]:
        return {
            "id": 1,
            "username": self.user,
            "name": self.user,
            "state": "active",
            "locked": False,
            "avatar_url": f"{self.url}/uploads/-/system/user/avatar/1/avatar.png",
            "web_url": f"{self.url}/{self.user}",
            "created_at": "2020-01-01T00:00:00.000Z",
            "bio": "",
            "public_email": None,
            "email": f"{self.user}@example.test",
            "is_admin": False,
            "can_create_group": True,
            "can_create_project": True,
            "two_factor_enabled": False,
            "external": False,
            "private_profile": False,
        }

    def project_json(self, h: Handler, path: str, pid: int, repo: BareRepo) -> dict[str, Any]:
        web = f"{self.url}/{path}"
        name = path.rsplit("/", 1)[-1]
        namespace = path.rsplit("/", 1)[0] if "/" in path else self.user
        ns_name = namespace.rsplit("/", 1)[-1]
        is_user = namespace == self.user
        public = self.is_public(path)
        api = f"{self.url}/api/v4/projects/{pid}"
        return {
            "id": pid,
            "description": None,
            "name": name,
            "name_with_namespace": " / ".join(path.split("/")),
            "path": name,
            "path_with_namespace": path,
            "created_at": "2020-01-01T00:00:00.000Z",
            "default_branch": None if repo.is_empty() else repo.default_branch(),
            "tag_list": [],
            "topics": [],
            "ssh_url_to_repo": f"git@127.0.0.1:{path}.git",
            "http_url_to_repo": f"{web}.git",
            "web_url": web,
            "readme_url": None,
            "avatar_url": None,
            "forks_count": 0,
            "star_count": 0,
            "last_activity_at": "2020-01-01T00:00:00.000Z",
            "namespace": {
                "id": 1 if is_user else 1000 + (zlib_id(namespace) % 100000),
                "name": ns_name,
                "path": ns_name,
                "kind": "user" if is_user else "group",
                "full_path": namespace,
                "parent_id": None,
                "avatar_url": None,
                "web_url": f"{self.url}/{namespace}",
            },
            "visibility": "public" if public else "private",
            "archived": False,
            "empty_repo": repo.is_empty(),
            "repository_access_level": "enabled",
            "_links": {
                "self": api,
                "repo_branches": f"{api}/repository/branches",
                "members": f"{api}/members",
            },
            "permissions": {
                "project_access": {"access_level": 40, "notification_level": 3}
                if h.auth_state() is Auth.VALID else None,
                "group_access": None,
            },
        }

    def commit_json(self, path: str, pid: int, info: CommitInfo,
                    repo: BareRepo | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": info.sha,
            "short_id": info.sha[:8],
            "created_at": info.committer.gitlab,
            "parent_ids": info.parents,
            "title": info.title,
            "message": info.message + "\n",
            "author_name": info.author.name,
            "author_email": info.author.email,
            "authored_date": info.author.gitlab,
            "committer_name": info.committer.name,
            "committer_email": info.committer.email,
            "committed_date": info.committer.gitlab,
            "trailers": {},
            "extended_trailers": {},
            "web_url": f"{self.url}/{path}/-/commit/{info.sha}",
        }
        if repo is not None:
            files = repo.diff(info.parents[0] if info.parents else None, info.sha)
            additions = sum(f.additions for f in files)
            deletions = sum(f.deletions for f in files)
            data.update({
                "stats": {"additions": additions, "deletions": deletions,
                          "total": additions + deletions},
                "status": None,
                "project_id": pid,
                "last_pipeline": None,
            })
        return data

    def branch_json(self, path: str, pid: int, repo: BareRepo, name: str,
                    sha: str) -> dict[str, Any]:
        default = repo.default_branch()
        return {
            "name": name,
            "commit": self.commit_json(path, pid, repo.commit_info(sha)),
            "merged": False,
            "protected": name == default,
            "developers_can_push": False,
            "developers_can_merge": False,
            "can_push": True,
            "default": name == default,
            "web_url": f"{self.url}/{path}/-/tree/{name}",
        }

    # ------------------------------------------------------------------ endpoints
    def get_user(self, h: Handler, m: re.Match[str]) -> None:
        if h.auth_state() is not Auth.VALID:
            self.error(h, 401, "401 Unauthorized")
            return
        h.send_json(200, self.user_json())

    def get_version(self, h: Handler, m: re.Match[str]) -> None:
        if h.auth_state() is not Auth.VALID:
            self.error(h, 401, "401 Unauthorized")
            return
        h.send_json(200, {"version": self.version, "revision": "loopback", "kas": {
            "enabled": False, "externalUrl": None, "version": None}, "enterprise": False})

    def get_project(self, h: Handler, m: re.Match[str]) -> None:
        found = self._project(h, m)
        if found:
            path, pid, repo = found
            h.send_json(200, self.project_json(h, path, pid, repo))

    def _commit(self, h: Handler, repo: BareRepo, ref: str) -> str | None:
        sha = repo.resolve_commit(ref)
        if sha is None:
            self.error(h, 404, "404 Commit Not Found")
        return sha

    def get_commit(self, h: Handler, m: re.Match[str]) -> None:
        found = self._project(h, m)
        if not found:
            return
        path, pid, repo = found
        sha = self._commit(h, repo, unquote(m.group("sha")))
        if sha:
            h.send_json(200, self.commit_json(path, pid, repo.commit_info(sha), repo))

    def list_commits(self, h: Handler, m: re.Match[str]) -> None:
        found = self._project(h, m)
        if not found:
            return
        path, pid, repo = found
        if repo.is_empty():
            h.send_json(200, [])
            return
        ref = h.query.get("ref_name") or repo.default_branch()
        sha = repo.resolve_commit(ref)
        if sha is None:
            h.send_json(200, [])
            return
        file_path = h.query.get("path")
        shas = repo.rev_list(sha, *(["--", file_path] if file_path else []))
        page, headers = self._paginated(h, shas)
        h.send_json(200, [self.commit_json(path, pid, repo.commit_info(s)) for s in page],
                    headers)

    def commit_refs(self, h: Handler, m: re.Match[str]) -> None:
        found = self._project(h, m)
        if not found:
            return
        _path, _pid, repo = found
        sha = self._commit(h, repo, unquote(m.group("sha")))
        if not sha:
            return
        kind = h.query.get("type", "all")
        if kind not in ("branch", "tag", "all"):
            self.error(h, 400, "type does not have a valid value")
            return
        refs = [{"type": t, "name": n} for t, n in repo.refs_containing(sha, kind)]
        page, headers = self._paginated(h, refs)
        h.send_json(200, page, headers)

    def compare(self, h: Handler, m: re.Match[str]) -> None:
        """``repository/compare?from=&to=[&straight=true]``: the commits and the changed files.

        ``straight=true`` compares the two trees directly; otherwise from the merge base, as
        GitLab does. Each diff entry has GitLab's fields; its ``diff`` text is left empty.
        """
        found = self._project(h, m)
        if not found:
            return
        path, pid, repo = found
        if not h.query.get("from") or not h.query.get("to"):
            self.error(h, 400, "from, to are missing")
            return
        start = self._commit(h, repo, h.query["from"])
        end = self._commit(h, repo, h.query["to"]) if start else None
        if not start or not end:
            return
        base = start if h.query.get("straight") == "true" else repo.merge_base(start, end)

        def mode(value: str) -> str:
            return "0" if set(value) == {"0"} else value

        diffs = [{
            "old_path": f.path, "new_path": f.path,
            "a_mode": mode(f.old_mode), "b_mode": mode(f.new_mode),
            "new_file": f.status == "A", "renamed_file": False, "deleted_file": f.status == "D",
            "generated_file": False, "diff": "",
        } for f in repo.diff(base, end)]
        commits = repo.rev_list(f"{base}..{end}") if base else repo.rev_list(end)
        h.send_json(200, {
            "commit": self.commit_json(path, pid, repo.commit_info(end)),
            "commits": [self.commit_json(path, pid, repo.commit_info(c)) for c in commits],
            "diffs": diffs,
            "compare_timeout": self.compare_times_out,
            "compare_same_ref": start == end,
            "web_url": f"{self.url}/{path}/-/compare/{start}...{end}",
        })

    def list_branches(self, h: Handler, m: re.Match[str]) -> None:
        found = self._project(h, m)
        if not found:
            return
        path, pid, repo = found
        branches = repo.branches()
        search = h.query.get("search")
        if search:
            branches = [(n, s) for n, s in branches if search in n]
        page, headers = self._paginated(h, branches)
        h.send_json(200, [self.branch_json(path, pid, repo, n, s) for n, s in page], headers)

    def get_branch(self, h: Handler, m: re.Match[str]) -> None:
        found = self._project(h, m)
        if not found:
            return
        path, pid, repo = found
        name = unquote(m.group("branch"))
        sha = dict(repo.branches()).get(name)
        if sha is None:
            self.error(h, 404, "404 Branch Not Found")
            return
        h.send_json(200, self.branch_json(path, pid, repo, name, sha))

    def get_tree(self, h: Handler, m: re.Match[str]) -> None:
        found = self._project(h, m)
        if not found:
            return
        _path, _pid, repo = found
        ref = h.query.get("ref") or repo.default_branch()
        sha = None if repo.is_empty() else repo.resolve_commit(ref)
        sub = (h.query.get("path") or "").strip("/")
        entry = repo.entry(sha, sub) if sha else None
        if sha is None or entry is None or entry.type != "tree":
            self.error(h, 404, "404 Tree Not Found")
            return
        recursive = h.query.get("recursive", "false").lower() in ("true", "1", "yes")
        entries = [
            {"id": e.sha, "name": e.name, "type": e.type, "path": e.path, "mode": e.mode}
            for e in repo.ls_tree(sha, sub, recursive=recursive)
        ]
        page, headers = self._paginated(h, entries)
        h.send_json(200, page, headers)

    def archive(self, h: Handler, m: re.Match[str]) -> None:
        found = self._project(h, m)
        if not found:
            return
        path, _pid, repo = found
        fmt = m.group("fmt") or "tar.gz"
        if fmt not in ARCHIVE_FORMATS:
            self.not_found(h)
            return
        ref = h.query.get("sha") or ("" if repo.is_empty() else repo.default_branch())
        sha = repo.resolve_commit(ref) if ref else None
        sub = h.query.get("path") or None
        if sha is None or (sub and repo.entry(sha, sub.strip("/")) is None):
            self.error(h, 404, "404 File Not Found")
            return
        segments = [path.rsplit("/", 1)[-1], ref.replace("/", "-"), sha]
        if sub:
            segments.append(sub.replace("/", "-"))
        prefix = "-".join(segments)
        ext = ARCHIVE_FORMATS[fmt]
        body = repo.archive_stream(sha, fmt, prefix + "/", [sub.strip("/")] if sub else [])
        h.send_download_stream(body, _MIME[ext], {
            "Content-Disposition": f'attachment; filename="{prefix}.{ext}"',
            "Content-Transfer-Encoding": "binary",
        })

    def _file(self, h: Handler, m: re.Match[str]) -> tuple[Any, ...] | None:
        found = self._project(h, m)
        if not found:
            return None
        _path, _pid, repo = found
        ref = h.query.get("ref") or ("" if repo.is_empty() else repo.default_branch())
        sha = repo.resolve_commit(ref) if ref else None
        file_path = unquote(m.group("path")).strip("/")
        entry = repo.entry(sha, file_path) if sha else None
        if entry is None or entry.type != "blob":
            self.error(h, 404, "404 File Not Found")
            return None
        return repo, ref, sha, entry

    def file_raw(self, h: Handler, m: re.Match[str]) -> None:
        found = self._file(h, m)
        if found:
            repo, ref, sha, entry = found
            data = repo.blob(entry.sha)
            h.send_download(data, "text/plain; charset=utf-8", {
                "X-Gitlab-Blob-Id": entry.sha,
                "X-Gitlab-Commit-Id": sha,
                "X-Gitlab-File-Name": _header_safe(entry.name),
                "X-Gitlab-File-Path": _header_safe(entry.path),
                "X-Gitlab-Ref": _header_safe(ref),
                "X-Gitlab-Size": str(len(data)),
                "X-Gitlab-Execute-Filemode": str(entry.mode == "100755").lower(),
            })

    def file_get(self, h: Handler, m: re.Match[str]) -> None:
        found = self._file(h, m)
        if found:
            repo, ref, sha, entry = found
            data = repo.blob(entry.sha)
            last = repo.rev_list("-1", sha, "--", entry.path)
            h.send_json(200, {
                "file_name": entry.name,
                "file_path": entry.path,
                "size": len(data),
                "encoding": "base64",
                "content_sha256": hashlib.sha256(data).hexdigest(),
                "ref": ref,
                "blob_id": entry.sha,
                "commit_id": sha,
                "last_commit_id": last[0] if last else sha,
                "execute_filemode": entry.mode == "100755",
                "content": base64.b64encode(data).decode("ascii"),
            })

    def blob_raw(self, h: Handler, m: re.Match[str]) -> None:
        found = self._project(h, m)
        if not found:
            return
        _path, _pid, repo = found
        sha = unquote(m.group("sha"))
        if not re.fullmatch(r"[0-9a-f]{40}", sha) or repo.resolve_blob(sha) is None:
            self.error(h, 404, "404 Blob Not Found")
            return
        h.send_download(repo.blob(sha), "text/plain; charset=utf-8")


def zlib_id(text: str) -> int:
    return zlib.crc32(text.encode("utf-8")) & 0x7FFFFFFF


def _header_safe(value: str) -> str:
    return value.encode("utf-8").decode("latin-1")


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(GitLabServer, argv)


if __name__ == "__main__":
    raise SystemExit(main())
