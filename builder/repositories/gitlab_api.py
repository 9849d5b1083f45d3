"""GitLab (gitlab.com and self-hosted, with subgroups) login and download, via python-gitlab.

A download is one streamed archive request, `GET /projects/{path}/repository/archive.tar.gz
?sha={commit}&path={subdirectory}`, made with python-gitlab's `repository_archive` on a lazy
project (no extra GET). GitLab names the archive's top folder
`{project}-{sha}-{sha}[-{path with / -> -}]` and keeps the path inside it, so the extractor
drops one component and then keeps what is below the subdirectory.

python-gitlab's own retries and rate-limit sleeps are off; the shared `RetryPolicy` retries
instead. python-gitlab's exceptions do not carry the response headers, so a response hook on
its session keeps the last failed answer's headers for Retry-After and RateLimit-Reset.

gitlab.com allows 5 archive requests a minute per project and user and answers the sixth with
a 429 that names no wait (`lib/gitlab/application_rate_limiter.rb`: `project_repositories_archive:
{ threshold: 5, interval: 1.minute }`, a fixed window that restarts on each whole minute):
builder waits for the next minute, with jitter, and says so. A `path` the commit does not have
gets 200 and an empty body (Workhorse has sent its 200 before Gitaly refuses the path): builder
asks the tree API whether the directory exists and names it when it does not.

Token scopes: the archive, tree and compare APIs need `read_api` (`read_repository` covers only
the files API and git over HTTP); a CI job token is not accepted on them at all.

More requests happen only when needed: `verify_download` lists the tree (paginated), and an
archive with submodule placeholders (empty directories) looks up the gitlinks and
`.gitmodules`, then downloads each submodule on the same server at its pinned commit.
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
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
from builder.code.lfs import MAX_POINTER_BYTES, parse_pointer
from builder.code.retry import (
    Retryable,
    RetryPolicy,
    check_status,
    named_wait,
)
from builder.code.sessions import origin_bound_session
from builder.errors import AuthenticationError, DownloadError, NotFoundError, RateLimitError
from builder.repositories.extras import require_extra
from builder.repositories.urls import path_on_server
from builder.state.secrets import redact

# Every use of the API comes through this module: without the extra, one line names the
# install command instead of a ModuleNotFoundError.
require_extra("gitlab")

if TYPE_CHECKING:
    import gitlab
    import requests


class GitLabProject(Protocol):
    """What the API calls need of a GitLab project (`GitLabCodeRepository` has it)."""

    group: str
    project: str
    url: str

    @property
    def token(self) -> str | None: ...
    @property
    def path_with_namespace(self) -> str: ...

T = TypeVar("T")
CHUNK = 1 << 16
ARCHIVE_LIMIT = ("gitlab.com allows 5 archive downloads a minute per project and user, "
                 "counted in whole clock minutes")
ARCHIVE_ADVICE = ("to stay under it, keep the download cache between containers "
                  "(BUILDER_CACHE_DIR on a volume), start fewer containers at once, or give "
                  "each runner its own token")
# Passed to every python-gitlab call: builder's RetryPolicy retries, not python-gitlab.
_NO_RETRIES: dict[str, Any] = {"obey_rate_limit": False, "max_retries": 0,
                               "retry_transient_errors": False}


# ---------------------------------------------------------------------------- public API


def login(repo: GitLabProject, policy: RetryPolicy | None = None) -> None:
    """Check the token (or anonymous access) by reading the project: one request."""
    client = _Client(repo)
    client.call(lambda: client.gl.projects.get(repo.path_with_namespace, **_NO_RETRIES),
                policy, what=_what(repo))


def download_files(repo: GitLabProject, commit: str, directory: str | os.PathLike[str],
                   repo_sub_directory: str | None, policy: RetryPolicy | None = None) -> None:
    """Download `commit` (only `repo_sub_directory`) into `directory`, atomically."""
    sha = validate_commit(commit)
    subdir = normalize_subdirectory(repo_sub_directory)
    verify = wants_verify(repo, directory)
    policy = policy or RetryPolicy.from_environment()
    fetch_atomically(directory, lambda target: _download(repo, sha, target, subdir, verify,
                                                         policy, depth=0))


def update_files(repo: GitLabProject, base_commit: str, base_directory: str,
                 commit: str, directory: str | os.PathLike[str], repo_sub_directory: str | None,
                 policy: RetryPolicy | None = None) -> int | None:
    """`commit` into `directory` from the tree of `base_commit` at `base_directory`: one
    compare request (`straight`, tree to tree) and one files request per changed file, whose
    content is checked against the blob id GitLab gives with it. Returns how many files it
    fetched, or None (nothing written) when a full download is the better way."""
    import base64

    from builder.code.parallel import PerThread
    from builder.code.updates import cached_paths, plan_from_changes, write_update

    sha, base = validate_commit(commit), validate_commit(base_commit)
    subdir = normalize_subdirectory(repo_sub_directory)
    # One try per request: on any failure the caller downloads the archive, with retries.
    policy = (policy or RetryPolicy.from_environment()).single_try()
    client = _Client(repo)
    project = client.gl.projects.get(repo.path_with_namespace, lazy=True)
    what = _what(repo, sha)
    answer = client.call(lambda: project.repository_compare(base, sha, straight=True,
                                                            **_NO_RETRIES),
                         policy, what=what, sha=sha)
    if not isinstance(answer, dict) or answer.get("compare_timeout") or answer.get("overflow"):
        return None  # GitLab cut the list of changes short
    prefix = f"{subdir}/" if subdir else ""
    changes: dict[str, str | None] = {}
    for diff in answer.get("diffs") or []:
        gone = bool(diff.get("deleted_file"))
        for path, mode in ((diff["old_path"], None), (diff["new_path"], diff["b_mode"])):
            if path.startswith(prefix) and (mode is None or not gone):
                changes[path[len(prefix):]] = None if mode is None else str(mode).rjust(6, "0")
    plan = plan_from_changes(cached_paths(Path(base_directory)), changes)
    if plan is None:
        return None
    verify = wants_verify(repo, directory)

    # Files are fetched at once, from several threads: a client per thread.
    clients = PerThread(lambda: _Client(repo), client)

    def fetch(path: str) -> tuple[bytes, str]:
        here = clients.get()
        files = here.gl.projects.get(repo.path_with_namespace, lazy=True).files
        found = here.call(lambda: files.get(file_path=prefix + path, ref=sha, **_NO_RETRIES),
                          policy, what=what, sha=sha)
        data = base64.b64decode(found.content)
        if parse_pointer(data) is not None:
            # The archive holds the content this pointer names: download it in full, so that
            # a commit's tree never depends on what was cached.
            raise DownloadError(f"{what}: {path} is a Git LFS file")
        return data, str(found.blob_id)

    def expected() -> Listing:
        return relative_listing(_tree_entries(repo, sha, subdir, policy), subdir)

    return write_update(directory, Path(base_directory), plan, fetch, what=what,
                        expected=expected if verify else None,
                        blob=_pointer_reader(client, project, policy, what), concurrent=True)


def tree_listing(repo: GitLabProject, commit: str, subdirectory: str | None,
                 policy: RetryPolicy | None = None) -> Listing:
    """The commit's files below `subdirectory`: path -> (mode, blob id)."""
    sha = validate_commit(commit)
    subdir = normalize_subdirectory(subdirectory)
    entries = _tree_entries(repo, sha, subdir, policy or RetryPolicy.from_environment())
    return relative_listing(entries, subdir)


