"""Loopback GitHub REST API server for PyGithub, backed by real bare repositories.

Repositories: ``{repos}/{owner}/{repo}.git``. Point PyGithub at it with
``Github(base_url=server.url, auth=Auth.Token(server.token))`` (``/api/v3`` as a prefix works
too, like GitHub Enterprise). Git smart HTTP for the same repositories is at
``/{owner}/{repo}.git`` with the same token.

Endpoints (GitHub's field names and status codes):
``GET /user``, ``/users/{login}``, ``/rate_limit``, ``/repos/{o}/{r}``,
``/repos/{o}/{r}/commits`` and ``/commits/{ref}`` (422 "No commit found for SHA" when missing),
``/git/commits/{sha}``, ``/branches``, ``/branches/{b}``, ``/compare/{base}...{head}``,
``/tarball/{ref}`` and ``/zipball/{ref}`` (302 to ``{codeload_url}/{o}/{r}/legacy.tar.gz/{sha}``
on a second port, another origin like codeload.github.com, whose archive's top folder is
``{owner}-{repo}-{sha[:7]}/``; private repositories get a one-off ``?token=`` in that URL and
codeload accepts nothing else, as the redirect drops the Authorization header),
``/contents/{path}?ref=`` (files > 1 MiB come with ``encoding: none`` and empty content, like
GitHub; ``download_url`` points at the second port too, like raw.githubusercontent.com),
``/git/trees/{sha}?recursive=1`` (truncated beyond 100,000 entries or 7 MB),
``/git/blobs/{sha}``.

Limits, as github.com has them: the primary rate limit (5,000 requests an hour with a token,
60 without, in a window that starts with the first request) is enforced: the request after the
last one answers 403 with ``X-RateLimit-Remaining: 0`` (the limits and the window are
attributes, and ``clock`` drives the window). Secondary limits are a fault switch
(``secondary_rate_limit_next``), as they depend on load. Git LFS: archives hold the pointer
files unless ``include_lfs_in_archives(repo)`` turns on the repository's setting.

The contents API answers from one long-lived ``git cat-file --batch-command`` per repository
when ``ref`` is a full commit SHA (objects never change), instead of spawning git four times per
request: a per-file walk of 1,000 files then takes seconds, not minutes. Branch and tag names
still resolve through ``git rev-parse`` on each request, so a push is seen at once.

Auth: ``Authorization: token X`` / ``Bearer X`` / Basic. A wrong token gets 401
``Bad credentials``; a private repository without a token is a 404. Every answer carries
X-RateLimit-* headers.

Run standalone: ``python -m tests.infra.github_server --repos DIR --token T [--public o/r]``.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import re
import secrets
import socket
import subprocess
import threading
import time
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, unquote

from tests.infra import gitrepos
from tests.infra.gitrepos import BareRepo, CommitInfo, TreeEntry
from tests.infra.httpbase import (
    PRIMARY_MESSAGE,
    RATE_LIMIT_DOCS,
    Auth,
    Handler,
    LoopbackServer,
    Route,
    cli_main,
    link_header,
    page_params,
)

DOCS = "https://docs.github.com/rest"
CONTENT_LIMIT = 1024 * 1024  # the contents API returns content only up to 1 MiB
# docs.github.com/rest/git/trees#get-a-tree: "The limit for the tree array is 100,000 entries
# with a maximum size of 7 MB when using the recursive parameter."
TREE_LIMIT = 100_000
TREE_BYTES = 7 * 1024 * 1024
# "For private repositories, these links are temporary and expire after five minutes."
# (docs.github.com/rest/repos/contents#download-a-repository-archive-tar)
DOWNLOAD_TOKEN_TTL = 300.0
# docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api: 60 requests an hour
# unauthenticated, 5,000 with a personal access token.
RATE_LIMIT = 5000
ANONYMOUS_RATE_LIMIT = 60
RATE_WINDOW = 3600
_R = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"


def _id(text: str) -> int:
    return zlib.crc32(text.encode("utf-8")) & 0x7FFFFFFF


def _node_id(kind: str, text: str) -> str:
    return base64.b64encode(f"{kind}:{text}".encode()).decode().rstrip("=")


def _b64_lines(data: bytes) -> str:
    """Base64 wrapped at 60 characters with a trailing newline, as GitHub sends it."""
    text = base64.b64encode(data).decode("ascii")
    return "".join(text[i:i + 60] + "\n" for i in range(0, len(text), 60))


def _q(path: str) -> str:
    return quote(path, safe="/")


_FULL_SHA = re.compile(r"[0-9a-f]{40}")


class _BatchedRepo(BareRepo):
    """A BareRepo that reads objects through one persistent ``git cat-file --batch-command``.

    Only object lookups go through it (a commit named by its full SHA, trees, blobs): they are
    immutable, and cat-file rescans the packs when an object is missing, so objects pushed later
    are found. Anything naming a ref falls back to BareRepo's one-off git processes.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                ["git", "cat-file", "--batch-command"], cwd=self.path, env=gitrepos.git_env(),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return self._proc

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()

    def _ask(self, command: str, name: str) -> tuple[str, str, int, bytes] | None:
        """(oid, type, size, content) of object ``name``; content only for ``contents``."""
        if "\n" in name or "\0" in name:
            return None
        with self._lock:
            proc = self._start()
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(f"{command} {name}\n".encode())
            proc.stdin.flush()
            header = proc.stdout.readline().decode(errors="replace").split()
            if len(header) != 3:  # "<name> missing" / "<name> ambiguous"
                return None
            oid, kind, size = header[0], header[1], int(header[2])
            data = b""
            if command == "contents":
                data = proc.stdout.read(size + 1)[:-1]  # content, then a newline
        return oid, kind, size, data

    def resolve_commit(self, ref: str) -> str | None:
        if not _FULL_SHA.fullmatch(ref):
            return super().resolve_commit(ref)
        found = self._ask("info", f"{ref}^{{commit}}")
        return found[0] if found else None

    def blob(self, sha: str) -> bytes:
        found = self._ask("contents", sha) if _FULL_SHA.fullmatch(sha) else None
        return found[3] if found and found[1] == "blob" else super().blob(sha)

    def _tree(self, treeish: str) -> list[TreeEntry] | None:
        """Entries of a tree object in git's order (its binary format parsed); names only."""
        found = self._ask("contents", treeish)
        if found is None or found[1] != "tree":
            return None
        data, entries, at = found[3], [], 0
        while at < len(data):
            space = data.index(b" ", at)
            nul = data.index(b"\0", space)
            mode = data[at:space].decode().rjust(6, "0")
            name = data[space + 1:nul].decode("utf-8", errors="replace")
            oid = data[nul + 1:nul + 21].hex()
            at = nul + 21
            kind = {"04": "tree", "16": "commit"}.get(mode[:2], "blob")
            size = None
            if kind == "blob":
                info = self._ask("info", oid)
                size = info[2] if info else 0
            entries.append(TreeEntry(mode, kind, oid, size, name))
        return entries

    def entry(self, treeish: str, path: str) -> TreeEntry | None:
        if not _FULL_SHA.fullmatch(treeish):
            return super().entry(treeish, path)
        path = path.strip("/")
        if not path:
            tree = self._ask("info", f"{treeish}^{{tree}}")
            return TreeEntry("040000", "tree", tree[0], None, "") if tree else None
        parent, _, name = path.rpartition("/")
        for item in self._tree(f"{treeish}:{parent}") or []:
            if item.path == name:
                return TreeEntry(item.mode, item.type, item.sha, item.size, path)
        return None

    def ls_tree(self, treeish: str, path: str = "", recursive: bool = False) -> list[TreeEntry]:
        if recursive or not _FULL_SHA.fullmatch(treeish):
            return super().ls_tree(treeish, path, recursive)
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        items = self._tree(f"{treeish}:{path.strip('/')}") or []
        return [TreeEntry(e.mode, e.type, e.sha, e.size, prefix + e.path) for e in items]


