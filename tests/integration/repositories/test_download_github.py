"""GitHub downloads against the loopback GitHub server: exact trees, requests, failures."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from builder.code.download import CachedTree, download
from builder.code.retry import RetryPolicy
from builder.errors import (
    AuthenticationError,
    DownloadError,
    IntegrityError,
    NotFoundError,
    RateLimitError,
)
from builder.repositories import github_api
from builder.repositories.github import GitHubCodeRepository
from tests.infra.github_server import GitHubServer
from tests.infra.gitrepos import BareRepo
from tests.integration.code.test_download_common import (
    add_gitlink,
    archive_snapshot,
    assert_no_secret,
    assert_nothing_left,
    commit_rich,
    downloads_dir,
    snapshot,
    two_commits,
)

TARBALL = r"/tarball/"
CODELOAD = r"/legacy\.(?:tar\.gz|zip)/"


def github_repo(server: GitHubServer, full: str = "octo/proj", token: str | None = "server",
                api_prefix: str = "") -> GitHubCodeRepository:
    owner, name = full.split("/")
    config: dict[str, Any] = {"owner": owner, "repository": name, "url": server.url,
                              "api_url": server.url + api_prefix}
    if token is not None:
        config["token"] = server.token if token == "server" else token
    return GitHubCodeRepository("id", "gh", config)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def fast_policy(sleeps: Callable[[float], None] | None = None, **limits: Any) -> RetryPolicy:
    values: dict[str, Any] = {"max_tries": 4, "max_seconds": 30.0, "base_delay": 0.01,
                              "max_delay": 0.05, "max_wait": 5.0}
    values.update(limits)
    return RetryPolicy(sleep=sleeps or (lambda _s: None), **values)


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    return downloads_dir(tmp_path)


@pytest.fixture
def rich(github_server: GitHubServer) -> tuple[GitHubServer, Any, str]:
    handle = github_server.create_repo("octo/proj")
    sha = commit_rich(handle)
    github_server.reset_counts()
    return github_server, handle, sha


# ---------------------------------------------------------------------------- the exact tree


def test_whole_tree_equals_git_archive_in_two_requests(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    result = download(github_repo(server), sha, downloads / "code")
    assert snapshot(result) == archive_snapshot(handle.bare, sha)
    assert "app/empty_dir" not in snapshot(result)  # git does not track empty directories
    assert server.request_count == 2
    assert server.count(TARBALL) == 1 and server.count(CODELOAD) == 1
    # The archive came from the codeload origin on the URL's one-off token alone: the token
    # itself never went there.
    assert server.codeload.authorizations == []


def test_subdirectory_equals_git_archive_of_its_tree(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    result = download(github_repo(server), sha, downloads / "code", "app")
    tree = snapshot(result)
    assert tree == archive_snapshot(handle.bare, sha, "app")
    assert tree["link_to_main"] == ("link", "main.py")
    assert tree["dirlink"] == ("link", "pkg")
    assert tree["bin/run.sh"][1] is True and tree["main.py"][1] is False
    assert "pkg/data/ünïcødé — file.txt" in tree and "pkg/data/日本語.txt" in tree
    assert server.request_count == 2


def test_nested_subdirectory_and_enterprise_api_prefix(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    repo = github_repo(server, api_prefix="/api/v3")
    result = download(repo, sha, downloads / "code", "app/pkg/")
    assert snapshot(result) == archive_snapshot(handle.bare, sha, "app/pkg")


def test_verify_download_adds_one_request(rich: Any, downloads: Path) -> None:
    server, _handle, sha = rich
    download(github_repo(server), sha, downloads / "code", "app", verify=True)
    assert server.request_count == 3 and server.count(r"/git/trees/") == 1


def test_verify_download_attribute_on_direct_call(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    repo = github_repo(server)
    repo.verify_download = True  # type: ignore[attr-defined]
    repo.download_files(sha, str(downloads / "code"), None)
    assert server.count(r"/git/trees/") == 1
    assert snapshot(downloads / "code") == archive_snapshot(handle.bare, sha)


def test_dockerignore_of_the_subdirectory_is_applied(github_server: GitHubServer,
                                                     downloads: Path) -> None:
    handle = github_server.create_repo("octo/proj")
    sha = handle.commit({".dockerignore": "root-ignore\n", "app/.dockerignore": "*.log\ndata\n",
                         "app/main.py": "m", "app/x.log": "l", "app/data/big.csv": "c",
                         "app/keep/y.py": "y"})
    handle.push()
    result = download(github_repo(github_server), sha, downloads / "code", "app")
    assert sorted(snapshot(result)) == [".dockerignore", "keep", "keep/y.py", "main.py"]


def test_direct_download_files_is_atomic(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    repo = github_repo(server)
    repo.download_files(sha, str(downloads / "code"), "app")
    assert snapshot(downloads / "code") == archive_snapshot(handle.bare, sha, "app")
    with pytest.raises(NotFoundError):
        repo.download_files("f" * 40, str(downloads / "other"), None)
    assert sorted(p.name for p in downloads.iterdir()) == ["code"]


# ---------------------------------------------------------------------------- login


def test_login_is_one_request(rich: Any) -> None:
    server, _handle, _sha = rich
    github_repo(server).login()
    assert server.requests == [("GET", "/repos/octo/proj")]


def test_public_repository_without_token_uses_the_configured_api(
        github_server: GitHubServer, downloads: Path) -> None:
    handle = github_server.create_repo("octo/open", private=False)
    sha = commit_rich(handle)
    github_server.reset_counts()
    repo = github_repo(github_server, "octo/open", token=None)
    repo.login()
    assert github_server.requests == [("GET", "/repos/octo/open")]
    result = download(repo, sha, downloads / "code")
    assert snapshot(result) == archive_snapshot(handle.bare, sha)


def test_login_wrong_token_fails_at_once_without_leaking(rich: Any) -> None:
    server, _handle, _sha = rich
    with pytest.raises(AuthenticationError) as caught:
        github_repo(server, token="ghp_wrongwrongwrong").login()
    assert "rejected the token" in str(caught.value)
    assert_no_secret(str(caught.value), "ghp_wrongwrongwrong", server.token)
    assert server.request_count == 1


def test_login_private_without_token_says_what_to_check(rich: Any) -> None:
    server, _handle, _sha = rich
    with pytest.raises(NotFoundError, match="register a --token if the repository is private"):
        github_repo(server, token=None).login()


def test_login_retries_server_errors(rich: Any) -> None:
    server, _handle, _sha = rich
    server.fail_next(2, status=502)
    github_api.login(github_repo(server), policy=fast_policy())
    assert server.request_count == 3


def test_login_waits_out_a_rate_limit(rich: Any) -> None:
    server, _handle, _sha = rich
    server.rate_limit_next(1, reset_in=2)
    sleeps = Sleeps()
    github_api.login(github_repo(server), policy=fast_policy(sleeps, jitter=lambda: 0.0))
    assert len(sleeps.calls) == 1 and 1.0 <= sleeps.calls[0] <= 3.5
    assert server.request_count == 2


# ---------------------------------------------------------------------------- failures


def test_wrong_commit_fails_at_once_and_leaves_nothing(rich: Any, downloads: Path) -> None:
    server, _handle, _sha = rich
    with pytest.raises(NotFoundError) as caught:
        download(github_repo(server), "deadbeef" * 5, downloads / "code")
    message = str(caught.value)
    assert "commit deadbeefdeadbeef" in message and "was pushed" in message
    assert_no_secret(message, server.token)
    assert server.request_count == 1
    assert_nothing_left(downloads)


def test_missing_subdirectory_fails(rich: Any, downloads: Path) -> None:
    server, _handle, sha = rich
    with pytest.raises(NotFoundError, match="no directory 'nope'"):
        download(github_repo(server), sha, downloads / "code", "nope")
    assert_nothing_left(downloads)


def test_wrong_token_fails_at_once_and_leaves_nothing(rich: Any, downloads: Path) -> None:
    server, _handle, sha = rich
    token = "ghp_" + "x" * 36
    with pytest.raises(AuthenticationError) as caught:
        download(github_repo(server, token=token), sha, downloads / "code")
    assert_no_secret(str(caught.value), token, server.token)
    assert server.request_count == 1
    assert_nothing_left(downloads)


def test_private_repository_without_token(rich: Any, downloads: Path) -> None:
    server, _handle, sha = rich
    with pytest.raises(NotFoundError, match="register a --token"):
        download(github_repo(server, token=None), sha, downloads / "code")
    assert_nothing_left(downloads)


def test_connection_dropped_mid_body_is_retried(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    server.drop_next_downloads(1, fraction=0.5)
    sleeps = Sleeps()
    github_api.download_files(github_repo(server), sha, downloads / "code", None,
                              policy=fast_policy(sleeps))
    assert snapshot(downloads / "code") == archive_snapshot(handle.bare, sha)
    assert server.count(CODELOAD) == 2 and len(sleeps.calls) == 1
    assert sorted(p.name for p in downloads.iterdir()) == ["code"]


def test_connection_dropped_every_time_fails_and_leaves_nothing(
        rich: Any, downloads: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server, _handle, sha = rich
    server.drop_next_downloads(10, fraction=0.3)
    monkeypatch.setenv("BUILDER_RETRY_MAX_TRIES", "3")
    monkeypatch.setenv("BUILDER_RETRY_BASE_DELAY", "0.01")
    with pytest.raises(DownloadError) as caught:
        download(github_repo(server), sha, downloads / "code")
    message = str(caught.value)
    assert "connection broke off" in message and "gave up after 3 tries" in message
    assert "token=" not in message and "?" not in message
    assert_no_secret(message, server.token)
    assert server.count(CODELOAD) == 3
    assert_nothing_left(downloads)


def test_slow_body_is_waited_for(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    server.slow_next(1, delay=0.5, match=CODELOAD)
    download(github_repo(server), sha, downloads / "code")
    assert snapshot(downloads / "code") == archive_snapshot(handle.bare, sha)
    assert server.count(CODELOAD) == 1


def test_corrupt_archive_fails_without_retry(rich: Any, downloads: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    server, _handle, sha = rich
    real = BareRepo.archive_stream

    def damaged(self: BareRepo, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        data = gzip.decompress(b"".join(real(self, *args, **kwargs)))
        yield gzip.compress(data[: len(data) // 2])  # a complete gzip of half a tar

    monkeypatch.setattr(BareRepo, "archive_stream", damaged)
    with pytest.raises(DownloadError, match="truncated or corrupt"):
        github_api.download_files(github_repo(server), sha, downloads / "code", None,
                                  policy=fast_policy())
    assert server.count(CODELOAD) == 1
    assert_nothing_left(downloads)


def test_primary_rate_limit_fault_waits_for_reset(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    server.rate_limit_next(1, reset_in=3, match=TARBALL)
    sleeps = Sleeps()
    github_api.download_files(github_repo(server), sha, downloads / "code", None,
                              policy=fast_policy(sleeps, jitter=lambda: 0.0))
    assert snapshot(downloads / "code") == archive_snapshot(handle.bare, sha)
    assert len(sleeps.calls) == 1 and 2.0 <= sleeps.calls[0] <= 4.5
    assert server.count(TARBALL) == 2


def test_retry_after_is_honoured(rich: Any, downloads: Path) -> None:
    server, _handle, sha = rich
    server.too_many_requests_next(1, retry_after=2)
    sleeps = Sleeps()
    github_api.download_files(github_repo(server), sha, downloads / "code", None,
                              policy=fast_policy(sleeps, jitter=lambda: 0.0))
    assert sleeps.calls == [2.0]


def test_rate_limit_beyond_the_cap_fails_at_once(rich: Any, downloads: Path) -> None:
    server, _handle, sha = rich
    server.rate_limit_next(5, reset_in=600)
    sleeps = Sleeps()
    with pytest.raises(RateLimitError) as caught:
        github_api.download_files(github_repo(server), sha, downloads / "code", None,
                                  policy=fast_policy(sleeps))
    assert "asks to wait" in str(caught.value) and "BUILDER_RETRY_MAX_WAIT" in str(caught.value)
    assert sleeps.calls == [] and server.request_count == 1
    assert_no_secret(str(caught.value), server.token)
    assert_nothing_left(downloads)


def test_rate_limit_with_real_sleep_through_the_frame(rich: Any, downloads: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    server, handle, sha = rich
    server.too_many_requests_next(1, retry_after=1)
    monkeypatch.setenv("BUILDER_RETRY_BASE_DELAY", "0.01")
    monkeypatch.setenv("BUILDER_RETRY_MAX_WAIT", "2")
    result = download(github_repo(server), sha, downloads / "code")
    assert snapshot(result) == archive_snapshot(handle.bare, sha)


def test_server_errors_are_retried_then_give_up(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    server.fail_next(2, status=503, match=TARBALL)
    github_api.download_files(github_repo(server), sha, downloads / "ok", None,
                              policy=fast_policy())
    assert snapshot(downloads / "ok") == archive_snapshot(handle.bare, sha)
    server.fail_next(10, status=500, match=TARBALL)
    with pytest.raises(DownloadError, match=r"HTTP 500 \(gave up after 4 tries"):
        github_api.download_files(github_repo(server), sha, downloads / "bad", None,
                                  policy=fast_policy())
    assert sorted(p.name for p in downloads.iterdir()) == ["ok"]


def test_verify_detects_a_tampered_archive(rich: Any, downloads: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    server, handle, sha = rich
    real = BareRepo.archive_stream

    def other_commit(self: BareRepo, sha_: str, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        return real(self, parent, *args, **kwargs)

    parent = handle.commit({"app/main.py": "print('changed')\n"})
    handle.push()
    monkeypatch.setattr(BareRepo, "archive_stream", other_commit)
    with pytest.raises(IntegrityError, match=r"content: main\.py"):
        download(github_repo(server), sha, downloads / "code", "app", verify=True)
    assert_nothing_left(downloads)


# ---------------------------------------------------------------------------- submodules


def test_submodule_on_the_same_server_is_fetched_at_its_commit(github_server: GitHubServer,
                                                               downloads: Path) -> None:
    lib = github_server.create_repo("octo/lib")
    first, _second = two_commits(lib)
    proj = github_server.create_repo("octo/proj")
    sha = add_gitlink(proj, "app/vendor/lib", first, "../lib.git")
    github_server.reset_counts()
    result = download(github_repo(github_server), sha, downloads / "code", "app", verify=True)
    assert (result / "vendor/lib/lib.py").read_text() == "VERSION = 1\n"
    assert snapshot(result / "vendor/lib") == archive_snapshot(lib.bare, first)
    # tarball (2) + tree (1) + .gitmodules (1) + the submodule's tarball (2)
    assert github_server.request_count == 6


def test_submodule_elsewhere_fails_with_a_way_forward(github_server: GitHubServer,
                                                      downloads: Path) -> None:
    proj = github_server.create_repo("octo/proj")
    sha = add_gitlink(proj, "vendor/lib", "1" * 40, "https://elsewhere.example/x/lib.git")
    with pytest.raises(DownloadError) as caught:
        download(github_repo(github_server), sha, downloads / "code")
    message = str(caught.value)
    assert "submodule 'vendor/lib'" in message and "--type git" in message
    assert_nothing_left(downloads)


def test_a_download_never_runs_without_submodules(github_server: GitHubServer,
                                                  downloads: Path) -> None:
    proj = github_server.create_repo("octo/proj")
    sha = add_gitlink(proj, "vendor/lib", "2" * 40, "../missing.git")
    with pytest.raises(NotFoundError):
        download(github_repo(github_server), sha, downloads / "code")
    assert_nothing_left(downloads)


# ---------------------------------------------------------------------------- truncated trees


def _deep_repo(server: GitHubServer) -> tuple[Any, str]:
    """40 files in 8 directories, a symlink, and a submodule below app/."""
    lib = server.create_repo("octo/lib")
    first, _second = two_commits(lib)
    handle = server.create_repo("octo/big")
    files = {f"{top}/{sub}/f{i}.py": f"{top}{sub}{i}\n" for top in ("app", "other")
             for sub in ("a", "b", "c", "d") for i in range(5)}
    handle.commit(files, "many files")
    return handle, add_gitlink(handle, "app/vendor/lib", first, "../lib.git")


@pytest.mark.parametrize("limit", ["entries", "bytes"])
def test_a_truncated_tree_listing_is_completed_subtree_by_subtree(
        github_server: GitHubServer, downloads: Path, limit: str) -> None:
    handle, sha = _deep_repo(github_server)
    if limit == "entries":
        github_server.tree_limit = 30  # GitHub's 100,000, scaled down
    else:
        github_server.tree_bytes = 6000  # GitHub's 7 MB, scaled down
    github_server.reset_counts()
    result = download(github_repo(github_server, "octo/big"), sha, downloads / "code",
                      verify=True)
    assert (result / "app/vendor/lib/lib.py").read_text() == "VERSION = 1\n"
    assert snapshot(result / "app/a") == archive_snapshot(handle.bare, sha, "app/a")
    # The truncated root, its own level, then each top-level subtree (complete at that size).
    trees = [path for method, path in github_server.requests if "/git/trees/" in path]
    assert len(trees) == 4


def test_a_truncated_listing_walks_only_towards_the_subdirectory(github_server: GitHubServer,
                                                                 downloads: Path) -> None:
    handle, sha = _deep_repo(github_server)
    github_server.tree_limit = 8
    github_server.reset_counts()
    result = download(github_repo(github_server, "octo/big"), sha, downloads / "code",
                      "app/b", verify=True)
    assert snapshot(result) == archive_snapshot(handle.bare, sha, "app/b")
    # root (truncated) + root level + app (truncated) + app's level + app/b: never other/.
    assert github_server.count(r"/git/trees/") == 5


def test_a_truncated_listing_makes_an_update_download_the_archive(
        github_server: GitHubServer, tmp_path: Path) -> None:
    handle = github_server.create_repo("octo/wide")
    first = str(handle.commit({f"d{i}/f.py": f"{i}\n" for i in range(30)}))
    handle.push()
    cached = download(github_repo(github_server, "octo/wide"), first, tmp_path / "first")
    second = str(handle.commit({"d0/f.py": "changed\n"}))
    handle.push()
    github_server.tree_limit = 10
    github_server.reset_counts()
    result = download(github_repo(github_server, "octo/wide"), second, tmp_path / "second",
                      base=CachedTree(first, cached))
    assert snapshot(result) == archive_snapshot(handle.bare, second)
    # both listings go out at once; a truncated one makes it the archive, and no walk
    assert github_server.count(r"/git/trees/") == 2
    assert github_server.count(TARBALL) == 1 and github_server.count(r"/git/blobs/") == 0


# ---------------------------------------------------------------------------- PyGithub


def test_no_deprecated_pygithub_call(rich: Any, downloads: Path) -> None:
    """PyGithub 2.9 deprecates get_repo(lazy=); builder uses the client's laziness there."""
    import warnings

    server, _handle, sha = rich
    repo = github_repo(server)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        download(repo, sha, downloads / "code", verify=True)
        answer, _why = github_api.branch_contains(repo, sha, [("main", sha)], timeout=10,
                                                  limit=5)
    assert answer is True