def branch_contains(repo: GitLabProject, commit: str, tips: Sequence[tuple[str, str]],
                    *, timeout: float) -> tuple[bool | None, str]:
    """Does a branch contain `commit`? One request: `repository/commits/{sha}/refs?type=branch`.

    True or False is an answer; None means GitLab could not say (the account tells why).
    No retries: the caller has a fallback, and the request is bounded by `timeout`.
    """
    import gitlab
    import requests

    sha = validate_commit(commit)
    client = _Client(repo)
    try:
        project = client.gl.projects.get(repo.path_with_namespace, lazy=True)
        refs = project.commits.get(sha, lazy=True).refs(
            type="branch", iterator=True, per_page=1, timeout=timeout, **_NO_RETRIES)
        first = next(iter(refs), None)
    except gitlab.GitlabError as exc:
        message = str(exc.error_message or "")
        if exc.response_code == 404 and "commit" in message.lower():
            return False, "GitLab does not have the commit"
        detail = f" ({redact(message)})" if message else ""
        return None, f"GitLab's commit refs API answered HTTP {exc.response_code}{detail}"
    except requests.RequestException as exc:
        return None, f"GitLab's commit refs API: {network_failure(exc)}"
    if first is None:
        return False, "GitLab's commit refs API lists no branch that contains it"
    return True, f"GitLab's commit refs API: branch {first.get('name')!r} contains it"


