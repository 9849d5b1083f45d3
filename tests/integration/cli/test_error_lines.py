"""User mistakes and machine faults: each prints exactly one `builder: error:` line naming the
path and the fix, never a traceback or "internal error", and corrupts nothing.

The read-only and full disks are real: a tmpfs mounted read-only, or a tiny one filled up, in
a private mount namespace (`unshare`), so nothing outside the test sees them.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gitworld import git

BUILDER = [sys.executable, "-m", "builder"]
REGISTER = ["code-repository", "register", "app", "--type", "git", "--url", "/srv/app.git"]


def env_for(**values: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BUILDER_")}
    return {**base, **values}


def builder(*args: str, **values: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BUILDER, *args], env=env_for(**values), capture_output=True,
                          text=True, timeout=120, check=False)


def assert_one_error_line(stderr: str, code: int, returncode: int, *fragments: str) -> str:
    assert returncode == code, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("builder: error: ")]
    assert len(errors) == 1, stderr
    assert all(line.startswith("builder: ") for line in lines), stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def in_mount_namespace(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a shell script in a private mount namespace (as root, or as a mapped root)."""
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed for the read-only and full disk cases"
    flags = ["-m"] if os.geteuid() == 0 else ["-r", "-m"]
    return subprocess.run([unshare, *flags, "sh", "-ec", script], cwd=cwd, env=env_for(),
                          capture_output=True, text=True, timeout=300, check=False)


def test_a_read_only_state_directory(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    command = " ".join(shlex.quote(part) for part in [*BUILDER, *REGISTER])
    done = in_mount_namespace(
        f"mount -t tmpfs -o ro,size=1m tmpfs {home}\n"
        f"BUILDER_HOME={home} {command} >{out} 2>{err} || echo $? >{tmp_path / 'code'}\n",
        tmp_path)
    assert done.returncode == 0, done.stderr
    line = assert_one_error_line(err.read_text(), 1, int((tmp_path / "code").read_text()),
                                 str(home), "read-only")
    assert "BUILDER_HOME" in line


def test_a_full_disk_while_writing_state_changes_nothing(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    err, saved = tmp_path / "err.txt", tmp_path / "before.json"
    register = " ".join(shlex.quote(part) for part in [*BUILDER, *REGISTER])
    another = " ".join(shlex.quote(p) for p in [*BUILDER, "code-repository", "register", "b",
                                                 "--type", "git", "--url", "/srv/b.git"])
    done = in_mount_namespace(
        f"mount -t tmpfs -o size=64k tmpfs {home}\n"
        f"export BUILDER_HOME={home}\n"
        f"{register}\n"
        f"cp {home}/repositories.json {saved}\n"
        f"dd if=/dev/zero of={home}/filler bs=4k 2>/dev/null || true\n"
        f"{another} 2>{err} || echo $? >{tmp_path / 'code'}\n"
        f"cmp {home}/repositories.json {saved}\n"
        f"ls -a {home} >{tmp_path / 'listing'}\n",
        tmp_path)
    assert done.returncode == 0, done.stderr  # cmp: the state file is as it was
    assert_one_error_line(err.read_text(), 1, int((tmp_path / "code").read_text()),
                          "repositories.json", "no space left")
    leftovers = [n for n in (tmp_path / "listing").read_text().split() if n.endswith(".tmp")]
    assert leftovers == []
    assert json.loads(saved.read_text())["repositories"].keys() == {"app"}


def test_the_state_directory_is_a_file(tmp_path):
    home = tmp_path / "home"
    home.write_text("not a directory\n")
    done = builder(*REGISTER, BUILDER_HOME=str(home))
    assert_one_error_line(done.stderr, 1, done.returncode, str(home), "BUILDER_HOME")
    assert home.read_text() == "not a directory\n"


def test_the_lock_is_a_directory(tmp_path):
    home = tmp_path / "home"
    (home / ".lock").mkdir(parents=True)
    done = builder(*REGISTER, BUILDER_HOME=str(home))
    assert_one_error_line(done.stderr, 1, done.returncode, str(home / ".lock"), "remove it")
    assert sorted(p.name for p in home.iterdir()) == [".lock"]


CONTRACT = {
    "BUILDER_COMMIT": "a" * 40,
    "BUILDER_CODE_REPOSITORY": json.dumps(
        {"type": "git", "name": "app", "config": {"url": "/nonexistent/app.git"}}),
}


def test_the_code_dir_is_the_root(tmp_path):
    done = subprocess.run([*BUILDER, "entrypoint", "--", "true"], env=env_for(
        **CONTRACT, BUILDER_CODE_DIR="/", BUILDER_CACHE_DIR=str(tmp_path / "cache")),
        capture_output=True, text=True, timeout=120, check=False)
    assert_one_error_line(done.stderr, 2, done.returncode, "BUILDER_CODE_DIR", "root")


def test_the_cache_dir_is_a_file(tmp_path):
    cache = tmp_path / "cache"
    cache.write_text("a file\n")
    done = subprocess.run([*BUILDER, "entrypoint", "--", "true"], env=env_for(
        **CONTRACT, BUILDER_CODE_DIR=str(tmp_path / "code"), BUILDER_CACHE_DIR=str(cache)),
        capture_output=True, text=True, timeout=120, check=False)
    assert_one_error_line(done.stderr, 1, done.returncode, "BUILDER_CACHE_DIR", str(cache))
    assert cache.read_text() == "a file\n"


def test_a_bad_download_deadline(tmp_path):
    done = subprocess.run([*BUILDER, "entrypoint", "--", "true"], env=env_for(
        **CONTRACT, BUILDER_CODE_DIR=str(tmp_path / "code"),
        BUILDER_CACHE_DIR=str(tmp_path / "cache"), BUILDER_DOWNLOAD_DEADLINE="soon"),
        capture_output=True, text=True, timeout=120, check=False)
    assert_one_error_line(done.stderr, 2, done.returncode, "BUILDER_DOWNLOAD_DEADLINE")


@pytest.fixture
def deep_project(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "builder.yaml").write_text("name: deep\n")
    (project / ".dockerignore").write_text("**/*.tmp\n")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "first")
    folder = str(project)  # an untracked tree, 1,200 levels deep, which would ship
    for _ in range(1200):  # os.makedirs recurses
        folder = os.path.join(folder, "d")
        os.mkdir(folder)
    Path(folder, "leaf.py").write_text("x = 1\n")
    yield project
    subprocess.run(["rm", "-rf", "--", str(project)], check=True)  # pytest's rmtree recurses


def test_a_tree_deeper_than_the_recursion_limit_is_no_error(deep_project, tmp_path):
    done = builder("status", str(deep_project), "--json", BUILDER_HOME=str(tmp_path / "h"))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    status = json.loads(done.stdout)
    assert status["mode"] == "bake"
    assert status["dirty_files"] == ["/".join(["d"] * 1200) + "/leaf.py"]
