"""GitHub (github.com and GitHub Enterprise) login and download, through PyGithub and requests.

A download is one streamed archive: `GET {api}/repos/{owner}/{repo}/tarball/{commit}`, whose
redirect to the archive host is followed (requests drops the Authorization header when the
redirect leaves the API host, as it should for codeload.github.com). Only the subdirectory is
extracted, by the shared safe extractor. That is two HTTP requests for any size of tree.

More requests happen only when needed: `verify_download` lists the commit's tree (one
request), and an archive that holds submodule placeholders (empty directories) looks up their
gitlinks and `.gitmodules` (two requests) and downloads each submodule that lives on the same
server the same way, at its pinned commit.

Rate limits (docs.github.com/rest/using-the-rest-api/troubleshooting-the-rest-api): a
`retry-after` is waited out; a primary limit (`x-ratelimit-remaining: 0`) is waited out until
`x-ratelimit-reset` when that is within `BUILDER_RETRY_MAX_WAIT`, else it fails at once saying
when it resets; a secondary limit without `retry-after` waits at least a minute, doubling on
each repeat, as GitHub asks. A recursive tree listing that GitHub truncates (100,000 entries
or 7 MB) is completed subtree by subtree, only below the subdirectory that is wanted.

Tree listings and blobs, which a container's update and a verified download read, are plain
REST GETs over requests (the archive's session rules): PyGithub's import would be most of a
small update's time. PyGithub serves the rest (login, compare, contents). It is imported
lazily and built with its throttle off (`seconds_between_requests=0`)
and its own retries off: the shared `RetryPolicy` retries. Features newer than the oldest
PyGithub builder supports (client-wide laziness, 2.6; compare's page size, 2.9) are used only
where the installed version has them.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from builder import __version__
from builder.code.download import (
    Listing,
    empty_directories,
    fetch_atomically,
    fill_archive_submodules,
    network_failure,
    normalize_subdirectory,
    read_timeout,
    relative_listing,
    stream_archive,
    validate_commit,
    verify_tree,
    wants_verify,
)
from builder.code.gitobjects import is_object_id
from builder.code.lfs import MAX_POINTER_BYTES, parse_pointer
from builder.code.retry import (
    Retryable,
    RetryPolicy,
    check_status,
    lower_headers,
    retry_after,
)
from builder.errors import AuthenticationError, DownloadError, NotFoundError, RateLimitError
from builder.repositories.extras import require_extra
from builder.repositories.urls import path_on_server
from builder.state.secrets import redact

# Every use of the API comes through this module: without the extra, one line names the
# install command instead of a ModuleNotFoundError.
require_extra("github")

if TYPE_CHECKING:
    import requests
    from github import Github


class GitHubProject(Protocol):
    """What the API calls need of a GitHub repository (`GitHubCodeRepository` has it)."""

    owner: str
    repository: str
    url: str
    api_url: str

    @property
    def token(self) -> str | None: ...
    @property
    def full_name(self) -> str: ...
    @property
    def host_aliases(self) -> frozenset[str]: ...

T = TypeVar("T")
API_VERSION = "2022-11-28"
CONNECT_TIMEOUT = 10.0
#: GitHub: "wait for at least one minute before retrying" a secondary limit that names no wait.
SECONDARY_WAIT = 60.0
Entries = list[tuple[str, str, str]]


# ---------------------------------------------------------------------------- public API


def login(repo: GitHubProject, policy: RetryPolicy | None = None) -> None:
    """Check the token (or anonymous access) against the configured API URL: one request."""
    _call(repo, lambda: _project(repo, lazy=False), policy, what=_what(repo))


def download_files(repo: GitHubProject, commit: str, directory: str | os.PathLike[str],
                   repo_sub_directory: str | None, policy: RetryPolicy | None = None) -> None:
    """Download `commit` (only `repo_sub_directory`) into `directory`, atomically."""
    sha = validate_commit(commit)
    subdir = normalize_subdirectory(repo_sub_directory)
    verify = wants_verify(repo, directory)
    policy = policy or RetryPolicy.from_environment()
    fetch_atomically(directory, lambda target: _download(repo, sha, target, subdir, verify,
                                                         policy, depth=0))


def update_files(repo: GitHubProject, base_commit: str, base_directory: str,
                 commit: str, directory: str | os.PathLike[str], repo_sub_directory: str | None,
                 policy: RetryPolicy | None = None) -> int | None:
    """`commit` into `directory` from the tree of `base_commit` at `base_directory`: the two
    commits' listings (two requests, at once) and one request per changed file (at once).
    Returns how many files it fetched, or None (nothing written) when a full download is the
    better way."""
    from builder.code.parallel import PerThread, run_all
    from builder.code.updates import plan_update, write_update

    sha, base = validate_commit(commit), validate_commit(base_commit)
    subdir = normalize_subdirectory(repo_sub_directory)
    # One try per request: on any failure the caller downloads the archive, with retries.
    policy = (policy or RetryPolicy.from_environment()).single_try()
    # A session per thread (requests' is not thread-safe): its connection serves the thread's
    # requests one after another. The two listings go out at once.
    sessions = PerThread(_session)
    # A truncated listing declines the update: the archive is two requests, a walk is more.
    sizes: dict[str, int] = {}
    old, new = (relative_listing(entries, subdir) for entries in run_all([
        lambda: _tree_entries(repo, base, policy, sessions.get(), walk=False),
        lambda: _tree_entries(repo, sha, policy, sessions.get(), walk=False, sizes=sizes),
    ]))
    plan = plan_update(old, new)
    if plan is None:
        return None
    verify = wants_verify(repo, directory)
    what = _what(repo, sha)

    def blob(path: str) -> tuple[bytes, str]:
        blob_id = new[path][1]
        data = _blob(repo, sessions.get(), blob_id, policy, what=what)
        if parse_pointer(data) is not None:
            # Whether the archive holds this file's pointer or its content is the
            # repository's setting: the archive decides, so that a commit's tree never
            # depends on what was cached.
            raise DownloadError(f"{what}: {path} is a Git LFS file")
        return data, blob_id

    return write_update(directory, Path(base_directory), plan, blob, what=what,
                        expected=(lambda: new) if verify else None,
                        blob=_pointer_reader(repo, sessions.get(), policy, what, sizes),
                        concurrent=True)


def tree_listing(repo: GitHubProject, commit: str, subdirectory: str | None,
                 policy: RetryPolicy | None = None) -> Listing:
    """The commit's files below `subdirectory`: path -> (mode, blob id); one request."""
    sha = validate_commit(commit)
    subdir = normalize_subdirectory(subdirectory)
    entries = _tree_entries(repo, sha, policy or RetryPolicy.from_environment(), subdir=subdir)
    return relative_listing(entries, subdir)