# ---------------------------------------------------------------------------- download


class _Chunks:
    """A streamed python-gitlab answer as stream_archive wants it."""

    def __init__(self, chunks: Iterator[bytes], response: requests.Response | None) -> None:
        self._chunks = chunks
        self._response = response
        self.headers: Mapping[str, str] = response.headers if response is not None else {}

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        if self._response is not None:
            self._response.close()


def _download(repo: GitLabProject, sha: str, target: Path, subdir: str, verify: bool,
              policy: RetryPolicy, depth: int) -> None:
    import requests

    what = _what(repo, sha)
    client = _Client(repo)

    project = client.gl.projects.get(repo.path_with_namespace, lazy=True)

    def open_archive() -> _Chunks:
        def request() -> Iterator[bytes]:
            return project.repository_archive(  # type: ignore[no-any-return]
                sha=sha, format="tar.gz", path=subdir or None, streamed=True, iterator=True,
                chunk_size=CHUNK, timeout=read_timeout(), **_NO_RETRIES)

        chunks = client.attempt(request, what=what, sha=sha, subdir=subdir,
                                rate_limited=_archive_rate_limit)
        response = client.last_response
        try:
            first = next((chunk for chunk in chunks if chunk), b"")
        except requests.RequestException as exc:
            raise Retryable(DownloadError(f"{what}: the connection broke off during the "
                                          f"download ({network_failure(exc)})")) from None
        if not first:
            if response is not None:
                response.close()
            raise _empty_archive(client, project, sha, subdir, what)
        return _Chunks(itertools.chain((first,), chunks), response)

    stream_archive(open_archive, target, what=what, policy=policy, strip_components=1,
                   subdirectory=subdir)
    entries: list[tuple[str, str, str]] | None = None

    def listing() -> list[tuple[str, str, str]]:
        nonlocal entries
        if entries is None:
            entries = _tree_entries(repo, sha, subdir, policy)
        return entries

    candidates = empty_directories(target)
    if candidates:
        _fetch_submodules(repo, sha, target, subdir, candidates, listing, policy, depth)
    if verify:
        verify_tree(target, relative_listing(listing(), subdir), what=what,
                    blob=_pointer_reader(client, project, policy, what))


def _empty_archive(client: _Client, project: Any, sha: str, subdir: str,
                   what: str) -> DownloadError | Retryable:
    """GitLab answered 200 with no body: a `path` the commit lacks (GitLab's answer to it),
    else an archive that failed after the answer began (worth another try)."""
    if subdir:
        try:
            items = client.attempt(lambda: project.repository_tree(
                path=subdir, ref=sha, per_page=1, get_all=False, **_NO_RETRIES),
                what=what, sha=sha, subdir=subdir)
        except NotFoundError:  # GitLab 17.7 and later
            items = []
        except (DownloadError, Retryable):
            items = None
        if items == []:  # before 17.7, an empty list
            return NotFoundError(f"{what}: the commit has no directory {subdir!r} (GitLab "
                                 "answered with an empty archive)")
    return Retryable(DownloadError(f"{what}: GitLab answered with an empty archive (it failed "
                                   "to make it)"))


