"""The decision in CI checkouts: shallow, detached, credentials in .git/config or in the URL.

Each test makes the checkout the way the CI system does (tests/cisim.py) from a loopback
GitHub, GitLab or git server, sets the job's variables, and runs `builder status --json`.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from tests.cisim import actions_checkout, github_env, gitlab_checkout, gitlab_env
from tests.gitworld import GitWorld, Result, git
from tests.infra.git_server import GitServer
from tests.infra.github_server import GitHubServer
from tests.infra.gitlab_server import GitLabServer
from tests.infra.gitrepos import RepoHandle

REPO = "team/app"
FILES = {"builder.yaml": "name: ci-demo\n", "main.py": "print('v1')\n"}


@pytest.fixture
def world(tmp_path: Path) -> GitWorld:
    return GitWorld(tmp_path)


def history(handle: RepoHandle, count: int, start: int = 0, branch: str = "main") -> list[str]:
    """`count` more (empty) commits on `branch`, pushed; their shas, oldest first."""
    handle.checkout(branch)
    for i in range(count):
        handle.git("commit", "-q", "--allow-empty", "-m", f"c{start + i}")
    handle.push(branch)
    return handle.git("rev-list", "--reverse", "-n", str(count), "HEAD").split()


def merge_ref(handle: RepoHandle, ref: str, feature: str = "feature") -> str:
    """A merge commit of `feature` into main, published only as `ref` (like refs/pull/1/merge)."""
    handle.git("checkout", "-q", "--detach", "main")
    handle.git("merge", "-q", "--no-ff", "-m", "Merge feature into main", feature)
    sha = handle.head
    handle.git("push", "-q", "origin", f"{sha}:{ref}")
    handle.git("checkout", "-q", "main")
    return sha


def register(world: GitWorld, kind: str, server: Any, token: str = "{{env.CI_TEST_TOKEN}}"):
    options = {
        "github": ["--owner", "team", "--repository", "app", "--url", server.url,
                   "--api-url", server.url],
        "gitlab": ["--group", "team", "--project", "app", "--url", server.url],
        "git": ["--url", f"{server.url}/{REPO}.git"],
    }[kind]
    done = world.builder("code-repository", "register", "app", "--type", kind, *options,
                         "--token", token)
    assert done.code == 0, done.stderr


def status(world: GitWorld, path: Path, env: dict[str, str]) -> dict[str, Any]:
    result = world.builder("status", str(path), "--json", env=env)
    assert_no_secret(result, env)
    return result.json()


def assert_no_secret(result: Result, env: dict[str, str]) -> None:
    for name in ("CI_TEST_TOKEN", "GITHUB_TOKEN", "CI_JOB_TOKEN", "GITLAB_TOKEN"):
        token = env.get(name)
        if token:
            basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
            for text in (result.stdout, result.stderr):
                assert token not in text and basic not in text


def checkout_state(path: Path) -> tuple[str, ...]:
    """What a status must leave untouched: refs, history depth, shallow list, objects."""
    shallow = path / ".git" / "shallow"
    return (
        git(path, "for-each-ref"),
        git(path, "rev-list", "--count", "HEAD"),
        shallow.read_text() if shallow.exists() else "",
        git(path, "count-objects", "-v"),
    )


# ---------------------------------------------------------------------------- GitHub Actions


@pytest.fixture
def github(github_server: GitHubServer, world: GitWorld) -> tuple[GitHubServer, RepoHandle]:
    handle = github_server.create_repo(REPO)
    handle.commit(FILES, "v1")
    handle.push()
    register(world, "github", github_server)
    return github_server, handle


def test_actions_push_at_the_branch_tip_reuses_without_an_api_request(github, world, tmp_path):
    server, handle = github
    sha = handle.head
    project = tmp_path / "runner"
    assert actions_checkout(server, REPO, project, sha=sha) == sha
    assert git(project, "rev-parse", "--is-shallow-repository") == "true"
    assert git(project, "status", "--porcelain", "--branch").startswith("## HEAD (no branch)")
    env = {**github_env(server, REPO, sha, tmp_path / "gh"), "CI_TEST_TOKEN": server.token}
    server.reset_counts()
    info = status(world, project, env)
    assert info["mode"] == "reuse" and info["commit"] == sha, info
    assert server.count("/compare/") == 0
    assert server.count(r"\.git/") >= 1  # the ls-remote, authorised by the extraheader


def test_actions_commit_behind_the_tip_asks_the_compare_api_once(github, world, tmp_path):
    server, handle = github
    sha = handle.head
    history(handle, 3)  # the branch moved on after the workflow started
    project = tmp_path / "runner"
    actions_checkout(server, REPO, project, sha=sha)
    before = checkout_state(project)
    env = {**github_env(server, REPO, sha, tmp_path / "gh"), "CI_TEST_TOKEN": server.token}
    server.reset_counts()
    info = status(world, project, env)
    assert info["mode"] == "reuse" and info["unpushed"] is False, info
    assert server.count(f"/repos/{REPO}/compare/{handle.head}...{sha}") == 1
    assert server.count("/compare/") == 1
    assert server.count("git-upload-pack") == 1  # the ls-remote only: nothing was fetched
    assert checkout_state(project) == before


def test_actions_pull_request_head_commit_reuses(github, world, tmp_path):
    server, handle = github
    history(handle, 2, branch="feature")
    head = handle.head
    history(handle, 1, start=10)  # main moves on too
    project = tmp_path / "runner"
    actions_checkout(server, REPO, project, sha=head)  # ref: pull_request.head.sha
    env = github_env(server, REPO, head, tmp_path / "gh", CI_TEST_TOKEN=server.token,
                     GITHUB_REF="refs/pull/1/merge", GITHUB_HEAD_REF="feature",
                     GITHUB_BASE_REF="main")
    info = status(world, project, env)
    assert info["mode"] == "reuse", info


def test_actions_pull_request_merge_commit_is_baked_with_the_reason(github, world, tmp_path):
    server, handle = github
    history(handle, 2, branch="feature")
    history(handle, 1, start=10)
    merge = merge_ref(handle, "refs/pull/1/merge")
    project = tmp_path / "runner"
    assert actions_checkout(server, REPO, project, ref="refs/pull/1/merge") == merge
    env = github_env(server, REPO, merge, tmp_path / "gh", CI_TEST_TOKEN=server.token,
                     GITHUB_REF="refs/pull/1/merge", GITHUB_HEAD_REF="feature",
                     GITHUB_BASE_REF="main")
    server.reset_counts()
    info = status(world, project, env)
    assert info["mode"] == "bake" and info["unpushed"] is True, info
    [reason] = info["reasons"]
    assert f"commit {merge[:12]} is on no branch of remote 'origin'" in reason
    assert "none of its 2 branch(es) contains it" in reason
    assert "merge commit" in reason and "head commit" in reason
    assert server.count("/compare/") == 2  # main and feature, one request each
    human = world.builder("status", str(project), env=env)
    assert_no_secret(human, env)
    assert "merge commit" in human.stdout


def test_actions_api_refusal_falls_back_to_a_bounded_deepen(github, world, tmp_path):
    server, handle = github
    sha = handle.head
    history(handle, 3)
    world.builder("code-repository", "delete", "app")
    register(world, "github", server, token="ghp_not-a-valid-token-for-the-api")
    project = tmp_path / "runner"
    actions_checkout(server, REPO, project, sha=sha)
    before = checkout_state(project)
    env = github_env(server, REPO, sha, tmp_path / "gh")
    server.reset_counts()
    info = status(world, project, env)
    assert info["mode"] == "reuse", info
    assert server.count("/compare/") == 1  # 401: no more API questions
    assert server.count("git-upload-pack") > 1  # the ls-remote, then the depth-limited fetch
    assert checkout_state(project) == before


def test_actions_missing_token_variable_is_a_clear_error(github, world, tmp_path):
    server, handle = github
    sha = handle.head
    history(handle, 1)
    project = tmp_path / "runner"
    actions_checkout(server, REPO, project, sha=sha)
    env = github_env(server, REPO, sha, tmp_path / "gh")  # CI_TEST_TOKEN is not set
    result = world.builder("status", str(project), "--json", env=env)
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.strip() == (
        "builder: error: {{env.CI_TEST_TOKEN}}: environment variable CI_TEST_TOKEN is not set"
    )


def test_actions_extraheader_never_appears_in_output(github, world, tmp_path):
    server, handle = github
    sha = handle.head
    project = tmp_path / "runner"
    actions_checkout(server, REPO, project, sha=sha)
    header = git(project, "config", "--get-regexp", r"http\..*\.extraheader")
    assert "AUTHORIZATION: basic" in header
    env = {**github_env(server, REPO, sha, tmp_path / "gh"), "CI_TEST_TOKEN": server.token}
    server.fail_next(1, status=500, match=r"info/refs")  # git reports the failure
    failed = world.builder("status", str(project), "--json", env=env)
    assert_no_secret(failed, env)
    assert failed.json()["mode"] == "bake"
    assert any("cannot reach remote 'origin'" in r for r in failed.json()["reasons"])
    (project / "main.py").write_text("print('dirty')\n")
    for args in (["status", str(project)], ["status", str(project), "--json"],
                 ["code-repository", "list", "--json"], ["code-repository", "describe", "app"]):
        result = world.builder(*args, env=env)
        assert result.code == 0, result.stderr
        assert_no_secret(result, env)
        assert "x-access-token" not in result.stdout + result.stderr


# ---------------------------------------------------------------------------- GitLab CI


@pytest.fixture
def gitlab(gitlab_server: GitLabServer, world: GitWorld) -> tuple[GitLabServer, RepoHandle]:
    handle = gitlab_server.create_repo(REPO)
    handle.commit(FILES, "v1")
    handle.push()
    register(world, "gitlab", gitlab_server)
    return gitlab_server, handle


def test_gitlab_pipeline_at_the_tip_reuses_and_shows_no_token(gitlab, world, tmp_path):
    server, handle = gitlab
    history(handle, 25)
    sha = handle.head
    project = tmp_path / "builds" / "team" / "app"
    project.parent.mkdir(parents=True)
    gitlab_checkout(server, REPO, project, sha)
    assert git(project, "rev-list", "--count", "HEAD") == "20"
    env = {**gitlab_env(server, REPO, sha, project), "CI_TEST_TOKEN": server.token}
    server.reset_counts()
    info = status(world, project, env)
    assert info["mode"] == "reuse", info
    assert server.count(r"/commits/[0-9a-f]+/refs") == 0
    human = world.builder("status", str(project), env=env)
    assert_no_secret(human, env)
    assert f"origin: {server.url}/{REPO}.git" in human.stdout


def test_gitlab_commit_beyond_the_fetch_depth_asks_the_refs_api_once(gitlab, world, tmp_path):
    server, handle = gitlab
    sha = history(handle, 2)[-1]
    history(handle, 25, start=10)  # main is now 25 commits ahead: beyond GIT_DEPTH=20
    project = tmp_path / "builds" / "app"
    project.parent.mkdir(parents=True)
    gitlab_checkout(server, REPO, project, sha)
    before = checkout_state(project)
    env = {**gitlab_env(server, REPO, sha, project), "CI_TEST_TOKEN": server.token}
    server.reset_counts()
    info = status(world, project, env)
    assert info["mode"] == "reuse", info
    assert server.count(f"/repository/commits/{sha}/refs") == 1
    assert server.count("git-upload-pack") == 1  # the ls-remote only
    assert checkout_state(project) == before


def test_gitlab_merged_results_commit_is_baked_with_the_reason(gitlab, world, tmp_path):
    server, handle = gitlab
    history(handle, 25)
    history(handle, 2, branch="feature")
    history(handle, 1, start=10)
    merge = merge_ref(handle, "refs/merge-requests/1/merge")
    project = tmp_path / "builds" / "app"
    project.parent.mkdir(parents=True)
    gitlab_checkout(server, REPO, project, merge, extra_ref="refs/merge-requests/1/merge")
    env = gitlab_env(server, REPO, merge, project, CI_TEST_TOKEN=server.token,
                     CI_MERGE_REQUEST_SOURCE_BRANCH_NAME="feature",
                     CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main")
    server.reset_counts()
    info = status(world, project, env)
    assert info["mode"] == "bake" and info["unpushed"] is True, info
    [reason] = info["reasons"]
    assert f"commit {merge[:12]} is on no branch of remote 'origin'" in reason
    assert "lists no branch that contains it" in reason and "merge commit" in reason
    assert server.count(r"/commits/[0-9a-f]+/refs") == 1


def test_gitlab_api_failure_falls_back_to_a_bounded_deepen(gitlab, world, tmp_path):
    server, handle = gitlab
    sha = history(handle, 2)[-1]
    history(handle, 25, start=10)
    project = tmp_path / "builds" / "app"
    project.parent.mkdir(parents=True)
    gitlab_checkout(server, REPO, project, sha)
    before = checkout_state(project)
    env = {**gitlab_env(server, REPO, sha, project), "CI_TEST_TOKEN": server.token}
    server.fail_next(1, status=503, match=r"/commits/[0-9a-f]+/refs")
    info = status(world, project, env)
    assert info["mode"] == "reuse", info
    # the deepen went into a scratch repository: the checkout keeps its 20 commits
    assert checkout_state(project) == before


# ---------------------------------------------------------------------------- plain git


@pytest.fixture
def plain(git_server: GitServer, world: GitWorld) -> tuple[GitServer, RepoHandle]:
    handle = git_server.create_repo(REPO)
    handle.commit(FILES, "v1")
    handle.push()
    register(world, "git", git_server)
    return git_server, handle


def test_git_type_shallow_commit_behind_the_tip_deepens_without_touching_the_checkout(
    plain, world, tmp_path
):
    server, handle = plain
    shas = history(handle, 30)
    sha = shas[9]  # 20 commits behind the tip, with 10 commits of local history below it
    project = tmp_path / "runner"
    actions_checkout(server, REPO, project, sha=sha, depth=10)
    before = checkout_state(project)
    env = {**github_env(server, REPO, sha, tmp_path / "gh"), "CI_TEST_TOKEN": server.token}
    info = status(world, project, env)
    assert info["mode"] == "reuse", info
    assert checkout_state(project) == before
    assert git(project, "rev-list", "--count", "HEAD") == "10"


def test_git_type_commit_beyond_the_deepen_depth_is_baked_saying_what_was_tried(
    plain, world, tmp_path
):
    server, handle = plain
    sha = handle.head
    history(handle, 5)
    project = tmp_path / "runner"
    actions_checkout(server, REPO, project, sha=sha)
    env = {**github_env(server, REPO, sha, tmp_path / "gh"), "CI_TEST_TOKEN": server.token,
           "BUILDER_DEEPEN_DEPTH": "3"}
    info = status(world, project, env)
    assert info["mode"] == "bake" and info["unpushed"] is True, info
    [reason] = info["reasons"]
    assert "cannot tell whether a branch of remote 'origin'" in reason
    assert "shallow checkout" in reason and "fetched the last 3 commits of 1 branch(es)" in reason
    assert "BUILDER_DEEPEN_DEPTH" in reason
    env["BUILDER_DEEPEN_DEPTH"] = "10"
    assert status(world, project, env)["mode"] == "reuse"


def test_git_type_pull_request_merge_commit_is_baked(plain, world, tmp_path):
    server, handle = plain
    history(handle, 2, branch="feature")
    history(handle, 1, start=10)
    merge = merge_ref(handle, "refs/pull/7/merge")
    project = tmp_path / "runner"
    actions_checkout(server, REPO, project, ref="refs/pull/7/merge")
    env = {**github_env(server, REPO, merge, tmp_path / "gh"), "CI_TEST_TOKEN": server.token}
    info = status(world, project, env)
    assert info["mode"] == "bake" and info["unpushed"] is True, info
    [reason] = info["reasons"]
    assert "fetched the last 100 commits of 2 branch(es)" in reason
    assert "merge commit" in reason


def test_merge_commit_in_a_full_clone_gets_the_same_hint(plain, world, tmp_path):
    server, handle = plain
    history(handle, 1, branch="feature")
    history(handle, 1, start=10)
    merge = merge_ref(handle, "refs/pull/3/merge")
    project = tmp_path / "runner"
    actions_checkout(server, REPO, project, ref="refs/pull/3/merge", depth=50)
    assert git(project, "rev-parse", "--is-shallow-repository") == "false"
    env = {**github_env(server, REPO, merge, tmp_path / "gh"), "CI_TEST_TOKEN": server.token}
    info = status(world, project, env)
    assert info["mode"] == "bake", info
    [reason] = info["reasons"]
    assert f"commit {merge[:12]} is on no branch of remote 'origin'" in reason
    assert "merge commit" in reason and reason.endswith("push it to reuse the base image")
