"""What the entrypoint may replace, and what it trusts in its cache (real git server, real
`builder entrypoint` processes; the mount cases run in real containers, tests/e2e).

- the code dir: only a directory builder made (marked) or an empty one is filled; anything
  else stops the start with one line, exit 1, nothing changed and the program not run;
- the cache: an entry must be a real directory (no link is followed), and with
  BUILDER_VERIFY_DOWNLOAD on it must still match the seal written with it;
- leftovers of a killed download are cleared by a later start, never while their owner lives;
- trees deeper than Python's recursion limit are downloaded, copied and replaced.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from builder.container.warm import cache_key
from tests.waiting import wait_for

RAN = "ran.txt"  # the program writes it: its absence proves the program never ran
PROGRAM = f"import pathlib; pathlib.Path({RAN!r}).write_text('x'); print(open('msg.txt').read())"


def entrypoint(env: dict[str, str], *command: str, timeout: float = 120
               ) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("BUILDER_")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "builder", "entrypoint", "--", *command],
                          env=full, capture_output=True, text=True, timeout=timeout,
                          check=False)


def start(env: dict[str, str], *command: str) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("BUILDER_")}
    full.update(env)
    return subprocess.Popen([sys.executable, "-m", "builder", "entrypoint", "--", *command],
                            env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def one_error_line(done: subprocess.CompletedProcess[str], code: int, fragment: str) -> str:
    """The run failed with `code` and said so in exactly one `builder: error:` line (other
    lines, if any, are builder's progress)."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("builder: error: ")]
    assert done.returncode == code, done.stderr
    assert len(errors) == 1, done.stderr
    assert all(line.startswith("builder: ") for line in lines), done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def served(git_server, tmp_path):
    handle = git_server.create_repo("team/app")
    first = handle.commit({"msg.txt": "first\n"}, "first")
    second = handle.commit({"msg.txt": "second\n"}, "second")
    handle.push()
    token_file = tmp_path / "token"
    token_file.write_text(git_server.token)
    spec = {"type": "git", "name": "app",
            "config": {"url": f"{git_server.url}/team/app.git"}}

    def env(commit: str = second, **extra: str) -> dict[str, str]:
        return {
            "BUILDER_CODE_DIR": str(tmp_path / "code"),
            "BUILDER_COMMIT": commit,
            "BUILDER_CODE_REPOSITORY": json.dumps(spec),
            "BUILDER_TOKEN_FILE": str(token_file),
            "BUILDER_CACHE_DIR": str(tmp_path / "cache"),
            **extra,
        }

    return git_server, env, first, second, spec


# ---------------------------------------------------------------------------- the code dir


def test_a_code_dir_with_someone_elses_files_is_left_alone(served, tmp_path):
    _, env, _, _, _ = served
    code = tmp_path / "code"
    (code / "data").mkdir(parents=True)
    (code / "data" / "results.csv").write_text("precious\n")
    done = entrypoint(env(), sys.executable, "-c", PROGRAM)
    one_error_line(done, 1, "did not put there")
    assert (code / "data" / "results.csv").read_text() == "precious\n"
    assert sorted(p.name for p in code.iterdir()) == ["data"]
    assert not (code / RAN).exists()


@pytest.mark.parametrize("kind", ["symlink", "file"])
def test_a_code_dir_that_is_a_link_or_a_file_is_left_alone(served, tmp_path, kind):
    _, env, _, _, _ = served
    code = tmp_path / "code"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine\n")
    if kind == "symlink":
        code.symlink_to(elsewhere)
    else:
        code.write_text("a file\n")
    done = entrypoint(env(), sys.executable, "-c", PROGRAM)
    one_error_line(done, 1, "did not put there")
    assert (elsewhere / "keep.txt").read_text() == "mine\n"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep.txt"]
    assert code.is_symlink() if kind == "symlink" else code.read_text() == "a file\n"


def test_an_empty_code_dir_is_filled_and_later_replaced(served, tmp_path):
    _, env, first, second, _ = served
    code = tmp_path / "code"
    code.mkdir()
    done = entrypoint(env(first), sys.executable, "-c", PROGRAM)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "first"
    assert os.getxattr(code, "user.builder.code-dir") == b"1"
    done = entrypoint(env(second), sys.executable, "-c", PROGRAM)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "second"
    assert sorted(p.name for p in code.iterdir()) == ["msg.txt", RAN]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".code")] == []