def _pointer_reader(client: _Client, project: Any, policy: RetryPolicy,
                    what: str) -> Callable[[str], bytes]:
    """Blob id -> its first bytes (enough for a Git LFS pointer): for verifying a file that
    holds the content its pointer names."""

    def read(blob_id: str) -> bytes:
        def first_bytes() -> bytes:
            chunks = project.repository_raw_blob(blob_id, streamed=True, iterator=True,
                                                 chunk_size=MAX_POINTER_BYTES + 1,
                                                 **_NO_RETRIES)
            response = client.last_response
            try:
                data = b""
                for chunk in chunks:
                    data += chunk
                    if len(data) > MAX_POINTER_BYTES:
                        break
                return data
            finally:
                if response is not None:
                    response.close()

        return client.call(first_bytes, policy, what=what)

    return read


def _tree_entries(repo: GitLabProject, sha: str, subdir: str,
                  policy: RetryPolicy) -> list[tuple[str, str, str]]:
    client = _Client(repo)

    def fetch() -> list[Any]:
        project = client.gl.projects.get(repo.path_with_namespace, lazy=True)
        return list(project.repository_tree(path=subdir, ref=sha, recursive=True,
                                            get_all=True, per_page=100, **_NO_RETRIES))

    items = client.call(fetch, policy, what=_what(repo, sha), sha=sha, subdir=subdir)
    return [(str(item["path"]), str(item["mode"]), str(item["id"])) for item in items]


# ---------------------------------------------------------------------------- submodules


def _fetch_submodules(repo: GitLabProject, sha: str, target: Path, subdir: str,
                      candidates: list[str], listing: Callable[[], list[tuple[str, str, str]]],
                      policy: RetryPolicy, depth: int) -> None:
    fill_archive_submodules(
        what=_what(repo, sha), service_url=repo.url,
        superproject=f"{repo.url.rstrip('/')}/{repo.path_with_namespace}.git",
        target=target, subdir=subdir, candidates=candidates, listing=listing,
        gitmodules=lambda: _gitmodules(repo, sha, policy),
        same_server=lambda url: _same_server(repo, url),
        download=lambda other, link, dest: _download(other, link, dest, "", False, policy,
                                                     depth + 1),
        depth=depth,
    )


def _same_server(repo: GitLabProject, url: str) -> GitLabProject | None:
    parts = (path_on_server(url, repo.url) or "").split("/")
    if len(parts) < 2 or not all(parts):
        return None
    other = copy.copy(repo)
    other.group, other.project = "/".join(parts[:-1]), parts[-1]
    return other


def _gitmodules(repo: GitLabProject, sha: str, policy: RetryPolicy) -> str:
    client = _Client(repo)

    def fetch() -> bytes:
        project = client.gl.projects.get(repo.path_with_namespace, lazy=True)
        return bytes(project.files.raw(file_path=".gitmodules", ref=sha, **_NO_RETRIES))

    try:
        data = client.call(fetch, policy, what=_what(repo, sha), sha=sha)
    except NotFoundError:
        raise DownloadError(f"{_what(repo, sha)} has submodules but no .gitmodules") from None
    return data.decode("utf-8", "replace")


# ---------------------------------------------------------------------------- plumbing


class _Client:
    """A python-gitlab client whose failed answers' headers are kept for the retry policy."""

    def __init__(self, repo: GitLabProject) -> None:
        import gitlab

        self.repo = repo
        self.last_headers: dict[str, str] = {}
        self.last_response: requests.Response | None = None
        token = repo.token
        self.gl: gitlab.Gitlab = gitlab.Gitlab(
            repo.url.rstrip("/"),
            private_token=token or None,
            timeout=read_timeout(),
            retry_transient_errors=False,
            user_agent=f"builder/{__version__}",
            keep_base_url=True,
            session=origin_bound_session(),  # PRIVATE-TOKEN never follows a redirect away
        )
        self.gl.session.hooks["response"].append(self._remember)

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.last_response = response
        self.last_headers = dict(response.headers)

    def attempt(self, fn: Callable[[], T], *, what: str, sha: str | None = None,
                subdir: str = "", rate_limited: Any = None) -> T:
        """One try of a python-gitlab call: errors become builder's, transient ones Retryable."""
        import gitlab
        import requests

        self.last_headers = {}
        try:
            return fn()
        except gitlab.GitlabError as exc:
            status = int(exc.response_code or 0)
            message = _message_text(exc.error_message)
            if status == 0:
                raise DownloadError(redact(f"{what}: {message}")) from None
            check_status(status, self.last_headers, message, what=what,
                         final=lambda code, text: _final_error(self.repo, code, text, sha,
                                                               subdir),
                         rate_limited=rate_limited or _rate_limit)
            raise DownloadError(f"{what}: unexpected answer HTTP {status}") from None
        except requests.RequestException as exc:
            raise Retryable(DownloadError(f"{what}: {network_failure(exc)}")) from None

    def call(self, fn: Callable[[], T], policy: RetryPolicy | None, *, what: str,
             sha: str | None = None, subdir: str = "") -> T:
        return (policy or RetryPolicy.from_environment()).run(
            lambda: self.attempt(fn, what=what, sha=sha, subdir=subdir))


