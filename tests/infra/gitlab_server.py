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
token is a 404 ``{"message": "404 Project Not Found"}``. Token scopes and CI job tokens as GitLab
has them (docs.gitlab.com/security/tokens/access_token_scopes; ``lib/api/files.rb``,
``lib/api/repositories.rb``): a ``read_repository`` token reads only the files API (and git over
HTTP), anything else answers 403 ``insufficient_scope``; a job token (``add_job_token``) works
only in the ``JOB-TOKEN`` header on ``repository/files/:path/raw``, and as
``gitlab-ci-token:<token>`` for git over HTTP; elsewhere it is a 401.

As GitLab, also: ``repository/compare``'s ``straight`` is a Grape Boolean (``True``, ``1``,
``yes`` ... are true; anything else not listed is a 400); an archive of a ``path`` the commit
does not have is 200 with an empty body; archives hold Git LFS objects in place of their
pointers (``include_lfs_blobs``, default true); the API can live below a relative URL root
(``relative_root="/gitlab"``). gitlab.com's archive rate limit (5 a minute per project and
user) is on when ``archive_limit`` is set (``gitlab_com=True``); self-managed GitLab has it off.

Run standalone: ``python -m tests.infra.gitlab_server --repos DIR --token T [--public g/p]``.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
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
    _GIT_PATH,
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
# Grape's Boolean coercion (dry-types Params::Bool): `TRUE_VALUES` / `FALSE_VALUES`.
_TRUE = frozenset({"1", "on", "On", "ON", "t", "true", "True", "TRUE", "T", "y", "yes", "Yes",
                   "YES", "Y"})
_FALSE = frozenset({"0", "off", "Off", "OFF", "f", "false", "False", "FALSE", "F", "n", "no",
                    "No", "NO", "N"})
# Scopes that may read each kind of endpoint (docs.gitlab.com/security/tokens/
# access_token_scopes; files.rb: `allow_access_with_scope :read_repository` for GET/HEAD).
_API_READ = frozenset({"api", "read_api"})
_FILES_READ = _API_READ | {"read_repository"}
_FILES = re.compile(_P + r"/repository/files/.+")
_JOB_TOKEN_ROUTES = re.compile(_P + r"/repository/files/.+/raw")  # job_token_allowed: true
# lib/gitlab/application_rate_limiter.rb: `project_repositories_archive: { threshold: 5,
# interval: 1.minute }`; lib/gitlab/repository_archive_rate_limiter.rb: scope
# [project, user], anonymous threshold 100; lib/api/repositories.rb answers with
# `render_api_error!({ error: ... }, 429)` and sets no Retry-After or RateLimit-* header.
GITLAB_COM_ARCHIVE_LIMIT = 5
ANONYMOUS_ARCHIVE_LIMIT = 100
ARCHIVE_LIMIT_MESSAGE = "This archive has been requested too many times. Try again later."
# workhorse/internal/git/archive.go setArchiveHeaders: zip is application/zip, the rest
# application/octet-stream.
_MIME = {
    "tar.gz": "application/octet-stream",
    "tar": "application/octet-stream",
    "zip": "application/zip",
    "tar.bz2": "application/octet-stream",
}


