"""The secret builder makes for a literal --token is builder's: it never takes the name of
a user's secret, and it is deleted with its repository only when nothing else uses it. The
real `builder` CLI on a real state directory."""

from __future__ import annotations

import json

from tests.gitworld import GitWorld

TOKEN = "tok-literal-0123456789"


def secrets_file(world: GitWorld) -> dict[str, dict[str, str]]:
    return json.loads((world.home / "secrets.json").read_text())["secrets"]


def test_a_users_secret_of_the_same_name_is_never_overwritten(tmp_path):
    world = GitWorld(tmp_path)
    assert world.builder("secret", "create", "code-repository-app", "--token=users",
                         "--other=kept").code == 0
    done = world.builder("code-repository", "register", "app", "--type", "git",
                         "--url", "/srv/app.git", "--token", TOKEN)
    assert done.code == 0, done.stderr
    stored = secrets_file(world)
    assert stored["code-repository-app"] == {"token": "users", "other": "kept"}
    described = world.builder("code-repository", "describe", "app", "--json").json()
    owned = described["token"].strip("{}").split(".")[0]
    assert owned != "code-repository-app" and stored[owned] == {"token": TOKEN}
    assert world.builder("code-repository", "delete", "app").code == 0
    stored = secrets_file(world)
    assert owned not in stored
    assert stored["code-repository-app"] == {"token": "users", "other": "kept"}


def test_a_secret_another_repository_uses_is_kept_when_its_owner_goes(tmp_path):
    world = GitWorld(tmp_path)
    assert world.builder("code-repository", "register", "a", "--type", "git",
                         "--url", "/srv/a.git", "--token", TOKEN).code == 0
    assert world.builder("code-repository", "register", "b", "--type", "git",
                         "--url", "/srv/b.git", "--token",
                         "{{code-repository-a.token}}").code == 0
    done = world.builder("code-repository", "delete", "a")
    assert done.code == 0, done.stderr
    assert "kept secret 'code-repository-a'" in done.stderr
    assert secrets_file(world)["code-repository-a"] == {"token": TOKEN}
    refused = world.builder("secret", "delete", "code-repository-a")
    assert refused.code == 2 and "used by code repository b" in refused.stderr
    assert world.builder("code-repository", "delete", "b").code == 0
    assert world.builder("secret", "delete", "code-repository-a").code == 0
