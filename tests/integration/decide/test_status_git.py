"""`builder status PATH --json` on real git checkouts with file:// and path remotes."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from tests.gitworld import GitWorld, git


@pytest.fixture
def world(tmp_path: Path) -> GitWorld:
    return GitWorld(tmp_path)


@pytest.fixture
def pushed(world: GitWorld) -> tuple[GitWorld, Path, Path]:
    """A clean clone pushed to a bare remote registered as a git-type repository."""
    remote = world.bare("app")
    project = world.project(
        remote=remote,
        files={
            "main.py": "print('hello')\n",
            "pkg/mod.py": "X = 1\n",
            "run.sh": "echo hi\n",
            ".gitignore": "*.log\nbuild/\n",
            ".dockerignore": "docs\n*.tmp\n",
            "docs/readme.md": "d\n",
        },
    )
    assert (
        world.builder(
            "code-repository", "register", "app", "--type", "git", "--url", str(remote)
        ).code
        == 0
    )
    return world, project, remote


def reuse(status: dict) -> bool:
    return status["mode"] == "reuse" and status["reasons"] == []


def test_clean_and_pushed_reuses(pushed):
    world, project, _ = pushed
    status = world.status(project)
    assert reuse(status), status
    assert status["code_repository"] == "app"
    assert status["commit"] == git(project, "rev-parse", "HEAD")
    assert status["subdirectory"] == ""
    assert status["dirty_files"] == [] and status["unpushed"] is False
    assert set(status) >= {"checksum", "base_image", "image", "built", "pushed", "seconds"}


# Each edit is applied to a clean pushed checkout; expected dirty files (empty means reuse).
TREE_STATES = {
    "modified": (lambda p: (p / "main.py").write_text("print('changed')\n"), ["main.py"]),
    "staged": (
        lambda p: ((p / "main.py").write_text("x\n"), git(p, "add", "main.py")),
        ["main.py"],
    ),
    "staged then reverted in the work tree": (
        lambda p: (
            (p / "main.py").write_text("x\n"),
            git(p, "add", "main.py"),
            (p / "main.py").write_text("print('hello')\n"),
        ),
        [],
    ),
    "new file staged, then deleted from the work tree": (
        lambda p: ((p / "new.py").write_text("n\n"), git(p, "add", "new.py"),
                   (p / "new.py").unlink()),
        [],
    ),
    "glob-like name staged, then changed again": (
        lambda p: ((p / "[ab].py").write_text("1\n"), git(p, "add", "[[]ab].py"),
                   (p / "[ab].py").write_text("2\n")),
        ["[ab].py"],
    ),
    "deleted": (lambda p: (p / "main.py").unlink(), ["main.py"]),
    "deleted and staged": (lambda p: git(p, "rm", "-q", "main.py"), ["main.py"]),
    "renamed": (lambda p: git(p, "mv", "main.py", "app.py"), ["app.py", "main.py"]),
    "mode change": (lambda p: os.chmod(p / "run.sh", 0o755), ["run.sh"]),
    "untracked": (lambda p: (p / "new.py").write_text("n\n"), ["new.py"]),
    "untracked in a new directory": (
        lambda p: ((p / "newdir").mkdir(), (p / "newdir" / "a.py").write_text("a\n")),
        ["newdir/a.py"],
    ),
    "unicode name": (lambda p: (p / "données_é.py").write_text("u\n"), ["données_é.py"]),
    "name with spaces": (lambda p: (p / "my file.py").write_text("s\n"), ["my file.py"]),
    "git-ignored file": (lambda p: (p / "debug.log").write_text("l\n"), []),
    "git-ignored directory": (
        lambda p: ((p / "build").mkdir(), (p / "build" / "x.o").write_text("o")),
        [],
    ),
    "dockerignored untracked file": (lambda p: (p / "scratch.tmp").write_text("t\n"), []),
    "dockerignored tracked file modified": (
        lambda p: (p / "docs" / "readme.md").write_text("e\n"),
        [],
    ),
    "empty directory": (lambda p: (p / "emptydir").mkdir(), []),
    ".dockerignore itself changed": (
        lambda p: (p / ".dockerignore").write_text("docs\n"),
        [".dockerignore"],
    ),
}


@pytest.mark.parametrize("state", sorted(TREE_STATES))
def test_tree_states(pushed, state):
    world, project, _ = pushed
    edit, expected = TREE_STATES[state]
    edit(project)
    status = world.status(project)
    assert status["dirty_files"] == sorted(expected)
    assert status["mode"] == ("bake" if expected else "reuse"), status
    if expected:
        assert any("differ" in reason for reason in status["reasons"])


def test_committed_but_not_pushed_bakes(pushed):
    world, project, _ = pushed
    (project / "main.py").write_text("print('local')\n")
    git(project, "commit", "-qam", "local only")
    status = world.status(project)
    assert status["mode"] == "bake" and status["unpushed"] is True
    assert status["dirty_files"] == []
    assert any("on no branch of remote 'origin'" in r for r in status["reasons"])
    git(project, "push", "-q")
    assert reuse(world.status(project))


def test_detached_head_at_a_pushed_commit_reuses(pushed):
    world, project, _ = pushed
    git(project, "checkout", "-q", "--detach", "HEAD")
    status = world.status(project)
    assert reuse(status), status


def test_commit_behind_the_remote_tip_is_pushed_even_when_the_tip_is_not_local(pushed):
    world, project, remote = pushed
    other = world.root / "other"
    git(world.root, "clone", "-q", str(remote), str(other))
    (other / "later.py").write_text("later\n")
    git(other, "add", "-A")
    git(other, "commit", "-qm", "someone else's commit")
    git(other, "push", "-q")
    # our checkout never fetched the new tip; our commit is behind it
    status = world.status(project)
    assert reuse(status), status


def test_commit_on_a_pushed_feature_branch_reuses(pushed):
    world, project, _ = pushed
    git(project, "checkout", "-q", "-b", "feature")
    (project / "f.py").write_text("f\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "feature")
    assert world.status(project)["unpushed"] is True
    git(project, "push", "-q", "origin", "feature")
    assert reuse(world.status(project))


def test_stale_remote_tracking_ref_cannot_fool_the_check(pushed):
    world, project, remote = pushed
    git(project, "checkout", "-q", "-b", "gone")
    (project / "g.py").write_text("g\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "pushed then deleted")
    git(project, "push", "-q", "origin", "gone")
    git(remote, "branch", "-D", "gone")  # deleted on the remote; origin/gone is still local
    assert git(project, "rev-parse", "origin/gone") == git(project, "rev-parse", "HEAD")
    status = world.status(project)
    assert status["mode"] == "bake" and status["unpushed"] is True


def test_subdirectory_project_ignores_changes_outside_it(world):
    remote = world.bare("mono")
    project = world.project(
        remote=remote, subdirectory="services/api", files={"main.py": "print(1)\n"}
    )
    work = project.parent.parent
    (work / "README.md").write_text("outside\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "outside")
    git(work, "push", "-q")
    assert (
        world.builder(
            "code-repository", "register", "mono", "--type", "git", "--url", f"file://{remote}"
        ).code
        == 0
    )
    (work / "README.md").write_text("dirty outside the project\n")
    (work / "other.py").write_text("untracked outside\n")
    status = world.status(project)
    assert reuse(status), status
    assert status["subdirectory"] == "services/api"
    (project / "main.py").write_text("print(2)\n")
    status = world.status(project)
    assert status["mode"] == "bake" and status["dirty_files"] == ["main.py"]


def test_directory_outside_git(world):
    plain = world.root / "plain"
    plain.mkdir()
    (plain / "builder.yaml").write_text("name: demo\n")
    status = world.status(plain)
    assert status["mode"] == "bake"
    assert status["reasons"] == ["the project is not inside a git checkout"]
    assert status["commit"] is None and status["code_repository"] is None


def test_repository_with_no_commits(world):
    work = world.root / "fresh"
    git(world.root, "init", "-q", str(work))
    (work / "builder.yaml").write_text("name: demo\n")
    status = world.status(work)
    assert status["mode"] == "bake" and status["commit"] is None
    assert any("no commits" in r for r in status["reasons"])


def test_no_registered_repository_matches(world):
    remote = world.bare("app")
    project = world.project(remote=remote)
    world.builder(
        "code-repository", "register", "elsewhere", "--type", "git", "--url", "/nonexistent/x.git"
    )
    status = world.status(project)
    assert status["mode"] == "bake" and status["code_repository"] is None
    assert any("matches the checkout's remotes (origin)" in r for r in status["reasons"])


def test_fork_versus_upstream(world):
    upstream = world.bare("upstream")
    fork = world.bare("fork")
    project = world.project(remote=upstream)
    git(project, "remote", "rename", "origin", "upstream")
    git(project, "remote", "add", "origin", str(fork))
    (project / "feature.py").write_text("mine\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "on my fork only")
    git(project, "push", "-q", "origin", "main")
    world.builder(
        "code-repository", "register", "upstream", "--type", "git", "--url", str(upstream)
    )
    status = world.status(project)
    assert status["mode"] == "bake" and status["code_repository"] == "upstream"
    assert status["unpushed"] is True
    world.builder("code-repository", "register", "fork", "--type", "git", "--url", str(fork))
    status = world.status(project)
    assert reuse(status) and status["code_repository"] == "fork"


def test_several_remotes_match_on_any(world):
    remote = world.bare("app")
    project = world.project(remote=remote)
    git(project, "remote", "rename", "origin", "zzz")
    git(project, "remote", "add", "aaa", "/nonexistent/other.git")
    world.builder(
        "code-repository", "register", "app", "--type", "git", "--url", f"file://{remote}"
    )
    status = world.status(project)
    assert reuse(status) and status["code_repository"] == "app"


def test_unreachable_remote_bakes_within_the_bound(world):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts connections, never answers
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/app.git"
    try:
        project = world.project()
        git(project, "remote", "add", "origin", url)
        world.builder("code-repository", "register", "app", "--type", "git", "--url", url)
        started = time.monotonic()
        status = world.status(project, env={"BUILDER_REMOTE_TIMEOUT": "2"})
        elapsed = time.monotonic() - started
    finally:
        listener.close()
    assert status["mode"] == "bake" and status["code_repository"] == "app"
    assert any("cannot reach remote 'origin'" in r and "timed out" in r for r in status["reasons"])
    assert elapsed < 10


def test_remote_that_refuses_connections_bakes_with_the_reason(world):
    project = world.project()
    url = "http://127.0.0.1:9/app.git"
    git(project, "remote", "add", "origin", url)
    world.builder("code-repository", "register", "app", "--type", "git", "--url", url)
    status = world.status(project)
    assert status["mode"] == "bake"
    assert any("cannot reach remote 'origin'" in r for r in status["reasons"])


def test_human_output_is_a_short_table(pushed):
    world, project, _ = pushed
    (project / "main.py").write_text("changed\n")
    result = world.builder("status", str(project))
    assert result.code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["mode", "bake"]
    assert any(line.startswith("repository") and "app" in line for line in lines)
    assert any(line.startswith("dirty files") and "main.py" in line for line in lines)
