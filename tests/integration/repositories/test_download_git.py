"""git downloads: the loopback git server (smart HTTP), git://, ssh, file:// and local paths."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from builder.code.download import download
from builder.code.retry import RetryPolicy
from builder.errors import AuthenticationError, DownloadError, NotFoundError, UsageError
from builder.repositories import git_fetch
from builder.repositories.git import GitCodeRepository
from tests.gitworld import logging_git
from tests.infra.git_server import GitServer
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

UPLOAD_PACK = r"/git-upload-pack$"


def git_repo(url: str, token: str | None = None, username: str | None = None
             ) -> GitCodeRepository:
    config: dict[str, Any] = {"url": url}
    if token:
        config["token"] = token
    if username:
        config["username"] = username
    return GitCodeRepository("id", "git", config)


def fast_policy(sleeps: Callable[[float], None] | None = None, **limits: Any) -> RetryPolicy:
    values: dict[str, Any] = {"max_tries": 4, "max_seconds": 60.0, "base_delay": 0.01,
                              "max_delay": 0.05, "max_wait": 5.0}
    values.update(limits)
    return RetryPolicy(sleep=sleeps or (lambda _s: None), **values)


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    return downloads_dir(tmp_path)


@pytest.fixture
def rich(git_server: GitServer) -> tuple[GitServer, Any, str]:
    handle = git_server.create_repo("o/proj")
    sha = commit_rich(handle)
    git_server.reset_counts()
    return git_server, handle, sha


# ---------------------------------------------------------------------------- the exact tree


def test_whole_tree_over_https_with_token(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    result = download(git_repo(handle.clone_url, server.token), sha, downloads / "code")
    assert snapshot(result) == archive_snapshot(handle.bare, sha)
    assert not (result / ".git").exists()
    assert sorted(p.name for p in downloads.iterdir()) == ["code"]


def test_subdirectory_with_verify(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    result = download(git_repo(handle.clone_url, server.token), sha, downloads / "code", "app",
                      verify=True)
    tree = snapshot(result)
    assert tree == archive_snapshot(handle.bare, sha, "app")
    assert tree["link_to_main"] == ("link", "main.py") and tree["bin/run.sh"][1] is True
    assert "pkg/data/日本語.txt" in tree


def test_old_commit_that_is_no_branch_tip(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    handle.commit({"app/main.py": "print('newer')\n"})
    handle.push()
    result = download(git_repo(handle.clone_url, server.token), sha, downloads / "code", "app")
    assert (result / "main.py").read_text() == "print('hello')\n"


def test_file_url_and_local_path(rich: Any, downloads: Path) -> None:
    _server, handle, sha = rich
    for index, url in enumerate((f"file://{handle.bare}", str(handle.bare))):
        result = download(git_repo(url), sha, downloads / f"code{index}", "app")
        assert snapshot(result) == archive_snapshot(handle.bare, sha, "app")


@pytest.fixture
def git_daemon(git_server: GitServer) -> Iterator[str]:
    """git:// on loopback, serving the git server's repositories; yields the base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={port}",
         f"--base-path={git_server.repos_dir}", "--export-all", str(git_server.repos_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"git://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_git_protocol(rich: Any, git_daemon: str, downloads: Path) -> None:
    _server, handle, sha = rich
    result = download(git_repo(f"{git_daemon}/o/proj.git"), sha, downloads / "code", "app")
    assert snapshot(result) == archive_snapshot(handle.bare, sha, "app")


def test_ssh_uses_the_users_ssh_setup(rich: Any, downloads: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _server, handle, sha = rich
    log = tmp_path / "ssh.log"
    fake_ssh = tmp_path / "fake-ssh"
    # Stands in for ssh: records the host, runs the remote command (git-upload-pack) locally.
    fake_ssh.write_text(f'#!/bin/sh\necho "$@" >> {log}\nfor last; do :; done\n'
                        'exec sh -c "$last"\n')
    fake_ssh.chmod(0o755)
    monkeypatch.setenv("GIT_SSH_COMMAND", str(fake_ssh))
    url = f"ssh://git@fake-host.example{handle.bare}"
    result = download(git_repo(url), sha, downloads / "code", "app")
    assert snapshot(result) == archive_snapshot(handle.bare, sha, "app")
    assert "fake-host.example" in log.read_text()


# ---------------------------------------------------------------------------- credentials


def test_token_never_in_argv_proc_config_tree_or_errors(rich: Any, downloads: Path,
                                                        tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    server, handle, sha = rich
    token = server.token
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    # 1. Every git command line, through a wrapper first on PATH.
    argv_log = tmp_path / "argv.log"
    monkeypatch.setenv("PATH", logging_git(tmp_path / "bin", argv_log))
    # 2. Every process's command line while the download runs.
    seen: list[str] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    except OSError:
                        continue
                    text = cmdline.decode("utf-8", "replace")
                    if "git" in text:
                        seen.append(text)
            time.sleep(0.002)

    # 3. The temporary repository's files, just before it is removed.
    leaked_files: list[str] = []
    inspected: list[Path] = []
    real_remove = git_fetch.remove_tree

    def inspect_then_remove(path: Path) -> None:
        if path.name.startswith(".builder-git-"):
            inspected.append(path)
            for file in path.rglob("*"):
                if file.is_file() and not file.is_symlink():
                    data = file.read_bytes()
                    if token.encode() in data or basic.encode() in data:
                        leaked_files.append(str(file))
        real_remove(path)

    monkeypatch.setattr(git_fetch, "remove_tree", inspect_then_remove)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        lib = server.create_repo("o/lib")
        first, _ = two_commits(lib)
        sha = add_gitlink(handle, "app/vendor/lib", first, "../lib.git")
        result = download(git_repo(handle.clone_url, token), sha, downloads / "code", "app",
                          verify=True)
        with pytest.raises(NotFoundError) as caught:
            download(git_repo(handle.clone_url, token), "e" * 40, downloads / "missing")
    finally:
        stop.set()
        sampler.join()
    assert (result / "vendor/lib/lib.py").read_text() == "VERSION = 1\n"
    commands = argv_log.read_text()
    assert "fetch" in commands and "submodule" in commands
    assert token not in commands and basic not in commands
    assert seen and not [line for line in seen if token in line or basic in line]
    assert inspected and leaked_files == []
    config = (inspected[0] / ".git" / "config").read_text() if (
        inspected[0] / ".git" / "config").exists() else ""
    assert token not in config
    for file in result.rglob("*"):
        if file.is_file() and not file.is_symlink():
            assert token.encode() not in file.read_bytes()
    assert_no_secret(str(caught.value), token)


def test_credentials_are_scoped_to_the_repository_server_and_kept_out_of_the_environment(
) -> None:
    repo = git_repo("https://git.example.test:8443/o/p.git", "tok-123456", username="me")
    config = git_fetch.credential_config(repo)
    assert config is not None
    try:
        env = config.environment({"GIT_CONFIG_COUNT": "1"})
        assert env == {"GIT_CONFIG_KEY_1": "include.path", "GIT_CONFIG_VALUE_1": config.path,
                       "GIT_CONFIG_COUNT": "2"}
        expected = base64.b64encode(b"me:tok-123456").decode()
        assert "tok-123456" not in json.dumps(env) and expected not in json.dumps(env)
        # what git reads from the memory file, through the descriptor it inherits
        done = subprocess.run(
            ["git", "config", "--includes", "--get-regexp", r"^(http|credential)\."],
            env={**os.environ, **env, "GIT_CONFIG_KEY_0": "core.x", "GIT_CONFIG_VALUE_0": "1"},
            pass_fds=config.fds, capture_output=True, text=True, check=True)
        assert [line for line in done.stdout.splitlines() if "git.example.test" in line] == [
            f"http.https://git.example.test:8443/.extraheader Authorization: Basic {expected}",
            "credential.https://git.example.test:8443/.helper ",
        ]
    finally:
        config.close()
    assert git_fetch.credential_config(git_repo("git@h.example:o/p.git", "tok-123456")) is None
    assert git_fetch.credential_config(git_repo("https://h.example/o/p.git")) is None


def test_sparse_partial_fetch_leaves_other_blobs_on_the_server(
        rich: Any, downloads: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server, handle, sha = rich
    outside = handle.git("rev-parse", f"{sha}:other/x.txt").strip()
    inside = handle.git("rev-parse", f"{sha}:app/main.py").strip()
    present: dict[str, bool] = {}
    real_remove = git_fetch.remove_tree

    def inspect_then_remove(path: Path) -> None:
        if path.name.startswith(".builder-git-"):
            # Every object in the local store, without triggering a lazy fetch.
            local = subprocess.run(["git", "cat-file", "--batch-all-objects", "--batch-check"],
                                   cwd=path, capture_output=True, text=True, check=True).stdout
            for blob in (outside, inside):
                present[blob] = blob in local
        real_remove(path)

    monkeypatch.setattr(git_fetch, "remove_tree", inspect_then_remove)
    download(git_repo(handle.clone_url, server.token), sha, downloads / "code", "app")
    assert present == {outside: False, inside: True}


# ---------------------------------------------------------------------------- failures


def test_login(rich: Any) -> None:
    server, handle, _sha = rich
    git_repo(handle.clone_url, server.token).login()
    with pytest.raises(AuthenticationError) as caught:
        git_repo(handle.clone_url, "gittok_wrongwrongwrong").login()
    assert_no_secret(str(caught.value), "gittok_wrongwrongwrong", server.token)


def test_wrong_commit_leaves_nothing(rich: Any, downloads: Path) -> None:
    server, handle, _sha = rich
    with pytest.raises(NotFoundError, match="was pushed") as caught:
        download(git_repo(handle.clone_url, server.token), "d" * 40, downloads / "code")
    assert_no_secret(str(caught.value), server.token)
    assert_nothing_left(downloads)


def test_missing_subdirectory_leaves_nothing(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    with pytest.raises(NotFoundError, match="no directory 'nope'"):
        download(git_repo(handle.clone_url, server.token), sha, downloads / "code", "nope")
    with pytest.raises(NotFoundError, match="not a directory"):
        download(git_repo(handle.clone_url, server.token), sha, downloads / "code", "README.md")
    assert_nothing_left(downloads)


def test_wrong_token_fails_at_once(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    token = "gittok_" + "z" * 32
    with pytest.raises(AuthenticationError, match="check that --token is valid") as caught:
        download(git_repo(handle.clone_url, token), sha, downloads / "code")
    assert_no_secret(str(caught.value), token, server.token)
    assert server.count(UPLOAD_PACK) == 0 and server.request_count <= 2
    assert_nothing_left(downloads)


def test_private_without_token_says_what_to_do(rich: Any, downloads: Path) -> None:
    _server, handle, sha = rich
    with pytest.raises(AuthenticationError, match="register the repository with --token"):
        download(git_repo(handle.clone_url), sha, downloads / "code")
    assert_nothing_left(downloads)


def test_short_commit_is_refused(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    with pytest.raises(UsageError, match="full hash"):
        download(git_repo(handle.clone_url, server.token), sha[:12], downloads / "code")
    assert_nothing_left(downloads)


def test_connection_dropped_mid_body_is_retried(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    server.drop_next_downloads(1, fraction=0.5, match=UPLOAD_PACK)
    git_fetch.download_files(git_repo(handle.clone_url, server.token), sha, downloads / "code",
                             "app", policy=fast_policy())
    assert snapshot(downloads / "code") == archive_snapshot(handle.bare, sha, "app")
    assert server.faults_fired.get("drop") == 1


def test_connection_dropped_every_time_leaves_nothing(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    server.drop_next_downloads(20, fraction=0.5, match=UPLOAD_PACK)
    with pytest.raises(DownloadError, match="gave up after 3 tries") as caught:
        git_fetch.download_files(git_repo(handle.clone_url, server.token), sha,
                                 downloads / "code", None, policy=fast_policy(max_tries=3))
    assert_no_secret(str(caught.value), server.token)
    assert_nothing_left(downloads)


def test_server_errors_are_retried(rich: Any, downloads: Path) -> None:
    server, handle, sha = rich
    server.fail_next(2, status=503)
    git_fetch.download_files(git_repo(handle.clone_url, server.token), sha, downloads / "code",
                             None, policy=fast_policy())
    assert snapshot(downloads / "code") == archive_snapshot(handle.bare, sha)


# ---------------------------------------------------------------------------- submodules


def test_submodules_arrive_at_their_pinned_commits(git_server: GitServer,
                                                   downloads: Path) -> None:
    lib = git_server.create_repo("o/lib")
    first, _second = two_commits(lib)
    proj = git_server.create_repo("o/proj")
    sha = add_gitlink(proj, "vendor/lib", first, "../lib.git")
    result = download(git_repo(proj.clone_url, git_server.token), sha, downloads / "code",
                      verify=True)
    assert snapshot(result / "vendor/lib") == archive_snapshot(lib.bare, first)
    assert not (result / "vendor/lib/.git").exists()
    assert (result / ".gitmodules").is_file()


def test_unreachable_submodule_fails_and_leaves_nothing(git_server: GitServer,
                                                        downloads: Path) -> None:
    proj = git_server.create_repo("o/proj")
    sha = add_gitlink(proj, "vendor/lib", "4" * 40, "../absent.git")
    with pytest.raises(DownloadError, match="could not be fetched at its pinned commit") as caught:
        git_fetch.download_files(git_repo(proj.clone_url, git_server.token), sha,
                                 downloads / "code", None, policy=fast_policy(max_tries=2))
    assert_no_secret(str(caught.value), git_server.token)
    assert_nothing_left(downloads)