def branch_contains(repo: GitHubProject, commit: str, tips: Sequence[tuple[str, str]],
                    *, timeout: float, limit: int) -> tuple[bool | None, str]:
    """Does one of the branch tips contain `commit`? GitHub's compare `tip...commit` per tip.

    A status of `behind` or `identical` means the tip contains the commit. True or False is
    an answer; None means GitHub could not say (the account tells why). No retries: the
    caller has a fallback, and the question is bounded by `timeout` per request.
    """
    import requests
    from github import GithubException

    sha = validate_commit(commit)
    project = _project(repo, lazy=True, timeout=timeout)
    # One commit per page where PyGithub can ask for it (2.9): the status is all we read.
    page = {"comparison_commits_per_page": 1} if _compare_pages() else {}
    asked = 0
    try:
        for name, tip in tips[:limit]:
            status = project.compare(tip, sha, **page).status
            asked += 1
            if status in ("behind", "identical"):
                return True, f"GitHub's compare API: branch {name!r} contains it"
    except GithubException as exc:
        data: Mapping[str, Any] = exc.data if isinstance(exc.data, dict) else {}
        message = str(data.get("message", "") or "")
        detail = f" ({redact(message)})" if message else ""
        return None, f"GitHub's compare API answered HTTP {exc.status}{detail}"
    except requests.RequestException as exc:
        return None, f"GitHub's compare API: {network_failure(exc)}"
    if asked == len(tips):
        return False, f"GitHub's compare API: none of its {asked} branch(es) contains it"
    return None, (f"GitHub's compare API: none of the first {asked} of {len(tips)} branches "
                  "contains it")


