"""GitHub (github.com and GitHub Enterprise) login and download, through PyGithub and requests.

A download is one streamed archive: `GET {api}/repos/{owner}/{repo}/tarball/{commit}`, whose
redirect to the archive host is followed (requests drops the Authorization header when the
redirect leaves the API host, as it should for codeload.github.com). Only the subdirectory is
extracted, by the shared safe extractor. That is two HTTP requests for any size of tree.

More requests happen only when needed: `verify_download` lists the commit's tree (one
request), and an archive that holds submodule placeholders (empty directories) looks up their
gitlinks and `.gitmodules` (two requests) and downloads each submodule that lives on the same
server the same way, at its pinned commit.

PyGithub is imported lazily and built with its throttle off (`seconds_between_requests=0`)
and its own retries off: the shared `RetryPolicy` retries, bounded, and honours Retry-After
and X-RateLimit-Reset up to a cap.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping, Sequence
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
from builder.code.retry import Retryable, RetryPolicy, check_status
from builder.errors import AuthenticationError, DownloadError, NotFoundError
from builder.repositories.urls import path_on_server
from builder.state.secrets import redact

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


# ---------------------------------------------------------------------------- public API


def login(repo: GitHubProject, policy: RetryPolicy | None = None) -> None:
    """Check the token (or anonymous access) against the configured API URL: one request."""
    client = _client(repo, lazy=False)
    _call(repo, lambda: client.get_repo(repo.full_name), policy, what=_what(repo))


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
    # A client per thread (PyGithub's is not thread-safe): its connection serves the thread's
    # requests one after another.
    projects = PerThread(lambda: _client(repo, lazy=True).get_repo(repo.full_name))
    old, new = (relative_listing(entries, subdir) for entries in run_all([
        lambda: _tree_entries(repo, base, policy, projects.get()),
        lambda: _tree_entries(repo, sha, policy, projects.get()),
    ]))
    plan = plan_update(old, new)
    if plan is None:
        return None
    verify = wants_verify(repo, directory)
    what = _what(repo, sha)

    def blob(path: str) -> tuple[bytes, str]:
        blob_id = new[path][1]
        return _blob(repo, projects.get(), blob_id, policy, what=what), blob_id

    return write_update(directory, Path(base_directory), plan, blob, what=what,
                        expected=(lambda: new) if verify else None)


def tree_listing(repo: GitHubProject, commit: str, subdirectory: str | None,
                 policy: RetryPolicy | None = None) -> Listing:
    """The commit's files below `subdirectory`: path -> (mode, blob id); one request."""
    sha = validate_commit(commit)
    subdir = normalize_subdirectory(subdirectory)
    return relative_listing(_tree_entries(repo, sha, policy or RetryPolicy.from_environment()),
                            subdir)


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
    client = _client(repo, lazy=True, timeout=timeout)
    project = client.get_repo(repo.full_name, lazy=True)
    asked = 0
    try:
        for name, tip in tips[:limit]:
            status = project.compare(tip, sha, comparison_commits_per_page=1).status
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
    entries: list[tuple[str, str, str]] | None = None

    def listing() -> list[tuple[str, str, str]]:
        nonlocal entries
        if entries is None:
            entries = _tree_entries(repo, sha, policy)
        return entries

    candidates = empty_directories(target)
    if candidates:
        _fetch_submodules(repo, sha, target, subdir, candidates, listing, policy, depth)
    if verify:
        verify_tree(target, relative_listing(listing(), subdir), what=what)


def _open_tarball(repo: GitHubProject, sha: str, policy: RetryPolicy) -> requests.Response:
    import requests

    url = f"{repo.api_url.rstrip('/')}/repos/{repo.owner}/{repo.repository}/tarball/{sha}"
    headers = {
        "Accept": "application/vnd.github+json",
        "Accept-Encoding": "identity",
        "User-Agent": f"builder/{__version__}",
        "X-GitHub-Api-Version": API_VERSION,
    }
    token = repo.token
    if token:
        headers["Authorization"] = f"token {token}"
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
                     final=lambda status, text: _final_error(repo, status, text, sha))
    return response


def _message_of(response: requests.Response) -> str:
    try:
        body = response.raw.read(64 * 1024, decode_content=True)
    except Exception:
        return ""
    try:
        import json

        data = json.loads(body)
        return str(data.get("message", "")) if isinstance(data, dict) else ""
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:200]


# ---------------------------------------------------------------------------- submodules


def _fetch_submodules(repo: GitHubProject, sha: str, target: Path, subdir: str,
                      candidates: list[str], listing: Callable[[], list[tuple[str, str, str]]],
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
    client = _client(repo, lazy=True)

    def fetch() -> Any:
        return client.get_repo(repo.full_name).get_contents(".gitmodules", ref=sha)

    try:
        content = _call(repo, fetch, policy, what=_what(repo, sha), sha=sha)
    except NotFoundError:
        raise DownloadError(f"{_what(repo, sha)} has submodules but no .gitmodules") from None
    if isinstance(content, list):
        raise DownloadError(f"{_what(repo, sha)}: .gitmodules is a directory")
    return bytes(content.decoded_content).decode("utf-8", "replace")


# ---------------------------------------------------------------------------- tree listing


def _tree_entries(repo: GitHubProject, sha: str, policy: RetryPolicy,
                  project: Any = None) -> list[tuple[str, str, str]]:
    if project is None:
        project = _client(repo, lazy=True).get_repo(repo.full_name)

    def fetch() -> Any:
        return project.get_git_tree(sha, recursive=True)

    tree = _call(repo, fetch, policy, what=_what(repo, sha), sha=sha)
    if tree.raw_data.get("truncated"):
        raise DownloadError(f"{_what(repo, sha)}: GitHub truncated the commit's tree listing; "
                            "the tree is too large to verify")
    return [(item.path, item.mode, item.sha) for item in tree.tree]


def _blob(repo: GitHubProject, project: Any, sha: str, policy: RetryPolicy, *,
          what: str) -> bytes:
    import base64

    blob = _call(repo, lambda: project.get_git_blob(sha), policy, what=what)
    if blob.encoding != "base64":
        raise DownloadError(f"{what}: blob {sha} came in encoding {blob.encoding!r}")
    return base64.b64decode(blob.content)


# ---------------------------------------------------------------------------- plumbing


def _client(repo: GitHubProject, *, lazy: bool, timeout: float | None = None) -> Github:
    from github import Auth, Github

    token = repo.token
    return Github(
        base_url=repo.api_url.rstrip("/"),
        auth=Auth.Token(token) if token else None,
        timeout=max(1, round(timeout if timeout is not None else read_timeout())),
        user_agent=f"builder/{__version__}",
        retry=None,
        seconds_between_requests=0,
        seconds_between_writes=0,
        lazy=lazy,
    )


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
                         final=lambda status, text: _final_error(repo, status, text, sha))
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
