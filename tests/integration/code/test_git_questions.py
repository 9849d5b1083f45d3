"""Git questions asked early: taken over by the first identical call, killed if nobody does.

Real git throughout; a logging `git` first on PATH counts the processes `builder status`
starts, so a question asked early and then again shows up twice.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.code import gitcmd
from builder.code.git_questions import CHANGES, TOP_AND_HEAD
from tests.gitworld import GitWorld, git, logging_git


@pytest.fixture
def world(tmp_path):
    return GitWorld(tmp_path)


@pytest.fixture(autouse=True)
def no_leftovers():
    yield
    gitcmd.forget_early()


def log_git(world: GitWorld) -> Path:
    """Make world.builder run a `git` that logs its arguments; the log file."""
    log = world.root / "git.log"
    world.env["PATH"] = logging_git(world.root / "bin", log)
    return log


def calls(log: Path, word: str) -> int:
    return sum(word in line.split() for line in log.read_text().splitlines()) if log.exists() else 0


def test_an_early_question_is_taken_over_once(world):
    project = world.project(remote=world.bare("app"))
    early = gitcmd.ask_early(CHANGES, str(project))
    assert early is not None
    assert gitcmd.start_git(CHANGES, project) is early
    again = gitcmd.start_git(CHANGES, project)
    assert again is not early
    assert early.result() == again.result() == b""


def test_git_answer_takes_over_with_the_exit_code(world):
    project = world.project(remote=world.bare("app"))
    head = git(project, "rev-parse", "HEAD")
    early = gitcmd.ask_early(TOP_AND_HEAD, str(project))
    assert early is not None
    code, out = gitcmd.git_answer(TOP_AND_HEAD, project)
    assert (code, out.decode().split()) == (0, [str(project), head])
    assert early.wait()[0] == 0


def test_other_environment_or_directory_is_not_taken_over(world):
    project = world.project(remote=world.bare("app"))
    early = gitcmd.ask_early(CHANGES, str(project))
    assert early is not None
    assert gitcmd.start_git(CHANGES, project, env={"GIT_LITERAL_PATHSPECS": "1"}) is not early
    assert gitcmd.start_git(CHANGES, project.parent) is not early
    gitcmd.forget_early()
    assert early.process.poll() is not None
    assert gitcmd.start_git(CHANGES, project) is not early


def test_a_missing_directory_is_not_asked(tmp_path):
    assert gitcmd.ask_early(CHANGES, str(tmp_path / "gone")) is None


def test_status_asks_each_question_once(world):
    log = log_git(world)
    remote = world.bare("app")
    project = world.project(remote=remote)
    assert world.builder("code-repository", "register", "app", "--type", "git",
                         "--url", str(remote)).code == 0
    log.unlink(missing_ok=True)
    assert world.status(project)["mode"] == "reuse"
    assert [calls(log, word) for word in ("rev-parse", "status", "config", "ls-remote")] == [
        1, 1, 1, 1
    ]


def test_no_registered_repository_no_ls_remote(world):
    log = log_git(world)
    project = world.project(remote=world.bare("app"))
    info = world.status(project)
    assert info["mode"] == "bake"
    assert calls(log, "ls-remote") == 0
    assert calls(log, "status") == 1


def test_two_remotes_ask_only_the_matching_one(world):
    log = log_git(world)
    remote, other = world.bare("app"), world.bare("other")
    project = world.project(remote=remote)
    git(project, "remote", "add", "upstream", str(other))
    assert world.builder("code-repository", "register", "app", "--type", "git",
                         "--url", str(remote)).code == 0
    log.unlink(missing_ok=True)
    assert world.status(project)["mode"] == "reuse"
    asked = [line for line in log.read_text().splitlines() if "ls-remote" in line.split()]
    assert len(asked) == 1 and asked[0].split()[-4:] == [
        "ls-remote", "--heads", "--end-of-options", "origin"], asked


def test_a_remote_no_registered_repository_names_is_never_asked(world):
    log = log_git(world)
    project = world.project(remote=world.bare("app"))
    assert world.builder("code-repository", "register", "other", "--type", "git",
                         "--url", str(world.bare("other"))).code == 0
    assert world.status(project)["mode"] == "bake"
    assert calls(log, "ls-remote") == 0


def test_a_clean_checkout_still_checks_its_dockerignore(world):
    """The download applies .dockerignore: a bad one fails the decision, not the container."""
    project = world.project(files={".dockerignore": "[\n", "main.py": "print(1)\n"})
    result = world.builder("status", str(project), "--json")
    assert result.code == 2
    assert ".dockerignore, line 1: invalid pattern '['" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
