"""Remote URL forms judged through `builder status --json` on a real checkout.

Only file transport is allowed (GIT_ALLOW_PROTOCOL=file), so no test sends traffic anywhere:
a matching remote shows up as the chosen repository with a "cannot reach" reason.
"""

from __future__ import annotations

import pytest

from tests.gitworld import GitWorld, git

OFFLINE = {"GIT_ALLOW_PROTOCOL": "file"}

REGISTRATIONS = {
    "gh": ["--type", "github", "--owner", "acme", "--repository", "widgets"],
    "ghe": [
        "--type",
        "github",
        "--owner",
        "acme",
        "--repository",
        "widgets",
        "--url",
        "https://ghe.example.test",
    ],
    "gl": ["--type", "gitlab", "--group", "team/sub", "--project", "app"],
    "glself": [
        "--type",
        "gitlab",
        "--group",
        "team",
        "--project",
        "app",
        "--url",
        "https://code.example.test/gitlab",
    ],
    "plain": ["--type", "git", "--url", "https://git.example.test/x/y.git"],
}

FORMS = [
    ("https://github.com/acme/widgets.git", "gh"),
    ("https://github.com/acme/widgets", "gh"),
    ("https://x-access-token:ghs_ci_token_1@github.com/acme/widgets", "gh"),
    ("git@github.com:acme/widgets.git", "gh"),
    ("ssh://git@github.com/acme/widgets.git", "gh"),
    ("ssh://git@ssh.github.com:443/acme/widgets.git", "gh"),
    ("git://github.com/acme/widgets.git", "gh"),
    ("https://GitHub.com/Acme/Widgets.git", "gh"),
    ("https://ghe.example.test/acme/widgets.git", "ghe"),
    ("git@GHE.example.test:acme/widgets.git", "ghe"),
    ("https://gitlab.com/team/sub/app.git", "gl"),
    ("https://gitlab-ci-token:glcbt_ci_token_2@gitlab.com/team/sub/app.git", "gl"),
    ("git@gitlab.com:team/sub/app.git", "gl"),
    ("ssh://git@gitlab.com:2222/team/sub/app.git", "gl"),
    ("https://code.example.test/gitlab/team/app.git", "glself"),
    ("git@code.example.test:team/app.git", "glself"),
    ("https://git.example.test/x/y", "plain"),
    ("ssh://git@git.example.test:2200/x/y.git", "plain"),
    ("https://github.com/acme/other.git", None),
    ("https://gitlab.com/team/app.git", None),
    ("https://evil.example.test/acme/widgets.git", None),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = GitWorld(tmp_path_factory.mktemp("urls"), env=OFFLINE)
    for name, args in REGISTRATIONS.items():
        assert world.builder("code-repository", "register", name, *args).code == 0
    return world


@pytest.mark.parametrize(("url", "expected"), FORMS)
def test_remote_url_forms(world, url, expected, tmp_path):
    project = GitWorld(tmp_path).project()
    git(project, "remote", "add", "origin", url)
    status = world.status(project)
    assert status["code_repository"] == expected
    assert status["mode"] == "bake"
    if expected:
        assert any("cannot reach remote 'origin'" in r for r in status["reasons"])
    for token in ("ghs_ci_token_1", "glcbt_ci_token_2"):
        assert token not in str(status)


def test_file_url_and_local_path_remotes(tmp_path):
    world = GitWorld(tmp_path)
    remote = world.bare("app")
    project = world.project(remote=f"file://{remote}")
    world.builder("code-repository", "register", "app", "--type", "git", "--url", str(remote))
    assert world.status(project)["mode"] == "reuse"
    git(project, "remote", "set-url", "origin", str(remote))
    assert world.status(project)["mode"] == "reuse"