# ---------------------------------------------------------------------------- download


def _download(repo: GitHubProject, sha: str, target: Path, subdir: str, verify: bool,
              policy: RetryPolicy, depth: int) -> None:
    what = _what(repo, sha)
    stream_archive(lambda: _open_tarball(repo, sha, policy), target, what=what, policy=policy,
                   strip_components=1, subdirectory=subdir)
    entries: Entries | None = None
    sizes: dict[str, int] = {}

    def listing() -> Entries:
        nonlocal entries
        if entries is None:
            entries = _tree_entries(repo, sha, policy, subdir=subdir, sizes=sizes)
        return entries

    candidates = empty_directories(target)
    if candidates:
        _fetch_submodules(repo, sha, target, subdir, candidates, listing, policy, depth)
    if verify:
        verify_tree(target, relative_listing(listing(), subdir), what=what,
                    blob=_pointer_reader(repo, None, policy, what, sizes))


def _open_tarball(repo: GitHubProject, sha: str, policy: RetryPolicy) -> requests.Response:
    import requests

    url = f"{repo.api_url.rstrip('/')}/repos/{repo.owner}/{repo.repository}/tarball/{sha}"
    headers = {**_headers(repo), "Accept-Encoding": "identity"}
    what = _what(repo, sha)
    try:
        response = requests.get(url, headers=headers, stream=True, allow_redirects=True,
                                timeout=(CONNECT_TIMEOUT, read_timeout()))
    except requests.RequestException as exc:
        raise Retryable(DownloadError(f"{what}: {network_failure(exc)}")) from None
    if response.status_code >= 400:
        try:
            message = _message_of(response)
        finally:
            response.close()
        check_status(response.status_code, response.headers, message, what=what,
                     final=lambda status, text: _final_error(repo, status, text, sha),
                     rate_limited=_rate_limited)
    return response


def _message_of(response: requests.Response) -> str:
    try:
        body = response.raw.read(64 * 1024, decode_content=True)
    except Exception:
        return ""
    return _message(body)


def _message(body: bytes) -> str:
    """The `message` of an error answer's JSON, or the start of its text."""
    try:
        data = json.loads(body)
        return str(data.get("message", "")) if isinstance(data, dict) else ""
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:200]


# ---------------------------------------------------------------------------- submodules


def _fetch_submodules(repo: GitHubProject, sha: str, target: Path, subdir: str,
                      candidates: list[str], listing: Callable[[], Entries],
                      policy: RetryPolicy, depth: int) -> None:
    fill_archive_submodules(
        what=_what(repo, sha), service_url=repo.url,
        superproject=f"{repo.url.rstrip('/')}/{repo.owner}/{repo.repository}.git",
        target=target, subdir=subdir, candidates=candidates, listing=listing,
        gitmodules=lambda: _gitmodules(repo, sha, policy),
        same_server=lambda url: _same_server(repo, url),
        download=lambda other, link, dest: _download(other, link, dest, "", False, policy,
                                                     depth + 1),
        depth=depth,
    )


def _same_server(repo: GitHubProject, url: str) -> GitHubProject | None:
    path = path_on_server(url, repo.url, repo.host_aliases)
    parts = (path or "").split("/")
    if len(parts) != 2 or not all(parts):
        return None
    other = copy.copy(repo)
    other.owner, other.repository = parts
    return other