@pytest.mark.parametrize(("code_dir", "fragment"), [
    ("/", "is the root directory"),
    ("relative/code", "must be an absolute path"),
    ("{cache}/inner", "overlap"),
    ("{tmp}", "overlap"),
])
def test_a_code_dir_that_cannot_be_one_is_a_usage_error(served, tmp_path, code_dir, fragment):
    _, env, _, _, _ = served
    value = code_dir.format(cache=tmp_path / "cache", tmp=tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    done = entrypoint(env(BUILDER_CODE_DIR=value), sys.executable, "-c", PROGRAM)
    one_error_line(done, 2, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# ---------------------------------------------------------------------------- the cache


def test_a_cache_entry_that_is_a_symlink_is_never_followed(served, tmp_path):
    _, env, _, second, spec = served
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "msg.txt").write_text("planted\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / cache_key(spec, second, "")).symlink_to(planted)
    done = entrypoint(env(), sys.executable, "-c", PROGRAM)
    one_error_line(done, 1, "is a symlink")
    assert not (tmp_path / "code").exists()
    assert (planted / "msg.txt").read_text() == "planted\n"


def test_with_verification_on_planted_content_is_refused(served, tmp_path):
    _, env, _, second, spec = served
    assert entrypoint(env(), "true").returncode == 0
    entry = tmp_path / "cache" / cache_key(spec, second, "")
    (entry / "msg.txt").write_text("planted\n")
    done = entrypoint(env(BUILDER_VERIFY_DOWNLOAD="1"), sys.executable, "-c", PROGRAM)
    one_error_line(done, 1, "changed after builder wrote it")
    assert not (tmp_path / "code" / RAN).exists()
    # an entry nobody sealed (planted whole) is refused as well
    (entry.with_name(entry.name + ".seal")).unlink()
    done = entrypoint(env(BUILDER_VERIFY_DOWNLOAD="1"), sys.executable, "-c", PROGRAM)
    one_error_line(done, 1, "has no seal")


def test_with_verification_on_an_intact_entry_is_used_without_a_request(served, tmp_path):
    server, env, _, _, _ = served
    assert entrypoint(env(BUILDER_VERIFY_DOWNLOAD="1"), "true").returncode == 0
    server.reset_counts()
    done = entrypoint(env(BUILDER_VERIFY_DOWNLOAD="1"), sys.executable, "-c", PROGRAM)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "second"
    assert server.request_count == 0


# ---------------------------------------------------------------------------- leftovers


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name.endswith(".partial")
                  or p.name.startswith(".builder-git-"))


def test_a_killed_download_leaves_nothing_that_a_later_start_keeps(served, tmp_path):
    server, env, first, _, _ = served
    cache = tmp_path / "cache"
    server.slow_next(1, 10.0, match="git-upload-pack")  # the fetch's body pauses mid-way
    process = start(env(first), "true")
    try:
        # the staging directory, while git fetches into the repository's object store
        wait_for(lambda: cache.is_dir() and _leftovers(cache) and server.count("upload-pack"),
                 "the download's staging directory and its fetch")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    left = _leftovers(cache)  # what a killed download leaves behind
    assert any(name.endswith(".partial") for name in left), left
    done = entrypoint(env(), sys.executable, "-c", PROGRAM)  # another commit: a download
    assert done.returncode == 0, done.stderr
    assert _leftovers(cache) == []


def test_a_live_download_is_never_taken_for_a_leftover(served, tmp_path):
    server, env, first, _, _ = served
    cache = tmp_path / "cache"
    server.slow_next(1, 6.0, match="git-upload-pack")
    slow = start(env(first, BUILDER_CODE_DIR=str(tmp_path / "slow-code")), sys.executable,
                 "-c", PROGRAM)
    try:
        held = wait_for(lambda: server.count("upload-pack") and cache.is_dir()
                        and _leftovers(cache), "the slow download's directories")
        # clears leftovers first; the slow one holds the object store, so this one fetches
        # in a repository of its own (`.builder-git-*`), and waits for nothing
        done = entrypoint(env(), sys.executable, "-c", PROGRAM)
        assert done.returncode == 0, done.stderr
        assert set(held) <= set(_leftovers(cache))  # the live one's are still there
        out, err = slow.communicate(timeout=120)
    finally:
        if slow.poll() is None:
            slow.kill()
    assert slow.returncode == 0, err
    assert out.strip() == "first"
    assert _leftovers(cache) == []


# ---------------------------------------------------------------------------- deep trees


@pytest.fixture
def deep_trees(tmp_path):
    """Paths to empty after the test with `rm -rf` (iterative): pytest's clean-up of its
    temporary directories (shutil.rmtree) recurses, and fails on a tree this deep."""
    paths: list[Path] = [tmp_path]
    yield paths
    for path in paths:
        for child in list(path.iterdir()) if path.is_dir() else []:
            subprocess.run(["rm", "-rf", "--", str(child)], check=True)


def test_a_tree_deeper_than_the_recursion_limit_is_downloaded_copied_and_replaced(
        git_server, tmp_path, deep_trees):
    handle = git_server.create_repo("team/deep")
    deep_trees.append(handle.work)
    deep = "/".join(["d"] * 1200) + "/leaf.txt"
    folder = str(handle.work)
    for _ in range(1200):  # os.makedirs and Path.mkdir(parents=True) recurse themselves
        folder = os.path.join(folder, "d")
        os.mkdir(folder)
    Path(folder, "leaf.txt").write_text("bottom\n")
    first = handle.commit({"msg.txt": "deep\n", ".dockerignore": "**/nothing\n"}, "deep")
    second = handle.commit({"msg.txt": "deeper\n"}, "second")
    handle.push()
    token_file = tmp_path / "token"
    token_file.write_text(git_server.token)
    env = {
        "BUILDER_CODE_DIR": str(tmp_path / "code"),
        "BUILDER_CODE_REPOSITORY": json.dumps({"type": "git", "name": "deep", "config": {
            "url": f"{git_server.url}/team/deep.git"}}),
        "BUILDER_TOKEN_FILE": str(token_file),
        "BUILDER_CACHE_DIR": str(tmp_path / "cache"),
    }
    for commit, expected in ((first, "deep"), (second, "deeper")):
        done = entrypoint({**env, "BUILDER_COMMIT": commit}, sys.executable, "-c", PROGRAM)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == expected
        assert "Traceback" not in done.stderr
    assert (tmp_path / "code" / deep).read_text() == "bottom\n"
