"""Rate limits as github.com and gitlab.com apply them, on the loopback servers.

The servers' limits run on a clock the test drives, and so does the retry policy: a wait of a
minute takes no time, and the tests see every wait builder chose, every request it made, and
what it said on stderr.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from builder.code.retry import RetryPolicy
from builder.errors import RateLimitError
from builder.repositories import github_api, gitlab_api
from tests.infra.github_server import GitHubServer
from tests.infra.gitlab_server import GitLabServer
from tests.integration.code.test_download_common import (
    archive_snapshot,
    assert_no_secret,
    assert_nothing_left,
    commit_rich,
    downloads_dir,
    snapshot,
)
from tests.integration.repositories.test_download_github import CODELOAD, TARBALL, github_repo
from tests.integration.repositories.test_download_gitlab import ARCHIVE, gitlab_repo

#: A whole minute of the epoch, so that the tests know where the clock minutes start.
MINUTE = 1_800_000_000 - 1_800_000_000 % 60


class FakeClock:
    """Wall clock and monotonic clock in one: it moves only when someone sleeps."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += seconds


def policy(clock: FakeClock, said: list[str] | None = None, **limits: Any) -> RetryPolicy:
    options: dict[str, Any] = {"sleep": clock.sleep, "clock": clock.time,
                               "wall_clock": clock.time, "jitter": lambda: 0.5}
    if said is not None:
        options["announce"] = said.append
    options.update(limits)
    return RetryPolicy(**options)


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    return downloads_dir(tmp_path)


# ---------------------------------------------------------------------------- gitlab.com


@pytest.fixture
def project(gitlab_com_server: GitLabServer) -> tuple[GitLabServer, Any, str, FakeClock]:
    handle = gitlab_com_server.create_repo("grp/proj")
    sha = commit_rich(handle)
    clock = FakeClock(MINUTE + 10)  # 10 s into a minute
    gitlab_com_server.clock = clock.time
    gitlab_com_server.reset_counts()
    return gitlab_com_server, handle, sha, clock


