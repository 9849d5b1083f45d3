"""Where a token must never go: another origin after a redirect, git's environment, a core
dump, the store's plain files (as the user part of a URL). Real servers on loopback, real git,
real `builder` processes."""

from __future__ import annotations

import base64
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from builder.code.download import download
from builder.errors import DownloadError
from builder.repositories.github import GitHubCodeRepository
from builder.repositories.gitlab import GitLabCodeRepository
from tests.gitworld import GitWorld
from tests.infra.hostile import RecordingServer, RedirectServer

TOKEN = "glpat-LEAKCHECK-0123456789"
CREDENTIAL_HEADERS = ("authorization", "private-token", "job-token")


@pytest.fixture
def redirecting():
    """An API origin that redirects every GET to another origin, which records what came."""
    other = RecordingServer().start()
    origin = RedirectServer(other.port).start()
    try:
        yield origin, other
    finally:
        origin.stop()
        other.stop()


def _credentials(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower() in CREDENTIAL_HEADERS}


def test_gitlabs_private_token_never_follows_a_redirect_to_another_origin(redirecting,
                                                                          tmp_path):
    origin, other = redirecting
    repo = GitLabCodeRepository("1", "app", {"group": "team", "project": "app",
                                             "url": origin.url, "token": TOKEN})
    with pytest.raises(DownloadError) as caught:
        download(repo, "a" * 40, tmp_path / "code")
    assert origin.requests and _credentials(origin.requests[0][1]) == {"private-token": TOKEN}
    assert other.requests, "the redirect was not followed"
    for _path, headers in other.requests:
        assert _credentials(headers) == {}
        assert TOKEN not in json.dumps(headers)
    assert TOKEN not in str(caught.value)
    assert not (tmp_path / "code").exists()


def test_githubs_authorization_never_follows_a_redirect_to_another_origin(redirecting,
                                                                          tmp_path):
    origin, other = redirecting
    repo = GitHubCodeRepository("1", "app", {"owner": "team", "repository": "app",
                                             "url": origin.url, "api_url": origin.url,
                                             "token": TOKEN})
    with pytest.raises(DownloadError):
        download(repo, "a" * 40, tmp_path / "code")
    assert origin.requests and "authorization" in _credentials(origin.requests[0][1])
    assert other.requests and all(_credentials(h) == {} for _, h in other.requests)


def _git_environments(marker: str, stop: threading.Event, found: list[str]) -> None:
    """Collect the environment of every git process whose environment holds `marker`."""
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                environ = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue
            if b"git" in cmdline and marker.encode() in environ:
                found.append(environ.decode("utf-8", "replace"))
        time.sleep(0.005)


def test_git_processes_never_inherit_the_token_in_their_environment(git_server, tmp_path):
    handle = git_server.create_repo("team/app")
    sha = handle.commit({"msg.txt": "hello\n"}, "first")
    handle.push()
    token = git_server.token
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    git_server.slow_next(1, 2.0, match="git-upload-pack")  # time to look at the processes
    cache = tmp_path / "cache"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BUILDER_")},
           "BUILDER_CODE_DIR": str(tmp_path / "code"), "BUILDER_CACHE_DIR": str(cache),
           "BUILDER_COMMIT": sha, "BUILDER_TOKEN": token,
           "BUILDER_CODE_REPOSITORY": json.dumps({"type": "git", "name": "app", "config": {
               "url": f"{git_server.url}/team/app.git"}})}
    found: list[str] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_git_environments, args=(str(cache), stop, found),
                               daemon=True)
    sampler.start()
    try:
        done = subprocess.run([sys.executable, "-m", "builder", "entrypoint", "--", "cat",
                               "msg.txt"], env=env, capture_output=True, text=True,
                              timeout=120, check=False)
    finally:
        stop.set()
        sampler.join()
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello\n"
    assert found, "no git process was seen"
    leaks = [e for e in found if token in e or basic in e]
    assert leaks == [], "a git process had the token in its environment"


def test_core_dumps_are_off_while_the_token_is_held_and_back_for_the_program(git_server,
                                                                              tmp_path):
    handle = git_server.create_repo("team/app")
    sha = handle.commit({"msg.txt": "hello\n"}, "first")
    handle.push()
    git_server.slow_next(1, 10.0, match="git-upload-pack")
    token_file = tmp_path / "token"
    token_file.write_text(git_server.token)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BUILDER_")},
           "BUILDER_CODE_DIR": str(tmp_path / "code"),
           "BUILDER_CACHE_DIR": str(tmp_path / "cache"), "BUILDER_COMMIT": sha,
           "BUILDER_TOKEN_FILE": str(token_file),
           "BUILDER_CODE_REPOSITORY": json.dumps({"type": "git", "name": "app", "config": {
               "url": f"{git_server.url}/team/app.git"}})}
    _soft, hard = resource.getrlimit(resource.RLIMIT_CORE)

    def allow_core_dumps() -> None:  # as a user who debugs crashes would have it
        resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))

    program = "import resource; print(resource.getrlimit(resource.RLIMIT_CORE)[0])"
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "builder", "entrypoint", "--", sys.executable, "-c", program],
        env=env, cwd=workdir, preexec_fn=allow_core_dumps, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert int(out) == hard  # the program's own limit, as it was given to builder
    # The same start, killed with SIGSEGV while it holds the token: no core file.
    git_server.slow_next(1, 10.0, match="git-upload-pack")
    env["BUILDER_CACHE_DIR"] = str(tmp_path / "cache2")
    process = subprocess.Popen(
        [sys.executable, "-m", "builder", "entrypoint", "--", "true"], env=env, cwd=workdir,
        preexec_fn=allow_core_dumps, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not list((tmp_path / "cache2").glob(".builder-git-*")):
            assert time.monotonic() < deadline, "the download did not start"
            time.sleep(0.05)
        limits = Path(f"/proc/{process.pid}/limits").read_text()
        core = next(line for line in limits.splitlines() if line.startswith("Max core"))
        assert core.split()[4] == "0", core
        process.send_signal(signal.SIGSEGV)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGSEGV
    assert [p.name for p in workdir.iterdir() if p.name.startswith("core")] == []


def test_the_cli_runs_with_core_dumps_off(tmp_path):
    script = (
        "import resource, sys\n"
        "from builder.cli import main\n"
        "try:\n"
        "    main(['secret', 'list'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(resource.getrlimit(resource.RLIMIT_CORE)[0], file=sys.stderr)\n"
    )
    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
    done = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, "BUILDER_HOME": str(tmp_path)},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (hard, hard)),
        capture_output=True, text=True, timeout=60, check=False)
    assert done.stderr.strip().splitlines()[-1] == "0", done.stderr


@pytest.mark.parametrize("args", [
    ["--type", "git", "--url", f"https://{TOKEN}@127.0.0.1:9/team/app.git"],
    ["--type", "git", "--url", f"http://x-access-token:{TOKEN}@127.0.0.1:9/team/app.git"],
    ["--type", "github", "--owner", "team", "--repository", "app",
     "--url", f"https://{TOKEN}@127.0.0.1:9"],
    ["--type", "gitlab", "--group", "team", "--project", "app",
     "--url", f"https://oauth2:{TOKEN}@127.0.0.1:9"],
])
def test_a_token_in_a_url_is_refused_with_a_hint_and_nothing_is_written(tmp_path, args):
    world = GitWorld(tmp_path)
    done = world.builder("code-repository", "register", "app", *args)
    assert done.code == 2, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("builder: error: ")
    assert "--token" in lines[0]
    assert not (world.home / "repositories.json").exists()
    assert not (world.home / "secrets.json").exists()