def _gitmodules(repo: GitHubProject, sha: str, policy: RetryPolicy) -> str:
    def fetch() -> Any:
        return _project(repo, lazy=True).get_contents(".gitmodules", ref=sha)

    try:
        content = _call(repo, fetch, policy, what=_what(repo, sha), sha=sha)
    except NotFoundError:
        raise DownloadError(f"{_what(repo, sha)} has submodules but no .gitmodules") from None
    if isinstance(content, list):
        raise DownloadError(f"{_what(repo, sha)}: .gitmodules is a directory")
    return bytes(content.decoded_content).decode("utf-8", "replace")


# ---------------------------------------------------------------------------- tree listing


def _tree_entries(repo: GitHubProject, sha: str, policy: RetryPolicy,
                  session: requests.Session | None = None, *, subdir: str = "",
                  walk: bool = True, sizes: dict[str, int] | None = None) -> Entries:
    """The commit's (path, mode, id) entries, at least those below `subdir`.

    One recursive listing when GitHub sends it whole. A truncated one ("use the non-recursive
    method of fetching trees, and fetch one sub-tree at a time", docs.github.com/rest/git/trees)
    is completed from the truncated tree's own level and a recursive listing of each subtree
    that holds or leads to `subdir`, itself completed the same way when truncated. With
    `walk=False` a truncated listing is an error instead.
    """
    http = session or _session()
    what = _what(repo, sha)

    def tree(tree_sha: str, recursive: bool) -> tuple[list[dict[str, Any]], bool]:
        # "Setting this parameter to any value returns the objects or subtrees referenced by
        # the tree" (docs.github.com/rest/git/trees#get-a-tree).
        listed = _get(repo, http, f"git/trees/{tree_sha}", policy, what=what, sha=sha,
                      params={"recursive": "1"} if recursive else None)
        items = listed.get("tree")
        # Each id goes into a later request's path (`git/blobs/{id}`, `git/trees/{id}`).
        if not isinstance(items, list) or not all(
                isinstance(item, dict) and isinstance(item.get("path"), str)
                and isinstance(item.get("mode"), str) and is_object_id(item.get("sha"))
                for item in items):
            raise DownloadError(f"{what}: GitHub's listing of tree {tree_sha} is not a tree")
        return items, bool(listed.get("truncated"))

    entries: Entries = []
    pending = [(sha, "")]
    while pending:
        tree_sha, prefix = pending.pop()
        items, truncated = tree(tree_sha, recursive=True)
        if truncated:
            if not walk:
                raise DownloadError(f"{what}: GitHub truncated the commit's tree listing")
            items, truncated = tree(tree_sha, recursive=False)
            if truncated:
                raise DownloadError(f"{what}: the directory {prefix.rstrip('/') or '/'!r} has "
                                    "more entries than GitHub lists")
            pending.extend((item["sha"], f"{prefix}{item['path']}/") for item in items
                           if item.get("type") == "tree"
                           and _leads_to(prefix + item["path"], subdir))
        for item in items:
            entries.append((prefix + item["path"], item["mode"], item["sha"]))
            size = item.get("size")
            if sizes is not None and isinstance(size, int):
                sizes[item["sha"]] = size
    return entries


def _leads_to(path: str, subdir: str) -> bool:
    """Whether the directory `path` is, holds or is inside `subdir`."""
    return (not subdir or path == subdir or path.startswith(subdir + "/")
            or subdir.startswith(path + "/"))


def _pointer_reader(repo: GitHubProject, session: requests.Session | None,
                    policy: RetryPolicy, what: str,
                    sizes: Mapping[str, int]) -> Callable[[str], bytes]:
    """Blob id -> its data when it may be a Git LFS pointer (listed size at most 1024 bytes),
    else b"": for verifying a file that holds the content its pointer names."""

    def read(blob_id: str) -> bytes:
        size = sizes.get(blob_id)
        if size is None or size > MAX_POINTER_BYTES:
            return b""
        return _blob(repo, session or _session(), blob_id, policy, what=what)

    return read