def test_the_sixth_archive_in_a_minute_waits_for_the_next_minute_and_says_why(
        project: Any, downloads: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server, handle, sha, clock = project
    repo = gitlab_repo(server, "grp/proj")
    for n in range(6):
        gitlab_api.download_files(repo, sha, downloads / f"c{n}", None,
                                  policy=policy(clock))  # announcements on stderr
    assert snapshot(downloads / "c5") == archive_snapshot(handle.bare, sha)
    # One wait, to the next whole minute plus jitter (0.5 of 3 s): never a fast retry.
    assert clock.sleeps == [50 + 1.5]
    assert server.count(ARCHIVE) == 7  # six downloads and one 429
    err = capsys.readouterr().err
    assert err == (
        f"builder: GitLab project grp/proj at {sha[:12]}: rate limited by GitLab (HTTP 429: "
        "This archive has been requested too many times. Try again later.); gitlab.com allows "
        "5 archive downloads a minute per project and user, counted in whole clock minutes: "
        "waiting 52 s before try 2 of 5\n")
    assert_no_secret(err, server.token)


def test_twelve_starts_in_a_minute_on_one_token_all_succeed(project: Any,
                                                            downloads: Path) -> None:
    server, handle, sha, clock = project
    repo = gitlab_repo(server, "grp/proj")
    said: list[str] = []
    for n in range(12):
        gitlab_api.download_files(repo, sha, downloads / f"c{n}", "app",
                                  policy=policy(clock, said))
    assert snapshot(downloads / "c11") == archive_snapshot(handle.bare, sha, "app")
    # Five a minute: the 6th and the 11th each wait for the next minute, once.
    assert len(clock.sleeps) == 2 and server.count(ARCHIVE) == 14
    assert clock.now < MINUTE + 3 * 60 + 5
    assert len(said) == 2


def test_a_token_per_runner_has_its_own_limit(project: Any, downloads: Path) -> None:
    server, _handle, sha, clock = project
    other = "glpat-runner-two-0123456789"
    server.add_token(other, scopes=("read_api",))
    for n in range(5):
        gitlab_api.download_files(gitlab_repo(server, "grp/proj"), sha, downloads / f"a{n}",
                                  None, policy=policy(clock))
    gitlab_api.download_files(gitlab_repo(server, "grp/proj", token=other), sha,
                              downloads / "b", None, policy=policy(clock))
    assert clock.sleeps == []


def test_a_limit_that_never_clears_fails_within_bounds_saying_how_to_avoid_it(
        project: Any, downloads: Path) -> None:
    server, _handle, sha, clock = project
    server.archive_limit = 0  # every request over the limit
    with pytest.raises(RateLimitError) as caught:
        gitlab_api.download_files(gitlab_repo(server, "grp/proj"), sha, downloads / "code",
                                  None, policy=policy(clock, max_tries=3))
    message = str(caught.value)
    assert "gave up after 3 tries" in message
    assert "gitlab.com allows 5 archive downloads a minute per project and user" in message
    assert message.endswith("start fewer containers at once, or give each runner its own "
                            "token")
    assert server.count(ARCHIVE) == 3  # one request a minute
    assert clock.sleeps == [50 + 1.5, 60.0]  # to each next minute (jitter included)
    assert_no_secret(message, server.token)
    assert_nothing_left(downloads)


def test_the_download_deadline_bounds_the_wait(project: Any, downloads: Path) -> None:
    server, _handle, sha, clock = project
    server.archive_limit = 0
    bounded = policy(clock).within(30.0)  # less time left than the next minute is away
    with pytest.raises(RateLimitError, match=r"waiting 52 s more would pass the download's "
                                             r"deadline"):
        gitlab_api.download_files(gitlab_repo(server, "grp/proj"), sha, downloads / "code",
                                  None, policy=bounded)
    assert clock.sleeps == [] and server.count(ARCHIVE) == 1


def test_rack_attack_throttles_name_their_wait(gitlab_server: GitLabServer,
                                              downloads: Path) -> None:
    handle = gitlab_server.create_repo("grp/proj")
    sha = commit_rich(handle)
    gitlab_server.too_many_requests_next(1, retry_after=7)  # with RateLimit-* and Retry-After
    clock = FakeClock(time.time())
    gitlab_api.download_files(gitlab_repo(gitlab_server, "grp/proj"), sha, downloads / "code",
                              None, policy=policy(clock))
    assert clock.sleeps == [7.25]  # Retry-After plus jitter, not the next minute


# ---------------------------------------------------------------------------- github.com


@pytest.fixture
def github(github_server: GitHubServer) -> tuple[GitHubServer, Any, str, FakeClock]:
    handle = github_server.create_repo("octo/proj")
    sha = commit_rich(handle)
    clock = FakeClock(MINUTE)
    github_server.clock = clock.time
    github_server.reset_counts()
    return github_server, handle, sha, clock


def test_secondary_limit_without_retry_after_waits_a_minute(github: Any,
                                                            downloads: Path) -> None:
    server, handle, sha, clock = github
    server.secondary_rate_limit_next(1, match=TARBALL)
    said: list[str] = []
    github_api.download_files(github_repo(server), sha, downloads / "code", None,
                              policy=policy(clock, said))
    assert snapshot(downloads / "code") == archive_snapshot(handle.bare, sha)
    assert clock.sleeps == [60 + 2.5]  # at least a minute, plus jitter (0.5 of 5 s)
    assert server.count(TARBALL) == 2
    assert said == [
        f"GitHub repository octo/proj at {sha[:12]}: rate limited by GitHub (HTTP 403: You have "
        "exceeded a secondary rate limit. Please wait a few minutes before you try again.); "
        "GitHub's secondary rate limit names no wait; GitHub asks for at least a minute, and "
        "longer on each repeat: waiting 62 s before try 2 of 5"]


def test_a_repeated_secondary_limit_backs_off_exponentially_then_fails(
        github: Any, downloads: Path) -> None:
    server, _handle, sha, clock = github
    server.secondary_rate_limit_next(10, match=TARBALL, status=429)
    with pytest.raises(RateLimitError) as caught:
        github_api.download_files(github_repo(server), sha, downloads / "code", None,
                                  policy=policy(clock))
    assert clock.sleeps == [62.5, 122.5]  # then 242.5 s would pass the 300 s budget
    assert server.count(TARBALL) == 3
    assert "gave up after 3 tries" in str(caught.value)
    assert "300 s retry budget (BUILDER_RETRY_MAX_SECONDS)" in str(caught.value)
    assert_nothing_left(downloads)


def test_secondary_limit_with_retry_after_waits_what_it_names(github: Any,
                                                             downloads: Path) -> None:
    server, _handle, sha, clock = github
    server.secondary_rate_limit_next(1, match=TARBALL, retry_after=20)
    github_api.download_files(github_repo(server), sha, downloads / "code", None,
                              policy=policy(clock))
    assert clock.sleeps == [20.25]


def test_primary_limit_waits_until_the_reset_when_it_is_near(github: Any,
                                                             downloads: Path) -> None:
    server, handle, sha, clock = github
    server.rate_limit = 3
    server.rate_window = 40  # the window resets 40 s after its first request
    repo = github_repo(server)
    for n in range(4):
        github_api.download_files(repo, sha, downloads / f"c{n}", None, policy=policy(clock))
    assert snapshot(downloads / "c3") == archive_snapshot(handle.bare, sha)
    # x-ratelimit-reset is the window's end: 40 s, one second of margin, and jitter.
    assert clock.sleeps == [41.25]
    assert server.count(TARBALL) == 5 and server.count(CODELOAD) == 4


def test_primary_limit_far_from_its_reset_fails_at_once_saying_when(
        github: Any, downloads: Path) -> None:
    server, _handle, sha, clock = github
    server.rate_limit = 2
    repo = github_repo(server)
    for n in range(2):
        github_api.download_files(repo, sha, downloads / f"c{n}", None, policy=policy(clock))
    with pytest.raises(RateLimitError) as caught:
        github_api.download_files(repo, sha, downloads / "c2", None, policy=policy(clock))
    reset = time.strftime("%H:%M:%S UTC", time.gmtime(MINUTE + 3600))
    assert str(caught.value) == (
        f"GitHub repository octo/proj at {sha[:12]}: rate limited by GitHub (HTTP 403: API rate "
        f"limit exceeded for user ID 1.); GitHub's primary rate limit (2 requests an hour) is "
        f"used up until {reset} (the server asks to wait 3601 s, more than the 60 s builder "
        "waits; try again later or raise BUILDER_RETRY_MAX_WAIT)")
    assert clock.sleeps == [] and server.count(TARBALL) == 3
    assert sorted(p.name for p in downloads.iterdir()) == ["c0", "c1"]


def test_anonymous_access_is_told_that_a_token_raises_the_limit(github_server: GitHubServer,
                                                               downloads: Path) -> None:
    handle = github_server.create_repo("octo/open", private=False)
    sha = commit_rich(handle)
    clock = FakeClock(MINUTE)
    github_server.clock = clock.time
    repo = github_repo(github_server, "octo/open", token=None)
    for _ in range(60):
        github_api.login(repo, policy=policy(clock))
    with pytest.raises(RateLimitError, match=r"\(60 requests an hour\).*an authenticated token "
                                             r"gets 5,000 requests an hour"):
        github_api.download_files(repo, sha, downloads / "code", None, policy=policy(clock))