class CodeloadServer(LoopbackServer):
    """codeload.github.com and raw.githubusercontent.com: the archive and raw-file hosts.

    Another origin than the API (its own port), so requests drops the Authorization header when
    it follows the API's redirect here (requests' SessionRedirectMixin.rebuild_auth strips it
    when the host, scheme or port changes). Like those hosts it authorizes a private download
    only by the short-lived ``?token=`` the API put in the URL; a header does nothing, and any
    Authorization header that arrives is recorded (``authorizations``) so tests can show that
    none leaks here. Requests are logged on the API server too (one log for "GitHub").
    """

    kind = "codeload"
    description = "codeload.github.com / raw.githubusercontent.com for the loopback GitHub."

    def __init__(self, api: GitHubServer) -> None:
        super().__init__(api.repos_dir, api.tokens, work_dir=api._work_dir, user=api.user)
        self.api = api
        self.faults = api.faults  # one set of fault switches for "GitHub"
        self.authorizations: list[str] = []
        self._routes: list[Route] = [
            ("GET", re.compile(r"/(?P<owner>[^/]+)/(?P<repo>[^/]+)/"
                               r"(?P<fmt>legacy\.tar\.gz|legacy\.zip)/(?P<ref>.+)"),
             api.codeload),
            ("GET", re.compile(r"/(?P<owner>[^/]+)/(?P<repo>[^/]+)/(?P<ref>[^/]+)/"
                               r"(?P<path>.+)"), api.raw_file),
        ]

    def routes(self) -> Sequence[Route]:
        return self._routes

    def _record(self, method: str, path: str, encodings: Any = ()) -> None:
        super()._record(method, path, encodings)
        self.api._record(method, path, encodings)

    def handle(self, h: Handler) -> None:
        authorization = h.headers.get("Authorization")
        if authorization:
            with self._lock:
                self.authorizations.append(authorization)
        if not self.dispatch(h):
            h.send_data(404, b"404: Not Found", "text/plain; charset=utf-8")


