"""Every download has an overall deadline (BUILDER_DOWNLOAD_DEADLINE): a trickling archive, a
stalled git server or a long server-requested wait ends with one clear line, and nothing is
left at the destination. Real hostile servers on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from builder.code.download import download
from builder.errors import DownloadError
from builder.repositories.git import GitCodeRepository
from builder.repositories.github import GitHubCodeRepository
from builder.repositories.gitlab import GitLabCodeRepository
from tests.infra.hostile import StallServer, TrickleServer

DEADLINE = "3"


@pytest.fixture
def short_deadline(monkeypatch):
    monkeypatch.setenv("BUILDER_DOWNLOAD_DEADLINE", DEADLINE)
    monkeypatch.setenv("BUILDER_HTTP_TIMEOUT", "60")  # a read timeout that never fires here


@pytest.fixture
def trickle():
    server = TrickleServer(interval=0.2).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def stall():
    server = StallServer().start()
    try:
        yield server
    finally:
        server.stop()


def _timed_failure(repo, tmp_path):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    with pytest.raises(DownloadError) as caught:
        download(repo, "a" * 40, tmp_path / "code")
    return time.monotonic() - started, str(caught.value)


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_an_archive_that_trickles_ends_at_the_deadline(short_deadline, trickle, tmp_path, kind):
    if kind == "github":
        repo = GitHubCodeRepository("1", "app", {"owner": "o", "repository": "r",
                                                 "url": trickle.url, "api_url": trickle.url})
    else:
        repo = GitLabCodeRepository("1", "app", {"group": "g", "project": "p",
                                                 "url": trickle.url})
    took, message = _timed_failure(repo, tmp_path)
    assert trickle.sent > 3  # bytes kept coming, so no read timeout could fire
    assert took < 30, f"the download ran {took:.0f} s"
    assert "deadline" in message and "(BUILDER_DOWNLOAD_DEADLINE)" in message, message
    assert list(tmp_path.iterdir()) == []


def test_a_stalled_git_server_ends_at_the_deadline(short_deadline, stall, tmp_path):
    repo = GitCodeRepository("1", "app", {"url": f"{stall.url}/team/app.git"})
    took, message = _timed_failure(repo, tmp_path)
    assert took < 30, f"the git command ran {took:.0f} s"
    assert "deadline of 3 s (BUILDER_DOWNLOAD_DEADLINE)" in message
    assert "`git fetch`" in message
    assert list(tmp_path.iterdir()) == []


def test_a_wait_the_server_asks_for_past_the_deadline_fails_at_once(github_server,
                                                                    monkeypatch, tmp_path):
    monkeypatch.setenv("BUILDER_DOWNLOAD_DEADLINE", "20")
    handle = github_server.create_repo("team/app")
    sha = handle.commit({"a.txt": "a\n"}, "first")
    handle.push()
    github_server.too_many_requests_next(1, retry_after=60, match="tarball")
    repo = GitHubCodeRepository("1", "app", {"owner": "team", "repository": "app",
                                             "url": github_server.url,
                                             "api_url": github_server.url,
                                             "token": github_server.token})
    started = time.monotonic()
    with pytest.raises(DownloadError) as caught:
        download(repo, sha, tmp_path / "code")
    message = str(caught.value)
    assert time.monotonic() - started < 45, message  # not the 60 s the server asked for
    assert "rate limited" in message and "asks to wait" in message, message
    assert "would pass the download's deadline (BUILDER_DOWNLOAD_DEADLINE)" in message


def test_the_entrypoint_says_it_in_one_line(trickle, tmp_path):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BUILDER_")},
           "BUILDER_DOWNLOAD_DEADLINE": DEADLINE, "BUILDER_CODE_DIR": str(tmp_path / "code"),
           "BUILDER_CACHE_DIR": str(tmp_path / "cache"), "BUILDER_COMMIT": "b" * 40,
           "BUILDER_CODE_REPOSITORY": json.dumps({"type": "github", "name": "app", "config": {
               "owner": "o", "repository": "r", "url": trickle.url,
               "api_url": trickle.url}})}
    done = subprocess.run([sys.executable, "-m", "builder", "entrypoint", "--", "true"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("builder: error:")]
    assert len(errors) == 1 and "BUILDER_DOWNLOAD_DEADLINE" in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()
                  if not p.name.endswith(".lock")) == []


def test_the_default_deadline_suits_a_container_start(monkeypatch):
    from builder.code import deadline

    monkeypatch.delenv("BUILDER_DOWNLOAD_DEADLINE", raising=False)
    assert 60 <= deadline.configured_seconds() <= 600