def _message_text(message: Any) -> str:
    """GitLab's error message: a string, or an object such as {"error": "..."}."""
    if isinstance(message, Mapping):
        return "; ".join(str(value) for value in message.values())
    return str(message or "")


def _rate_limit(status: int, headers: Mapping[str, Any] | None, message: str, *,
                what: str, archive: bool = False) -> Retryable:
    """GitLab's limits: its Rack::Attack throttles name their wait (Retry-After), which is
    honoured; its application limits (ApplicationRateLimiter, the archive's among them) answer
    429 with no header at all and count fixed windows, mostly of a minute, so builder waits for
    the next whole minute rather than retrying fast."""
    detail = f": {redact(message)}" if message else ""
    error = RateLimitError(f"{what}: rate limited by GitLab (HTTP {status}{detail})")
    advice = ARCHIVE_ADVICE if archive else ""
    reason = ARCHIVE_LIMIT if archive else ("GitLab's limit names no wait; its limits count "
                                            "whole clock minutes")
    return (named_wait(error, headers, reason="GitLab asks to wait (Retry-After)", advice=advice)
            or Retryable(error, window=60.0, spread=3.0, reason=reason, advice=advice))


def _archive_rate_limit(status: int, headers: Mapping[str, Any] | None, message: str, *,
                        what: str) -> Retryable:
    """The archive limit: gitlab.com answers 429 with a JSON message and no Retry-After or
    RateLimit-* headers (lib/api/repositories.rb, API::Helpers::RateLimiter)."""
    return _rate_limit(status, headers, message, what=what, archive=True)


def _what(repo: GitLabProject, sha: str | None = None) -> str:
    where = f"GitLab project {repo.path_with_namespace}"
    return f"{where} at {sha[:12]}" if sha else where


def _final_error(repo: GitLabProject, status: int, message: str, sha: str | None,
                 subdir: str) -> DownloadError:
    url = repo.url
    name = repo.path_with_namespace
    has_token = bool(repo.token)
    detail = f" ({redact(message)})" if message else ""
    if status == 401:
        if has_token:
            return AuthenticationError(
                f"{url} rejected the token for {name} (HTTP 401): check that the token is "
                "valid, not expired, and meant for this server (a CI job token is not "
                "accepted here: use an access token with read_api, or --type git)"
            )
        return AuthenticationError(
            f"{url} requires a token for {name} (HTTP 401): register the project with --token"
        )
    if status == 403:
        return AuthenticationError(
            f"{url} refused access to {name} (HTTP 403{detail}): the token needs the read_api "
            "scope (read_repository covers only the files API and git clone), and its user at "
            "least Reporter access"
        )
    if status == 404:
        if sha is None or "project" in message.lower():
            hint = ("check --group and --project"
                    + (" and that the token can see the project" if has_token
                       else ", and register a --token if the project is private"))
            return NotFoundError(f"project {name} was not found at {url} (HTTP 404): {hint}")
        where = f" or its directory {subdir!r}" if subdir else ""
        return NotFoundError(
            f"commit {sha}{where} of {name} was not found at {url} (HTTP 404): check that the "
            "commit was pushed"
        )
    return DownloadError(f"{_what(repo, sha)}: the server answered HTTP {status}{detail}")
