"""Nothing a user, a store file or a checkout's .git/config holds reaches git as an option or a
command: register refuses it (one line, exit 2, nothing written), and git gets every value
after `--end-of-options`. Real git, real `builder` processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gitworld import GitWorld, git

PWNED = "pwned-marker"


def _payloads(tmp_path: Path) -> list[list[str]]:
    marker = tmp_path / PWNED
    return [
        ["--type", "git", "--url", f"ext::sh -c touch% {marker}"],
        ["--type", "git", "--url", "fd::17"],
        ["--type", "git", "--url", f"ssh://-oProxyCommand=touch {marker}/x.git"],
        ["--type", "git", "--url", f"-oProxyCommand=touch {marker}:x.git"],
        ["--type", "git", "--url", "ssh://-user@example.invalid/x.git"],
        ["--type", "git", "--url", "https://127.0.0.1:9/x.git\n[core]\n\tsshCommand = x"],
        ["--type", "git", "--url", "https://127.0.0.1:9/x.git\r"],
        ["--type", "git", "--url", f"--upload-pack=touch {marker}"],
        ["--type", "git", "--url", "https://127.0.0.1:9/x.git", "--username", "a\nb"],
        ["--type", "github", "--owner", "..", "--repository", "app"],
        ["--type", "github", "--owner", "team", "--repository", "."],
        ["--type", "github", "--owner", "-team", "--repository", "app"],
        ["--type", "github", "--owner", "team", "--repository", "app",
         "--url", "https://127.0.0.1:9\n"],
        ["--type", "gitlab", "--group", "team/..", "--project", "app"],
        ["--type", "gitlab", "--group", "team", "--project", ".."],
        ["--type", "gitlab", "--group", "team", "--project", "app", "--token", "tok\nen"],
    ]


@pytest.mark.parametrize("index", range(16))
def test_register_refuses_what_could_reach_git_as_a_command(tmp_path, index):
    args = _payloads(tmp_path)[index]
    world = GitWorld(tmp_path)
    done = world.builder("code-repository", "register", "app", *args)
    assert done.code == 2, (args, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("builder: error: "), done.stderr
    assert not world.home.exists() or sorted(p.name for p in world.home.iterdir()) in (
        [], [".lock"])
    assert not (tmp_path / PWNED).exists()


def test_a_remote_name_from_git_config_never_reaches_git_as_an_option(tmp_path):
    world = GitWorld(tmp_path)
    remote = world.bare("app")
    project = world.project(remote=remote)
    marker = tmp_path / PWNED
    # a hostile checkout: a remote whose *name* is an option of `git ls-remote`, at the URL
    # of the registered repository, so that status asks it
    git(project, "config", f"remote.--upload-pack=touch {marker}.url", str(remote))
    git(project, "remote", "remove", "origin")
    assert world.builder("code-repository", "register", "app", "--type", "git",
                         "--url", str(remote)).code == 0
    done = world.builder("status", str(project), "--json")
    assert "Traceback" not in done.stderr
    assert not marker.exists(), "a remote's name ran as git's --upload-pack"


def test_an_entrypoint_contract_with_a_helper_url_runs_nothing(tmp_path):
    marker = tmp_path / PWNED
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BUILDER_")},
           "BUILDER_CODE_DIR": str(tmp_path / "code"), "BUILDER_CACHE_DIR": str(tmp_path / "c"),
           "BUILDER_COMMIT": "a" * 40,
           "BUILDER_CODE_REPOSITORY": json.dumps({"type": "git", "name": "x", "config": {
               "url": f"ext::sh -c touch% {marker}"}})}
    done = subprocess.run([sys.executable, "-m", "builder", "entrypoint", "--", "true"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("builder: error:")]
    assert not marker.exists()


@pytest.mark.parametrize("bad_id", ["../../../../user", "a" * 39, "A" * 40, "-" + "a" * 39,
                                    None, 7])
def test_an_object_id_from_githubs_listing_goes_into_no_request_unless_it_is_one(bad_id):
    """Listed ids name the next requests (`git/trees/{id}` of a truncated listing's subtrees,
    `git/blobs/{id}`): one that is not a full object id fails the listing, and nothing is
    asked with it."""
    from builder.errors import DownloadError
    from builder.repositories.github import GitHubCodeRepository
    from builder.repositories.github_api import tree_listing
    from tests.infra.hostile import CannedServer

    sha = "c" * 40
    good = {"path": "app.py", "mode": "100644", "type": "blob", "sha": "b" * 40, "size": 3}
    bad = {**good, "path": "evil.py", "sha": bad_id}
    listing = "/repos/team/app/git/trees/" + sha
    server = CannedServer({listing: (200, {"sha": sha, "tree": [good], "truncated": False})})
    server.start()
    try:
        repo = GitHubCodeRepository("id", "gh", {"owner": "team", "repository": "app",
                                                 "url": server.url, "api_url": server.url})
        assert tree_listing(repo, sha, None) == {"app.py": ("100644", "b" * 40)}  # well-formed
        server.answers[listing] = (200, {"sha": sha, "tree": [good, bad], "truncated": False})
        with pytest.raises(DownloadError, match="is not a tree"):
            tree_listing(repo, sha, None)
    finally:
        server.stop()
    assert [path.split("?")[0] for path in server.requests] == [listing, listing]