class GitHubServer(LoopbackServer):
    kind = "github"
    description = "Loopback GitHub REST API (PyGithub) + git smart HTTP, backed by bare repos."
    realm = "GitHub"
    token_prefix = "ghp_"
    #: Requests an hour with a valid token, and without one (github.com's primary limits).
    rate_limit = RATE_LIMIT
    anonymous_rate_limit = ANONYMOUS_RATE_LIMIT
    rate_window = RATE_WINDOW
    #: The recursive tree listing's limits.
    tree_limit = TREE_LIMIT
    tree_bytes = TREE_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._download_tokens: dict[str, tuple[str, float]] = {}
        self._batched: dict[str, _BatchedRepo] = {}
        self._dl_lock = threading.Lock()
        self._used: dict[bool, int] = {True: 0, False: 0}
        self._window_reset: float | None = None
        self._lfs_archives: set[str] = set()
        self.codeload = CodeloadServer(self)
        self._routes: list[Route] = [
            ("GET", re.compile(r"/user"), self.get_user),
            ("GET", re.compile(r"/users/(?P<login>[^/]+)"), self.get_named_user),
            ("GET", re.compile(r"/rate_limit"), self.get_rate_limit),
            ("GET", re.compile(_R), self.get_repo),
            ("GET", re.compile(_R + r"/commits"), self.list_commits),
            ("GET", re.compile(_R + r"/commits/(?P<ref>.+)"), self.get_commit),
            ("GET", re.compile(_R + r"/git/commits/(?P<sha>[^/]+)"), self.get_git_commit),
            ("GET", re.compile(_R + r"/branches"), self.list_branches),
            ("GET", re.compile(_R + r"/branches/(?P<branch>.+)"), self.get_branch),
            ("GET", re.compile(_R + r"/compare/(?P<basehead>.+)"), self.compare),
            ("GET", re.compile(_R + r"/(?P<fmt>tarball|zipball)(?:/(?P<ref>.+))?"),
             self.archive_link),
            ("GET", re.compile(_R + r"/contents(?:/(?P<path>.*))?"), self.get_contents),
            ("GET", re.compile(_R + r"/git/trees/(?P<sha>.+)"), self.get_tree),
            ("GET", re.compile(_R + r"/git/blobs/(?P<sha>[^/]+)"), self.get_blob),
        ]

    # ------------------------------------------------------------------ plumbing
    def routes(self) -> Sequence[Route]:
        return self._routes

    def start(self) -> GitHubServer:
        super().start()
        self.codeload.start()
        return self

    @property
    def codeload_url(self) -> str:
        return self.codeload.url

    def include_lfs_in_archives(self, repo_path: str, on: bool = True) -> None:
        """The repository setting "Include Git LFS objects in archives" (off by default:
        docs.github.com/repositories/managing-your-repositorys-settings-and-features/
        managing-repository-settings/managing-git-lfs-objects-in-archives-of-your-repository)."""
        with self._lock:
            (self._lfs_archives.add if on else self._lfs_archives.discard)(repo_path)

    def handle(self, h: Handler) -> None:
        # Headers and body leave in separate writes: without TCP_NODELAY, Nagle's algorithm
        # holds the body until the client's delayed ACK (about 40 ms on every request).
        with contextlib.suppress(OSError):
            h.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        prefix = "/api/v3"
        if h.raw_path == prefix or h.raw_path.startswith(prefix + "/"):
            h.route_path = h.raw_path[len(prefix):] or "/"
            h.api_base = self.url + prefix
        if self.handle_git(h):
            return
        # "GET /rate_limit does not count against your primary rate limit" (same docs page).
        if h.route_path != "/rate_limit" and not self._count_request(h):
            self._primary_limit_exceeded(h)
            return
        super().handle(h)

    def _count_request(self, h: Handler) -> bool:
        """Count the request in the current window; False when the window has none left."""
        authed = h.auth_state() is Auth.VALID
        limit = self.rate_limit if authed else self.anonymous_rate_limit
        with self._lock:
            now = self.clock()
            if self._window_reset is None or now >= self._window_reset:
                self._window_reset = now + self.rate_window
                self._used = {True: 0, False: 0}
            if self._used[authed] >= limit:
                return False
            self._used[authed] += 1
            return True

    def _primary_limit_exceeded(self, h: Handler) -> None:
        """docs.github.com/rest/using-the-rest-api/troubleshooting-the-rest-api: "If you exceed
        your primary rate limit, you will receive a 403 Forbidden or 429 Too Many Requests
        response, and the x-ratelimit-remaining header will be 0"."""
        body = {"message": PRIMARY_MESSAGE, "documentation_url": RATE_LIMIT_DOCS}
        h.send_data(403, json.dumps(body).encode(), "application/json; charset=utf-8")

    def common_headers(self, h: Handler) -> dict[str, str]:
        authed = h.auth_state() is Auth.VALID
        limit = self.rate_limit if authed else self.anonymous_rate_limit
        with self._lock:
            used = self._used[authed]
            reset = self._window_reset or self.clock() + self.rate_window
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(limit - used, 0)),
            "X-RateLimit-Reset": str(int(reset)),
            "X-RateLimit-Used": str(used),
            "X-RateLimit-Resource": "core",
            "X-GitHub-Media-Type": "github.v3; format=json",
            "X-GitHub-Request-Id": secrets.token_hex(8).upper(),
        }

    def stop(self) -> None:
        self.codeload.stop()
        super().stop()
        with self._lock:
            batched, self._batched = list(self._batched.values()), {}
        for repo in batched:
            repo.close()

    def _batched_repo(self, full: str) -> _BatchedRepo:
        """The repository's persistent object reader (started on first use)."""
        with self._lock:
            repo = self._batched.get(full)
            if repo is None:
                repo = self._batched[full] = _BatchedRepo(self.repo_dir(full))
            return repo

    def error(self, h: Handler, status: int, message: str) -> None:
        h.send_json(status, {"message": message, "documentation_url": DOCS,
                             "status": str(status)})

    def not_found(self, h: Handler) -> None:
        self.error(h, 404, "Not Found")

    def _authenticated(self, h: Handler) -> bool:
        state = h.auth_state()
        if state is Auth.INVALID:
            self.error(h, 401, "Bad credentials")
            return False
        if state is Auth.NONE:
            self.error(h, 401, "Requires authentication")
            return False
        return True

    def _repo(self, h: Handler, m: re.Match[str]) -> tuple[str, BareRepo] | None:
        """(full_name, repo) if the caller may read it; otherwise the error is sent."""
        full = f"{unquote(m.group('owner'))}/{unquote(m.group('repo'))}"
        state = h.auth_state()
        if state is Auth.INVALID:
            self.error(h, 401, "Bad credentials")
            return None
        if not self.repo_exists(full) or (state is Auth.NONE and not self.is_public(full)):
            self.not_found(h)
            return None
        return full, BareRepo(self.repo_dir(full))

    def _download_token(self, full: str) -> str:
        token = secrets.token_urlsafe(18)
        with self._dl_lock:
            now = time.time()
            for key, (_repo, expiry) in list(self._download_tokens.items()):
                if expiry < now:
                    del self._download_tokens[key]
            self._download_tokens[token] = (full, now + DOWNLOAD_TOKEN_TTL)
        return token

    def _download_allowed(self, h: Handler, full: str) -> bool:
        """On the download host: a public repository, or a valid token in the URL."""
        token = h.query.get("token")
        if token:
            with self._dl_lock:
                entry = self._download_tokens.get(token)
            if entry and entry[0] == full and entry[1] >= time.time():
                return True
        return self.repo_exists(full) and self.is_public(full)

    def _download_url(self, h: Handler, full: str, path: str) -> str:
        url = f"{self.codeload.url}{path}"
        return url if self.is_public(full) else f"{url}?token={self._download_token(full)}"

    # ------------------------------------------------------------------ JSON shapes
    def user_json(self, h: Handler, login: str, private: bool = False) -> dict[str, Any]:
        api, web = h.api_base, self.url
        data: dict[str, Any] = {
            "login": login,
            "id": _id(login),
            "node_id": _node_id("User", login),
            "avatar_url": f"{web}/avatars/{login}",
            "gravatar_id": "",
            "url": f"{api}/users/{login}",
            "html_url": f"{web}/{login}",
            "followers_url": f"{api}/users/{login}/followers",
            "repos_url": f"{api}/users/{login}/repos",
            "organizations_url": f"{api}/users/{login}/orgs",
            "type": "User" if login == self.user else "Organization",
            "site_admin": False,
        }
        if private:
            data.update({
                "name": login, "company": None, "blog": "", "location": None,
                "email": None, "bio": None, "public_repos": 0, "followers": 0, "following": 0,
                "created_at": "2020-01-01T00:00:00Z", "updated_at": "2020-01-01T00:00:00Z",
                "private_gists": 0, "total_private_repos": 0, "owned_private_repos": 0,
                "two_factor_authentication": False,
                "plan": {"name": "free", "space": 976562499, "collaborators": 0,
                         "private_repos": 10000},
            })
        return data

    def repo_json(self, h: Handler, full: str, repo: BareRepo) -> dict[str, Any]:
        api, web = h.api_base, self.url
        owner, name = full.split("/", 1)
        base = f"{api}/repos/{full}"
        private = not self.is_public(full)
        pushed = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                               time.gmtime(repo.path.joinpath("refs").stat().st_mtime))
        authed = h.auth_state() is Auth.VALID
        return {
            "id": _id(full),
            "node_id": _node_id("Repository", full),
            "name": name,
            "full_name": full,
            "private": private,
            "visibility": "private" if private else "public",
            "owner": self.user_json(h, owner),
            "html_url": f"{web}/{full}",
            "description": None,
            "fork": False,
            "url": base,
            "archive_url": base + "/{archive_format}{/ref}",
            "blobs_url": base + "/git/blobs{/sha}",
            "branches_url": base + "/branches{/branch}",
            "commits_url": base + "/commits{/sha}",
            "compare_url": base + "/compare/{base}...{head}",
            "contents_url": base + "/contents/{+path}",
            "git_commits_url": base + "/git/commits{/sha}",
            "trees_url": base + "/git/trees{/sha}",
            "git_url": f"git://{web.split('://', 1)[1]}/{full}.git",
            "ssh_url": f"git@{web.split('://', 1)[1].split(':')[0]}:{full}.git",
            "clone_url": f"{web}/{full}.git",
            "svn_url": f"{web}/{full}",
            "homepage": None,
            "size": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "language": None,
            "has_issues": True,
            "has_projects": False,
            "has_downloads": True,
            "has_wiki": False,
            "has_pages": False,
            "has_discussions": False,
            "forks_count": 0,
            "archived": False,
            "disabled": False,
            "open_issues_count": 0,
            "license": None,
            "allow_forking": True,
            "is_template": False,
            "topics": [],
            "forks": 0,
            "open_issues": 0,
            "watchers": 0,
            "default_branch": repo.default_branch(),
            "permissions": {"admin": authed, "maintain": authed, "push": authed,
                            "triage": authed, "pull": True},
            "created_at": "2020-01-01T00:00:00Z",
            "updated_at": pushed,
            "pushed_at": pushed,
            "network_count": 0,
            "subscribers_count": 0,
        }

    def commit_json(self, h: Handler, full: str, repo: BareRepo, info: CommitInfo,
                    with_files: bool) -> dict[str, Any]:
        api, web = h.api_base, self.url
        base = f"{api}/repos/{full}"
        data: dict[str, Any] = {
            "sha": info.sha,
            "node_id": _node_id("Commit", f"{full}:{info.sha}"),
            "url": f"{base}/commits/{info.sha}",
            "html_url": f"{web}/{full}/commit/{info.sha}",
            "comments_url": f"{base}/commits/{info.sha}/comments",
            "commit": self.git_commit_json(h, full, info),
            "author": None,
            "committer": None,
            "parents": [
                {"sha": p, "url": f"{base}/commits/{p}", "html_url": f"{web}/{full}/commit/{p}"}
                for p in info.parents
            ],
        }
        if with_files:
            files = repo.diff(info.parents[0] if info.parents else None, info.sha)
            data["files"] = self.files_json(h, full, info.sha, files)
            additions = sum(f.additions for f in files)
            deletions = sum(f.deletions for f in files)
            data["stats"] = {"total": additions + deletions, "additions": additions,
                             "deletions": deletions}
        return data

    def files_json(self, h: Handler, full: str, sha: str,
                   files: list[gitrepos.ChangedFile]) -> list[dict[str, Any]]:
        base, web = f"{h.api_base}/repos/{full}", self.url
        statuses = {"A": "added", "M": "modified", "D": "removed", "T": "changed"}
        return [
            {
                "sha": f.new_sha if f.status != "D" else f.old_sha,
                "filename": f.path,
                "status": statuses.get(f.status, "modified"),
                "additions": f.additions,
                "deletions": f.deletions,
                "changes": f.additions + f.deletions,
                "blob_url": f"{web}/{full}/blob/{sha}/{_q(f.path)}",
                "raw_url": f"{web}/{full}/raw/{sha}/{_q(f.path)}",
                "contents_url": f"{base}/contents/{_q(f.path)}?ref={sha}",
            }
            for f in files
        ]

    def git_commit_json(self, h: Handler, full: str, info: CommitInfo) -> dict[str, Any]:
        base = f"{h.api_base}/repos/{full}"

        def person(p: gitrepos.Person) -> dict[str, str]:
            return {"name": p.name, "email": p.email, "date": p.utc_z}

        return {
            "sha": info.sha,
            "node_id": _node_id("GitCommit", f"{full}:{info.sha}"),
            "url": f"{base}/git/commits/{info.sha}",
            "html_url": f"{self.url}/{full}/commit/{info.sha}",
            "author": person(info.author),
            "committer": person(info.committer),
            "message": info.message,
            "tree": {"sha": info.tree, "url": f"{base}/git/trees/{info.tree}"},
            "parents": [
                {"sha": p, "url": f"{base}/git/commits/{p}",
                 "html_url": f"{self.url}/{full}/commit/{p}"}
                for p in info.parents
            ],
            "comment_count": 0,
            "verification": {"verified": False, "reason": "unsigned", "signature": None,
                             "payload": None, "verified_at": None},
        }

    def content_json(self, h: Handler, full: str, repo: BareRepo, entry: TreeEntry,
                     ref: str, sha: str, with_content: bool) -> dict[str, Any]:
        api, web = h.api_base, self.url
        base = f"{api}/repos/{full}"
        kind = {"tree": "dir", "commit": "submodule"}.get(entry.type, "file")
        if entry.mode == "120000":
            kind = "symlink"
        self_url = f"{base}/contents/{_q(entry.path)}?ref={quote(ref, safe='')}"
        git_url = (f"{base}/git/trees/{entry.sha}" if entry.type == "tree"
                   else f"{base}/git/blobs/{entry.sha}" if entry.type == "blob" else None)
        html_url = f"{web}/{full}/{'tree' if entry.type == 'tree' else 'blob'}/{ref}/" \
                   f"{_q(entry.path)}"
        download_url = None
        if entry.type == "blob":
            download_url = self._download_url(h, full, f"/{full}/{sha}/{_q(entry.path)}")
        data: dict[str, Any] = {
            "type": kind,
            "size": entry.size or 0,
            "name": entry.name,
            "path": entry.path,
            "sha": entry.sha,
            "url": self_url,
            "git_url": git_url,
            "html_url": html_url,
            "download_url": download_url,
            "_links": {"self": self_url, "git": git_url, "html": html_url},
        }
        if kind == "symlink":
            data["target"] = repo.blob(entry.sha).decode("utf-8", errors="replace")
        elif kind == "submodule":
            data["submodule_git_url"] = None
        if with_content and kind == "file":
            if (entry.size or 0) > CONTENT_LIMIT:
                data["content"] = ""
                data["encoding"] = "none"
            else:
                data["content"] = _b64_lines(repo.blob(entry.sha))
                data["encoding"] = "base64"
        return data

    def _paginated(self, h: Handler, items: list[Any], default: int = 30,
                   maximum: int = 100) -> tuple[list[Any], dict[str, str]]:
        page, per_page = page_params(h, default, maximum)
        last = max((len(items) + per_page - 1) // per_page, 1)
        links: dict[str, int] = {}
        if page < last:
            links.update(next=page + 1, last=last)
        if page > 1:
            links.update(first=1, prev=page - 1)
        headers = {}
        if links:
            headers["Link"] = link_header(h.api_base, h.route_path, h.query, links, per_page)
        return items[(page - 1) * per_page: page * per_page], headers

    # ------------------------------------------------------------------ endpoints
    def get_user(self, h: Handler, m: re.Match[str]) -> None:
        if self._authenticated(h):
            h.send_json(200, self.user_json(h, self.user, private=True))

    def get_named_user(self, h: Handler, m: re.Match[str]) -> None:
        if h.auth_state() is Auth.INVALID:
            self.error(h, 401, "Bad credentials")
            return
        h.send_json(200, self.user_json(h, unquote(m.group("login"))))

    def get_rate_limit(self, h: Handler, m: re.Match[str]) -> None:
        if h.auth_state() is Auth.INVALID:
            self.error(h, 401, "Bad credentials")
            return
        hdr = self.common_headers(h)
        core = {"limit": int(hdr["X-RateLimit-Limit"]),
                "remaining": int(hdr["X-RateLimit-Remaining"]),
                "reset": int(hdr["X-RateLimit-Reset"]), "used": int(hdr["X-RateLimit-Used"]),
                "resource": "core"}
        h.send_json(200, {"resources": {"core": core}, "rate": core})

    def get_repo(self, h: Handler, m: re.Match[str]) -> None:
        found = self._repo(h, m)
        if found:
            h.send_json(200, self.repo_json(h, *found))

    def _resolve(self, h: Handler, repo: BareRepo, ref: str) -> str | None:
        sha = repo.resolve_commit(ref)
        if sha is None:
            self.error(h, 422, f"No commit found for SHA: {ref}")
        return sha

    def get_commit(self, h: Handler, m: re.Match[str]) -> None:
        found = self._repo(h, m)
        if not found:
            return
        full, repo = found
        sha = self._resolve(h, repo, unquote(m.group("ref")))
        if sha:
            h.send_json(200, self.commit_json(h, full, repo, repo.commit_info(sha), True))

    def get_git_commit(self, h: Handler, m: re.Match[str]) -> None:
        found = self._repo(h, m)
        if not found:
            return
        full, repo = found
        sha = unquote(m.group("sha"))
        resolved = repo.resolve_commit(sha) if re.fullmatch(r"[0-9a-f]{40}", sha) else None
        if resolved is None:
            self.not_found(h)
            return
        h.send_json(200, self.git_commit_json(h, full, repo.commit_info(resolved)))

    def list_commits(self, h: Handler, m: re.Match[str]) -> None:
        found = self._repo(h, m)
        if not found:
            return
        full, repo = found
        if repo.is_empty():
            self.error(h, 409, "Git Repository is empty.")
            return
        sha = self._resolve(h, repo, h.query.get("sha") or repo.default_branch())
        if not sha:
            return
        path = h.query.get("path")
        shas = repo.rev_list(sha, *(["--", path] if path else []))
        page, headers = self._paginated(h, shas)
        h.send_json(200, [self.commit_json(h, full, repo, repo.commit_info(s), False)
                          for s in page], headers)

    def _branch_short(self, h: Handler, full: str, name: str, sha: str) -> dict[str, Any]:
        return {"name": name,
                "commit": {"sha": sha, "url": f"{h.api_base}/repos/{full}/commits/{sha}"},
                "protected": False}

    def list_branches(self, h: Handler, m: re.Match[str]) -> None:
        found = self._repo(h, m)
        if not found:
            return
        full, repo = found
        items = [self._branch_short(h, full, n, s) for n, s in repo.branches()]
        page, headers = self._paginated(h, items)
        h.send_json(200, page, headers)

    def get_branch(self, h: Handler, m: re.Match[str]) -> None:
        found = self._repo(h, m)
        if not found:
            return
        full, repo = found
        name = unquote(m.group("branch"))
        sha = dict(repo.branches()).get(name)
        if sha is None:
            self.error(h, 404, "Branch not found")
            return
        base = f"{h.api_base}/repos/{full}"
        h.send_json(200, {
            "name": name,
            "commit": self.commit_json(h, full, repo, repo.commit_info(sha), False),
            "_links": {"self": f"{base}/branches/{_q(name)}",
                       "html": f"{self.url}/{full}/tree/{_q(name)}"},
            "protected": False,
            "protection": {"enabled": False,
                           "required_status_checks": {"enforcement_level": "off",
                                                      "contexts": [], "checks": []}},
            "protection_url": f"{base}/branches/{_q(name)}/protection",
        })

    def compare(self, h: Handler, m: re.Match[str]) -> None:
        found = self._repo(h, m)
        if not found:
            return
        full, repo = found
        basehead = unquote(m.group("basehead"))
        if "..." not in basehead:
            self.not_found(h)
            return
        base_ref, head_ref = basehead.split("...", 1)
        base_sha, head_sha = repo.resolve_commit(base_ref), repo.resolve_commit(head_ref)
        if base_sha is None or head_sha is None:
            self.not_found(h)
            return
        merge_base = repo.merge_base(base_sha, head_sha)
        if merge_base is None:
            self.error(h, 404, f"No common ancestor between {base_ref} and {head_ref}.")
            return
        ahead = repo.count(f"{base_sha}..{head_sha}")
        behind = repo.count(f"{head_sha}..{base_sha}")
        status = ("identical" if ahead == behind == 0 else "ahead" if behind == 0
                  else "behind" if ahead == 0 else "diverged")
        commits = repo.rev_list("--reverse", f"{base_sha}..{head_sha}")
        page, headers = self._paginated(h, commits, default=250, maximum=1000)
        api, web = h.api_base, self.url
        files: list[dict[str, Any]] = []
        if page_params(h, 250, 1000)[0] == 1:
            files = self.files_json(h, full, head_sha, repo.diff(merge_base, head_sha))
        h.send_json(200, {
            "url": f"{api}/repos/{full}/compare/{quote(base_ref, safe='')}..."
                   f"{quote(head_ref, safe='')}",
            "html_url": f"{web}/{full}/compare/{base_ref}...{head_ref}",
            "permalink_url": f"{web}/{full}/compare/{full.split('/')[0]}:{base_sha[:7]}..."
                             f"{full.split('/')[0]}:{head_sha[:7]}",
            "diff_url": f"{web}/{full}/compare/{base_ref}...{head_ref}.diff",
            "patch_url": f"{web}/{full}/compare/{base_ref}...{head_ref}.patch",
            "base_commit": self.commit_json(h, full, repo, repo.commit_info(base_sha), False),
            "merge_base_commit": self.commit_json(h, full, repo, repo.commit_info(merge_base),
                                                  False),
            "status": status,
            "ahead_by": ahead,
            "behind_by": behind,
            "total_commits": ahead,
            "commits": [self.commit_json(h, full, repo, repo.commit_info(s), False)
                        for s in page],
            "files": files,
        }, headers)

    def archive_link(self, h: Handler, m: re.Match[str]) -> None:
        found = self._repo(h, m)
        if not found:
            return
        full, repo = found
        ref = unquote(m.group("ref") or "") or repo.default_branch()
        sha = repo.resolve_commit(ref)
        if sha is None:
            self.not_found(h)
            return
        kind = "legacy.tar.gz" if m.group("fmt") == "tarball" else "legacy.zip"
        h.send_redirect(self._download_url(h, full, f"/{full}/{kind}/{sha}"))

    def codeload(self, h: Handler, m: re.Match[str]) -> None:
        owner, name = unquote(m.group("owner")), unquote(m.group("repo"))
        full = f"{owner}/{name}"
        if not self._download_allowed(h, full):
            h.send_data(404, b"404: Not Found", "text/plain; charset=utf-8")
            return
        repo = BareRepo(self.repo_dir(full))
        sha = repo.resolve_commit(unquote(m.group("ref")))
        if sha is None:
            h.send_data(404, b"404: Not Found", "text/plain; charset=utf-8")
            return
        top = f"{owner}-{name}-{sha[:7]}"
        ext = "tar.gz" if m.group("fmt") == "legacy.tar.gz" else "zip"
        ctype = "application/x-gzip" if ext == "tar.gz" else "application/zip"
        with self._lock:
            smudge = ext == "tar.gz" and full in self._lfs_archives and bool(self.lfs_objects)
        body = repo.archive_stream(sha, ext, top + "/")
        if smudge:
            body = iter([gzip.compress(self.smudge_lfs(b"".join(
                repo.archive_stream(sha, "tar", top + "/"))))])
        h.send_download_stream(body, ctype, {
            "Content-Disposition": f"attachment; filename={top}.{ext}",
            "ETag": f'"{sha}"',
        })

    def raw_file(self, h: Handler, m: re.Match[str]) -> None:
        owner, name = unquote(m.group("owner")), unquote(m.group("repo"))
        full = f"{owner}/{name}"
        if not self._download_allowed(h, full):
            h.send_data(404, b"404: Not Found", "text/plain; charset=utf-8")
            return
        repo = BareRepo(self.repo_dir(full))
        sha = repo.resolve_commit(unquote(m.group("ref")))
        entry = repo.entry(sha, unquote(m.group("path"))) if sha else None
        if entry is None or entry.type != "blob":
            h.send_data(404, b"404: Not Found", "text/plain; charset=utf-8")
            return
        h.send_download(repo.blob(entry.sha), "text/plain; charset=utf-8",
                        {"ETag": f'"{entry.sha}"'})

    def get_contents(self, h: Handler, m: re.Match[str]) -> None:
        found = self._repo(h, m)
        if not found:
            return
        full, _plain = found
        repo = self._batched_repo(full)
        ref = h.query.get("ref") or repo.default_branch()
        sha = repo.resolve_commit(ref)
        if sha is None:
            if repo.is_empty():
                self.error(h, 404, "This repository is empty.")
            else:
                self.error(h, 404, f"No commit found for the ref {ref}")
            return
        path = unquote(m.group("path") or "").strip("/")
        entry = repo.entry(sha, path)
        if entry is None:
            self.not_found(h)
            return
        if entry.type == "tree":
            entries = repo.ls_tree(sha, path)
            h.send_json(200, [self.content_json(h, full, repo, e, ref, sha, False)
                              for e in entries])
            return
        if entry.mode == "120000":
            target_text = repo.blob(entry.sha).decode("utf-8", errors="replace")
            parent = PurePosixPath(entry.path).parent
            target = None if target_text.startswith("/") else _normalise(parent / target_text)
            resolved = repo.entry(sha, target) if target is not None else None
            if resolved is not None and resolved.type == "blob" and resolved.mode != "120000":
                entry = resolved
        h.send_json(200, self.content_json(h, full, repo, entry, ref, sha, True))

    def get_tree(self, h: Handler, m: re.Match[str]) -> None:
        found = self._repo(h, m)
        if not found:
            return
        full, repo = found
        tree = repo.resolve_tree(unquote(m.group("sha")))
        if tree is None:
            self.not_found(h)
            return
        base = f"{h.api_base}/repos/{full}"
        # "Setting this parameter to any value returns the objects or subtrees referenced by
        # the tree ... `0`, `1`, "true", and "false"" (docs.github.com/rest/git/trees).
        recursive = "recursive" in h.query
        entries = repo.ls_tree(tree, recursive=recursive)
        truncated = False
        items = []
        size = 0
        for e in entries:
            item: dict[str, Any] = {"path": e.path, "mode": e.mode, "type": e.type, "sha": e.sha}
            if e.type == "blob":
                item["size"] = e.size or 0
                item["url"] = f"{base}/git/blobs/{e.sha}"
            elif e.type == "tree":
                item["url"] = f"{base}/git/trees/{e.sha}"
            size += len(json.dumps(item)) + 1
            if recursive and (len(items) >= self.tree_limit or size > self.tree_bytes):
                truncated = True
                break
            items.append(item)
        h.send_json(200, {"sha": tree, "url": f"{base}/git/trees/{tree}", "tree": items,
                          "truncated": truncated})

    def get_blob(self, h: Handler, m: re.Match[str]) -> None:
        found = self._repo(h, m)
        if not found:
            return
        full, repo = found
        sha = unquote(m.group("sha"))
        if not re.fullmatch(r"[0-9a-f]{40}", sha) or repo.resolve_blob(sha) is None:
            self.not_found(h)
            return
        data = repo.blob(sha)
        h.send_json(200, {"sha": sha, "node_id": _node_id("Blob", f"{full}:{sha}"),
                          "size": len(data), "url": f"{h.api_base}/repos/{full}/git/blobs/{sha}",
                          "content": _b64_lines(data), "encoding": "base64"})


def _normalise(path: PurePosixPath) -> str | None:
    """Resolve '.' and '..' in a repository-relative path; None if it leaves the repo."""
    parts: list[str] = []
    for part in path.parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts) or None


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(GitHubServer, argv)


if __name__ == "__main__":
    raise SystemExit(main())
