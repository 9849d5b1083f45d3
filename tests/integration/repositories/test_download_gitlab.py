"""GitLab downloads against the loopback GitLab server: exact trees, requests, failures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from builder.code.download import CachedTree, download
from builder.code.retry import RetryPolicy
from builder.errors import (
    AuthenticationError,
    DownloadError,
    NotFoundError,
    RateLimitError,
)
from builder.repositories import gitlab_api
from builder.repositories.gitlab import GitLabCodeRepository
from tests.infra.gitlab_server import GitLabServer
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

ARCHIVE = r"/repository/archive"


def gitlab_repo(server: GitLabServer, path: str = "grp/sub/proj",
                token: str | None = "server") -> GitLabCodeRepository:
    group, _, project = path.rpartition("/")
    config: dict[str, Any] = {"group": group, "project": project,
                              "url": server.external_url}
    if token is not None:
        config["token"] = server.token if token == "server" else token
    return GitLabCodeRepository("id", "gl", config)


def fast_policy(sleeps: Callable[[float], None] | None = None, **limits: Any) -> RetryPolicy:
    values: dict[str, Any] = {"max_tries": 4, "max_seconds": 30.0, "base_delay": 0.01,
                              "max_delay": 0.05, "max_wait": 5.0}
    values.update(limits)
    return RetryPolicy(sleep=sleeps or (lambda _s: None), **values)


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    return downloads_dir(tmp_path)


@pytest.fixture
def rich(gitlab_server: GitLabServer) -> tuple[GitLabServer, Any, str]:
    handle = gitlab_server.create_repo("grp/sub/proj")
    sha = commit_rich(handle)
    gitlab_server.reset_counts()
    return gitlab_server, handle, sha


def test_whole_tree_equals_git_archive_in_one_request(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    result = download(gitlab_repo(server), sha, downloads / "code")
    assert snapshot(result) == archive_snapshot(handle.bare, sha)
    assert server.requests == [("GET", "/api/v4/projects/grp%2Fsub%2Fproj/repository/"
                                       "archive.tar.gz")]


def test_subdirectory_is_one_request_with_path(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    result = download(gitlab_repo(server), sha, downloads / "code", "app")
    tree = snapshot(result)
    assert tree == archive_snapshot(handle.bare, sha, "app")
    assert tree["link_to_main"] == ("link", "main.py") and tree["bin/run.sh"][1] is True
    assert server.request_count == 1


def test_nested_subdirectory_with_verify(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    result = download(gitlab_repo(server), sha, downloads / "code", "app/pkg", verify=True)
    assert snapshot(result) == archive_snapshot(handle.bare, sha, "app/pkg")
    assert server.count(ARCHIVE) == 1 and server.count(r"/repository/tree") == 1


def test_login_is_one_request(rich: Any) -> None:
    server, _handle, _sha = rich
    gitlab_repo(server).login()
    assert server.requests == [("GET", "/api/v4/projects/grp%2Fsub%2Fproj")]


def test_public_project_without_token(gitlab_server: GitLabServer, downloads: Path) -> None:
    handle = gitlab_server.create_repo("open/proj", private=False)
    sha = commit_rich(handle)
    repo = gitlab_repo(gitlab_server, "open/proj", token=None)
    repo.login()
    result = download(repo, sha, downloads / "code", "app")
    assert snapshot(result) == archive_snapshot(handle.bare, sha, "app")


def test_wrong_token_fails_at_once_and_leaves_nothing(rich: Any, downloads: Path) -> None:
    server, _handle, sha = rich
    token = "glpat-" + "w" * 20
    with pytest.raises(AuthenticationError, match="rejected the token") as caught:
        download(gitlab_repo(server, token=token), sha, downloads / "code")
    assert_no_secret(str(caught.value), token, server.token)
    assert server.request_count == 1
    assert_nothing_left(downloads)
    with pytest.raises(AuthenticationError):
        gitlab_repo(server, token=token).login()


def test_private_project_without_token(rich: Any, downloads: Path) -> None:
    server, _handle, sha = rich
    with pytest.raises(NotFoundError, match="register a --token if the project is private"):
        download(gitlab_repo(server, token=None), sha, downloads / "code")
    assert_nothing_left(downloads)


def test_wrong_commit_and_wrong_path(rich: Any, downloads: Path) -> None:
    server, _handle, sha = rich
    with pytest.raises(NotFoundError, match="was pushed") as caught:
        download(gitlab_repo(server), "deadbeef" * 5, downloads / "code")
    assert_no_secret(str(caught.value), server.token)
    server.reset_counts()
    with pytest.raises(NotFoundError) as caught:
        download(gitlab_repo(server), sha, downloads / "code", "nope")
    # GitLab answers a path the commit lacks with 200 and an empty body: builder asks the tree
    # API and names the directory, instead of calling the archive corrupt.
    assert str(caught.value) == (f"GitLab project grp/sub/proj at {sha[:12]}: the commit has no "
                                 "directory 'nope' (GitLab answered with an empty archive)")
    assert server.count(ARCHIVE) == 1 and server.count(r"/repository/tree") == 1
    assert_nothing_left(downloads)


def test_connection_dropped_mid_body_is_retried(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    server.drop_next_downloads(1, fraction=0.4)
    gitlab_api.download_files(gitlab_repo(server), sha, downloads / "code", "app",
                              policy=fast_policy())
    assert snapshot(downloads / "code") == archive_snapshot(handle.bare, sha, "app")
    assert server.count(ARCHIVE) == 2


def test_connection_dropped_every_time_leaves_nothing(rich: Any, downloads: Path) -> None:
    server, _handle, sha = rich
    server.drop_next_downloads(10, fraction=0.5)
    with pytest.raises(DownloadError, match="connection broke off") as caught:
        gitlab_api.download_files(gitlab_repo(server), sha, downloads / "code", None,
                                  policy=fast_policy(max_tries=3))
    assert_no_secret(str(caught.value), server.token)
    assert server.count(ARCHIVE) == 3
    assert_nothing_left(downloads)


def test_429_retry_after_is_honoured(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    server.too_many_requests_next(1, retry_after=3)
    sleeps: list[float] = []
    gitlab_api.download_files(gitlab_repo(server), sha, downloads / "code", None,
                              policy=fast_policy(sleeps.append, jitter=lambda: 0.0))
    assert sleeps == [3.0]
    assert snapshot(downloads / "code") == archive_snapshot(handle.bare, sha)


def test_rate_limit_beyond_the_cap_fails_at_once(rich: Any, downloads: Path) -> None:
    server, _handle, sha = rich
    server.too_many_requests_next(3, retry_after=60)
    sleeps: list[float] = []
    with pytest.raises(RateLimitError, match="asks to wait 60 s"):
        gitlab_api.download_files(gitlab_repo(server), sha, downloads / "code", None,
                                  policy=fast_policy(sleeps.append))
    assert sleeps == [] and server.request_count == 1
    assert_nothing_left(downloads)


def test_server_errors_are_retried(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    server.fail_next(2, status=502)
    gitlab_api.download_files(gitlab_repo(server), sha, downloads / "code", None,
                              policy=fast_policy())
    assert snapshot(downloads / "code") == archive_snapshot(handle.bare, sha)
    assert server.count(ARCHIVE) == 3


def test_submodule_on_the_same_server_is_fetched(gitlab_server: GitLabServer,
                                                 downloads: Path) -> None:
    lib = gitlab_server.create_repo("grp/libs/lib")
    first, _second = two_commits(lib)
    proj = gitlab_server.create_repo("grp/sub/proj")
    sha = add_gitlink(proj, "app/vendor/lib", first, "../../libs/lib.git")
    result = download(gitlab_repo(gitlab_server), sha, downloads / "code", "app", verify=True)
    assert (result / "vendor/lib/lib.py").read_text() == "VERSION = 1\n"
    assert snapshot(result / "vendor/lib") == archive_snapshot(lib.bare, first)


def test_submodule_elsewhere_fails_with_a_way_forward(gitlab_server: GitLabServer,
                                                      downloads: Path) -> None:
    proj = gitlab_server.create_repo("grp/sub/proj")
    sha = add_gitlink(proj, "lib", "3" * 40, "git@elsewhere.example:x/lib.git")
    with pytest.raises(DownloadError, match="--type git"):
        download(gitlab_repo(gitlab_server), sha, downloads / "code")
    assert_nothing_left(downloads)


# ---------------------------------------------------------------------------- tokens


def test_a_read_repository_token_is_told_to_get_read_api(rich: Any, downloads: Path) -> None:
    server, _handle, sha = rich
    token = "glpat-files-only-0123456789"
    server.add_token(token, scopes=("read_repository",))
    with pytest.raises(AuthenticationError) as caught:
        download(gitlab_repo(server, token=token), sha, downloads / "code")
    message = str(caught.value)
    assert "HTTP 403 (insufficient_scope)" in message
    assert "needs the read_api scope (read_repository covers only the files API" in message
    assert_no_secret(message, token)
    assert server.request_count == 1
    assert_nothing_left(downloads)


def test_a_ci_job_token_is_refused_by_the_archive_api_with_a_way_forward(
        rich: Any, downloads: Path) -> None:
    server, _handle, sha = rich
    job = "glcbt-64-job-token-0123456789"
    server.add_job_token(job)
    with pytest.raises(AuthenticationError) as caught:
        download(gitlab_repo(server, token=job), sha, downloads / "code")
    assert "a CI job token is not accepted here" in str(caught.value)
    assert "--type git" in str(caught.value)
    assert_no_secret(str(caught.value), job)
    assert_nothing_left(downloads)


# ---------------------------------------------------------------------------- relative URL root


def test_gitlab_under_a_relative_url_root(tmp_path_factory: pytest.TempPathFactory,
                                          downloads: Path) -> None:
    base = tmp_path_factory.mktemp("gitlab-root")
    server = GitLabServer(base / "repos", work_dir=base / "work", relative_root="/gitlab")
    server.start()
    try:
        handle = server.create_repo("grp/proj")
        first = commit_rich(handle)
        repo = gitlab_repo(server, "grp/proj")
        assert repo.url == server.url + "/gitlab"
        repo.login()
        cached = download(repo, first, downloads / "first", "app", verify=True)
        second = str(handle.commit({"app/main.py": "print('moved')\n"}))
        handle.push()
        server.reset_counts()
        updated = download(repo, second, downloads / "second", "app",
                           base=CachedTree(first, cached))
        assert snapshot(updated) == archive_snapshot(handle.bare, second, "app")
        assert server.count(ARCHIVE) == 0  # the compare and one file, below /gitlab
        assert all(path.startswith("/gitlab/api/v4/") for _m, path in server.requests)
        assert server.request_count == 2
    finally:
        server.stop()