def _blob(repo: GitHubProject, session: requests.Session, sha: str, policy: RetryPolicy, *,
          what: str) -> bytes:
    import base64
    import binascii

    blob = _get(repo, session, f"git/blobs/{sha}", policy, what=what)
    encoding, content = blob.get("encoding"), blob.get("content")
    if encoding != "base64" or not isinstance(content, str):
        raise DownloadError(f"{what}: blob {sha} came in encoding {encoding!r}")
    try:
        return base64.b64decode(content)
    except (binascii.Error, ValueError):
        raise DownloadError(f"{what}: blob {sha} is not valid base64") from None


# ---------------------------------------------------------------------------- REST reads


def _session() -> requests.Session:
    from builder.code.sessions import origin_bound_session

    return origin_bound_session()


def _headers(repo: GitHubProject) -> dict[str, str]:
    headers = {
        "Accept": "application/vnd.github+json",
        "User-Agent": f"builder/{__version__}",
        "X-GitHub-Api-Version": API_VERSION,
    }
    token = repo.token
    if token:
        headers["Authorization"] = f"token {token}"
    return headers


def _get(repo: GitHubProject, session: requests.Session, path: str, policy: RetryPolicy, *,
         what: str, sha: str | None = None,
         params: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One GET of the repository's REST API (`{api}/repos/{owner}/{repo}/{path}`): its JSON
    object, under the retry policy. The reads a download needs go this way rather than
    through PyGithub, whose import alone (0.13 s) would be most of a small update's time."""
    import requests

    url = f"{repo.api_url.rstrip('/')}/repos/{repo.owner}/{repo.repository}/{path}"

    def attempt() -> dict[str, Any]:
        try:  # not streamed: the body is read, and the connection free again, on return
            response = session.get(url, headers=_headers(repo), params=params,
                                   timeout=(CONNECT_TIMEOUT, read_timeout()))
        except requests.RequestException as exc:
            raise Retryable(DownloadError(f"{what}: {network_failure(exc)}")) from None
        body = response.content
        check_status(response.status_code, response.headers, _message(body), what=what,
                     final=lambda status, text: _final_error(repo, status, text, sha),
                     rate_limited=_rate_limited)
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise DownloadError(f"{what}: GitHub's answer to {path} is not a JSON object")
        return data

    return policy.run(attempt)


# ---------------------------------------------------------------------------- plumbing


def _client(repo: GitHubProject, *, lazy: bool, timeout: float | None = None) -> Github:
    from github import Auth, Github

    token = repo.token
    options: dict[str, Any] = {
        "base_url": repo.api_url.rstrip("/"),
        "auth": Auth.Token(token) if token else None,
        "timeout": max(1, round(timeout if timeout is not None else read_timeout())),
        "user_agent": f"builder/{__version__}",
        "retry": None,
        "seconds_between_requests": 0,
        "seconds_between_writes": 0,
    }
    if _accepts(Github.__init__, "lazy"):  # PyGithub 2.6
        options["lazy"] = lazy
    return Github(**options)


def _project(repo: GitHubProject, *, lazy: bool, timeout: float | None = None) -> Any:
    """The repository: lazy (no request) or read (one request)."""
    from github import Github

    client = _client(repo, lazy=lazy, timeout=timeout)
    if _get_repo_takes_lazy(Github):
        return client.get_repo(repo.full_name, lazy=lazy)
    # PyGithub 2.9 deprecates get_repo(lazy=) for the client's own laziness.
    return client.get_repo(repo.full_name)


@cache
def _accepts(function: Callable[..., Any], name: str) -> bool:
    return name in inspect.signature(function).parameters


@cache
def _get_repo_takes_lazy(github: Any) -> bool:
    """PyGithub before 2.9: get_repo's `lazy` defaults to False and ignores the client's."""
    parameter = inspect.signature(github.get_repo).parameters.get("lazy")
    return parameter is not None and parameter.default is False


def _compare_pages() -> bool:
    from github.Repository import Repository

    return _accepts(Repository.compare, "comparison_commits_per_page")


def _rate_limited(status: int, headers: Mapping[str, Any] | None, message: str, *,
                  what: str) -> Retryable:
    """GitHub's rate limits, waited out as docs.github.com/rest/using-the-rest-api/
    troubleshooting-the-rest-api says: retry-after first, then x-ratelimit-reset when nothing
    remains, else at least a minute and longer on each repeat."""
    found = lower_headers(headers)
    detail = f": {redact(message)}" if message else ""
    error = RateLimitError(f"{what}: rate limited by GitHub (HTTP {status}{detail})")
    seconds, when = retry_after(found)
    if seconds is not None or when is not None:
        return Retryable(error, seconds, until=when,
                         reason="GitHub asks to wait (retry-after)")
    reset = found.get("x-ratelimit-reset", "").strip()
    if found.get("x-ratelimit-remaining") == "0" and reset.isdigit():
        limit = found.get("x-ratelimit-limit", "?")
        at = time.strftime("%H:%M:%S UTC", time.gmtime(int(reset)))
        return Retryable(
            error, until=int(reset) + 1.0,
            reason=f"GitHub's primary rate limit ({limit} requests an hour) is used up until {at}",
            advice=("an authenticated token gets 5,000 requests an hour, anonymous access 60"
                    if limit == "60" else ""))
    return Retryable(
        error, at_least=SECONDARY_WAIT, spread=5.0,
        reason=("GitHub's secondary rate limit names no wait; GitHub asks for at least a "
                "minute, and longer on each repeat"),
        advice="start fewer downloads at once on this token")


def _call(repo: GitHubProject, fn: Callable[[], T], policy: RetryPolicy | None, *,
          what: str, sha: str | None = None) -> T:
    """Run one PyGithub call under the retry policy, mapping its errors to builder's."""
    import requests
    from github import GithubException

    def attempt() -> T:
        try:
            return fn()
        except GithubException as exc:
            data: Mapping[str, Any] = exc.data if isinstance(exc.data, dict) else {}
            message = str(data.get("message", "") or "")
            check_status(exc.status, exc.headers, message, what=what,
                         final=lambda status, text: _final_error(repo, status, text, sha),
                         rate_limited=_rate_limited)
            raise DownloadError(f"{what}: unexpected answer HTTP {exc.status}") from None
        except requests.RequestException as exc:
            raise Retryable(DownloadError(f"{what}: {network_failure(exc)}")) from None

    return (policy or RetryPolicy.from_environment()).run(attempt)


def _what(repo: GitHubProject, sha: str | None = None) -> str:
    where = f"GitHub repository {repo.full_name}"
    return f"{where} at {sha[:12]}" if sha else where


def _final_error(repo: GitHubProject, status: int, message: str,
                 sha: str | None) -> DownloadError:
    api = repo.api_url
    name = repo.full_name
    has_token = bool(repo.token)
    detail = f" ({redact(message)})" if message and message.lower() != "not found" else ""
    if status == 401:
        if has_token:
            return AuthenticationError(
                f"{api} rejected the token for {name} (HTTP 401{detail}): check that the "
                "token is valid, not expired, and meant for this server"
            )
        return AuthenticationError(
            f"{api} requires a token for {name} (HTTP 401): register the repository with "
            "--token"
        )
    if status == 403:
        return AuthenticationError(
            f"{api} refused access to {name} (HTTP 403{detail}): check the token's scopes "
            "(classic tokens need 'repo' for private repositories; fine-grained tokens need "
            "read access to Contents) and the organisation's token policy"
        )
    if status in (404, 422):
        what = (f"commit {sha} of {name}" if sha else f"repository {name}")
        hint = ("check --owner and --repository"
                + (", that the token can see the repository" if has_token
                   else ", and register a --token if the repository is private")
                + (", and that the commit was pushed" if sha else ""))
        return NotFoundError(f"{what} was not found at {api} (HTTP {status}): {hint}")
    return DownloadError(f"{_what(repo, sha)}: the server answered HTTP {status}{detail}")