class GitLabServer(LoopbackServer):
    kind = "gitlab"
    description = "Loopback GitLab REST API v4 (python-gitlab) + git smart HTTP, on bare repos."
    realm = "GitLab"
    token_prefix = "glpat-"
    token_headers = ("PRIVATE-TOKEN",)
    #: Answer compares as GitLab does when it gives up on a large one: `compare_timeout`.
    compare_times_out = False
    # 17.7 and later answer repository/tree of a missing path with 404 (before: 200 and []).
    version = "17.7.0"

    def __init__(self, *args: Any, relative_root: str = "", gitlab_com: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.relative_root = "/" + relative_root.strip("/") if relative_root.strip("/") else ""
        #: gitlab.com's archive limit per project and user a minute (None: self-managed).
        self.archive_limit: int | None = GITLAB_COM_ARCHIVE_LIMIT if gitlab_com else None
        self._archive_counts: dict[tuple[str, str | None, int], int] = {}
        self.token_scopes: dict[str, frozenset[str]] = {t: frozenset({"api"})
                                                        for t in self.tokens}
        self.job_tokens: set[str] = set()
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

    # ------------------------------------------------------------------ tokens
    def add_token(self, token: str, scopes: Sequence[str] = ("api",)) -> None:
        """A personal/project access token with these scopes."""
        self.tokens = self.tokens | {token}
        self.token_scopes[token] = frozenset(scopes)

    def add_job_token(self, token: str) -> None:
        """A CI/CD job token (CI_JOB_TOKEN) of a job that may read every project here."""
        self.job_tokens.add(token)

    # ------------------------------------------------------------------ plumbing
    @property
    def external_url(self) -> str:
        """The URL GitLab is configured with (with its relative URL root)."""
        return self.url + self.relative_root

    def clone_url(self, repo_path: str) -> str:
        return f"{self.external_url}/{gitrepos.validate_repo_path(repo_path)}.git"

    def routes(self) -> Sequence[Route]:
        return self._routes

    def handle(self, h: Handler) -> None:
        root = self.relative_root
        if root:
            # docs.gitlab.com/install/relative_url: everything, API and git, is below the root.
            if not (h.raw_path == root or h.raw_path.startswith(root + "/")):
                self.not_found(h)
                return
            h.route_path = h.raw_path[len(root):] or "/"
        if _GIT_PATH.match(h.route_path):
            self._git_job_token(h)
        elif h.route_path.startswith("/api/v4/") and not self._api_auth(h):
            return
        super().handle(h)

    def _git_job_token(self, h: Handler) -> None:
        """Git over HTTP accepts a job token as ``gitlab-ci-token:<token>``."""
        scheme, _, value = (h.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return
        if user == "gitlab-ci-token" and password in self.job_tokens:
            h.credentials_override = (Auth.VALID, password)

    def _api_auth(self, h: Handler) -> bool:
        """Job tokens and scopes, as GitLab checks them; False when the answer is sent."""
        job = h.headers.get("JOB-TOKEN") or h.query.get("job_token")
        if job is not None:
            if job in self.job_tokens and _JOB_TOKEN_ROUTES.fullmatch(h.route_path):
                h.credentials_override = (Auth.VALID, job)
                return True
            self.error(h, 401, "401 Unauthorized")
            return False
        state, token = h.credentials()
        if state is Auth.VALID and token is not None:
            allowed = _FILES_READ if _FILES.fullmatch(h.route_path) else _API_READ
            if not self.token_scopes.get(token, frozenset()) & allowed:
                h.send_json(403, {
                    "error": "insufficient_scope",
                    "error_description": "The request requires higher privileges than "
                                         "provided by the access token.",
                    "scope": "api read_api",
                })
                return False
        return True

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
        web = f"{self.external_url}/{path}"
        name = path.rsplit("/", 1)[-1]
        namespace = path.rsplit("/", 1)[0] if "/" in path else self.user
        ns_name = namespace.rsplit("/", 1)[-1]
        is_user = namespace == self.user
        public = self.is_public(path)
        api = f"{self.external_url}/api/v4/projects/{pid}"
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

        ``straight`` true compares the two trees directly; false (the default) from the merge
        base, as GitLab does (lib/api/repositories.rb: `optional :straight, type: Boolean,
        default: false`; python-gitlab sends Python's True as ``True``). Each diff entry has
        GitLab's fields; its ``diff`` text is left empty.
        """
        found = self._project(h, m)
        if not found:
            return
        path, pid, repo = found
        if not h.query.get("from") or not h.query.get("to"):
            self.error(h, 400, "from, to are missing")
            return
        straight = h.query.get("straight", "false")
        if straight not in _TRUE | _FALSE:
            h.send_json(400, {"error": "straight is invalid"})
            return
        start = self._commit(h, repo, h.query["from"])
        end = self._commit(h, repo, h.query["to"]) if start else None
        if not start or not end:
            return
        base = start if straight in _TRUE else repo.merge_base(start, end)

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
        if self._archive_limited(h, path):
            return
        ref = h.query.get("sha") or ("" if repo.is_empty() else repo.default_branch())
        sha = repo.resolve_commit(ref) if ref else None
        sub = h.query.get("path") or None
        if sha is None:
            self.error(h, 404, "404 File Not Found")
            return
        segments = [path.rsplit("/", 1)[-1], ref.replace("/", "-"), sha]
        if sub:
            segments.append(sub.replace("/", "-"))
        prefix = "-".join(segments)
        ext = ARCHIVE_FORMATS[fmt]
        headers = {"Content-Disposition": f'attachment; filename="{prefix}.{ext}"',
                   "Content-Transfer-Encoding": "binary"}
        if sub and repo.entry(sha, sub.strip("/")) is None:
            # Gitaly refuses the path ("path doesn't exist") after Workhorse has sent its 200
            # (workhorse/internal/git/archive.go: "we're stuck always returning a HTTP 200");
            # the body stays empty (gitlab-org/gitlab#471955).
            h.send_data(200, b"", _MIME[ext], headers)
            return
        paths = [sub.strip("/")] if sub else []
        body = repo.archive_stream(sha, fmt, prefix + "/", paths)
        include_lfs = h.query.get("include_lfs_blobs", "true") not in _FALSE
        if include_lfs and ext in ("tar.gz", "tar") and self.lfs_objects:
            # include_lfs_blobs, default true (lib/api/repositories.rb; GitLab 13.5 and later).
            tar = self.smudge_lfs(b"".join(repo.archive_stream(sha, "tar", prefix + "/", paths)))
            body = iter([gzip.compress(tar) if ext == "tar.gz" else tar])
        h.send_download_stream(body, _MIME[ext], headers)

    def _archive_limited(self, h: Handler, path: str) -> bool:
        """gitlab.com's archive limit: a fixed window per whole minute (`period_key =
        Time.now.to_i.divmod(interval)`), every request counted; True when it answered 429."""
        if self.archive_limit is None:
            return False
        _state, token = h.credentials()
        window = int(self.clock() // 60)
        limit = self.archive_limit if token else ANONYMOUS_ARCHIVE_LIMIT
        key = (path, token, window)
        with self._lock:
            self._archive_counts[key] = count = self._archive_counts.get(key, 0) + 1
        if count <= limit:
            return False
        body = {"message": {"error": ARCHIVE_LIMIT_MESSAGE}}
        h.send_data(429, json.dumps(body).encode(), "application/json")
        return True

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
