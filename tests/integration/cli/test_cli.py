"""The CLI contract: exit codes, one-line errors, nothing written on bad input, no secret shown."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.gitworld import GitWorld

TOKEN = "ghp_SuperSecretToken0123456789"


@pytest.fixture
def world(tmp_path):
    return GitWorld(tmp_path)


def snapshot(world):
    if not world.home.exists():
        return {}
    return {p.name: p.read_bytes() for p in world.home.iterdir() if p.name != ".lock"}


BAD_REGISTER = [
    ["code-repository", "register", "x", "--type", "nope"],
    ["code-repository", "register", "x", "--type", "github", "--owner", "o"],
    ["code-repository", "register", "x", "--type", "github", "--repository", "r"],
    [
        "code-repository",
        "register",
        "x",
        "--type",
        "github",
        "--owner",
        "o",
        "--repository",
        "r",
        "--bogus",
        "1",
    ],
    [
        "code-repository",
        "register",
        "x",
        "--type",
        "github",
        "--owner",
        "o",
        "--repository",
        "r",
        "--url",
        "ftp://x",
    ],
    ["code-repository", "register", "x", "--type", "github", "--owner", "o b", "--repository", "r"],
    ["code-repository", "register", "x", "--type", "gitlab", "--group", "g"],
    ["code-repository", "register", "x", "--type", "gitlab", "--group", "g", "--project", "a/b"],
    ["code-repository", "register", "x", "--type", "git"],
    ["code-repository", "register", "x", "--type", "git", "--url", "https://u:pw@h/x.git"],
    ["code-repository", "register", "x", "--type", "custom"],
    ["code-repository", "register", "x", "--type", "custom", "--source", "nomodule_xyz.Cls"],
    ["code-repository", "register", "x", "--type", "custom", "--source", "json.JSONDecoder"],
    [
        "code-repository",
        "register",
        "x",
        "--type",
        "github",
        "--owner",
        "o",
        "--repository",
        "r",
        "--token",
        "{{missing.key}}",
    ],
    ["code-repository", "register", "bad name", "--type", "git", "--url", "/x"],
    ["code-repository", "register", "x"],
    ["code-repository", "register", "x", "--type", "git", "--url"],
    ["code-repository", "describe", "nope"],
    ["code-repository", "delete", "nope"],
    ["secret", "create", "s"],
    ["secret", "create", "env", "--k=v"],
    ["secret", "create", "s", "positional"],
    ["secret", "delete", "nope"],
    ["status", "--bogus"],
    ["nosuchcommand"],
    ["run", "--node-cache", "/var/cache/builder"],
    ["run", "--target", "swarm", "--node-cache", "/var/cache/builder"],
    ["run", "--target", "kubernetes", "--emit", "--node-cache", "cache"],
    ["run", "--target", "kubernetes", "--emit", "--node-cache", "/"],
]


@pytest.mark.parametrize("args", BAD_REGISTER, ids=[" ".join(a[:4]) for a in BAD_REGISTER])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(world, args):
    world.builder("secret", "create", "existing", "--k=v")
    before = snapshot(world)
    result = world.builder(*args)
    assert result.code == 2, result
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(world) == before


@pytest.mark.parametrize("yaml_text", ["name: [x\n", "nme: x\n", "name: x\nrequirements: 3\n"])
def test_malformed_builder_yaml_exits_2(world, yaml_text):
    project = world.root / "p"
    project.mkdir()
    (project / "builder.yaml").write_text(yaml_text)
    result = world.builder("status", str(project))
    assert result.code == 2
    assert str(project / "builder.yaml") in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_duplicate_registration_is_refused(world):
    assert (
        world.builder("code-repository", "register", "a", "--type", "git", "--url", "/x").code == 0
    )
    result = world.builder("code-repository", "register", "a", "--type", "git", "--url", "/y")
    assert result.code == 2 and "already registered" in result.stderr


def test_register_list_describe_delete_round_trip(world):
    world.builder("secret", "create", "gh", f"--pa_token={TOKEN}")
    assert (
        world.builder(
            "code-repository",
            "register",
            "r",
            "--type",
            "github",
            "--owner",
            "o",
            "--repository",
            "r",
            "--token",
            "{{gh.pa_token}}",
        ).code
        == 0
    )
    listed = world.builder("code-repository", "list", "--json").json()
    assert [(r["name"], r["type"], r["token"]) for r in listed] == [
        ("r", "github", "{{gh.pa_token}}")
    ]
    described = world.builder("code-repository", "describe", "r", "--json").json()
    assert described["config"] == {"owner": "o", "repository": "r"}
    assert world.builder("secret", "delete", "gh").code == 2  # still used
    assert world.builder("code-repository", "delete", "r").code == 0
    assert world.builder("code-repository", "list", "--json").json() == []
    assert world.builder("secret", "delete", "gh").code == 0


def test_custom_source_is_checked_at_register_from_the_project_directory(world):
    (world.root / "myrepo.py").write_text(
        "from builder.repositories import BaseCodeRepository\n"
        "class Mine(BaseCodeRepository):\n"
        "    def login(self): pass\n"
        "    def download_files(self, commit, directory, repo_sub_directory): pass\n"
        "    def get_local_context(self, path): return None\n"
        "class Half(BaseCodeRepository):\n"
        "    def login(self): pass\n"
    )
    ok = world.builder(
        "code-repository",
        "register",
        "c",
        "--type",
        "custom",
        "--source",
        "myrepo.Mine",
        "--bucket=b1",
        "--region",
        "eu",
        "--json",
    )
    assert ok.code == 0, ok.stderr
    assert ok.json()["config"] == {"source": "myrepo.Mine", "bucket": "b1", "region": "eu"}
    half = world.builder(
        "code-repository", "register", "h", "--type", "custom", "--source", "myrepo.Half"
    )
    assert half.code == 2 and "does not implement: download_files, get_local_context" in half.stderr


def test_no_command_ever_prints_a_registered_token(world):
    remote = world.bare("app")
    project = world.project(remote=remote)
    world.builder(
        "code-repository",
        "register",
        "lit",
        "--type",
        "git",
        "--url",
        str(remote),
        "--token",
        TOKEN,
    )
    world.builder("secret", "create", "other", f"--t={TOKEN}x")
    commands = [
        ["code-repository", "list"],
        ["code-repository", "list", "--json"],
        ["code-repository", "describe", "lit"],
        ["code-repository", "describe", "lit", "--json"],
        ["secret", "list"],
        ["secret", "list", "--json"],
        ["status", str(project)],
        ["status", str(project), "--json"],
        ["code-repository", "register", "lit", "--type", "git", "--url", "/x", "--token", TOKEN],
        [
            "code-repository",
            "register",
            "y",
            "--type",
            "github",
            "--owner",
            "o",
            "--repository",
            "r",
            "--token",
            TOKEN,
            "--bogus",
            "1",
        ],
        ["secret", "create", "other", f"--t={TOKEN}"],
    ]
    for command in commands:
        result = world.builder(*command)
        assert TOKEN not in result.stdout + result.stderr, command
    assert TOKEN not in (world.home / "repositories.json").read_text()
    assert json.loads((world.home / "secrets.json").read_text())["secrets"][
        "code-repository-lit"
    ] == {"token": TOKEN}


def test_status_of_a_git_repository_imports_no_docker_api_clients_or_cli_framework(world):
    """Nor the run records (sqlite3), nor, once builder.yaml has been read before, the YAML
    parser."""
    remote = world.bare("app")
    project = world.project(remote=remote)
    world.builder("code-repository", "register", "app", "--type", "git", "--url", str(remote))
    code = (
        "import sys\n"
        "from builder.cli import main\n"
        "try:\n"
        f"    main(['status', {str(project)!r}, '--json'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "names = ('docker', 'github', 'gitlab', 'git', 'requests', 'typer', 'click', 'yaml',\n"
        "         'sqlite3', 'builder.runs')\n"
        "heavy = sorted(m for m in names if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n"
    )
    loaded = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", code],
            env={**world_env(world)},
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["mode"] == "reuse"
        loaded.append(done.stderr.rstrip().rpartition("HEAVY=")[2])
    assert loaded == ["yaml", ""]
    # with a record of the last base to compare with (builder.images.changes), still none
    from builder.images.changes import save_record

    target = {"implementation": "cpython", "version": "3.11.2", "machine": "x86_64",
              "system": "linux", "libc": "glibc", "libc_version": "2.36"}
    save_record(world.home, project, {"checksum": "0" * 64, "requirements": ["six==1.0"],
                                      "installer": "pip", "target": target})
    done = subprocess.run([sys.executable, "-c", code], env={**world_env(world)},
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["base_changes"] == [
        {"input": "requirements", "added": [], "removed": ["six==1.0"]},
        {"input": "installer", "before": "pip", "after": "uv"}]
    assert done.stderr.rstrip().rpartition("HEAVY=")[2] == ""


def test_status_fast_path_and_typer_agree(world):
    """`status [PATH] [--json]` skips typer; `--` sends the same question through typer."""
    remote = world.bare("app")
    project = world.project(remote=remote)
    world.builder("code-repository", "register", "app", "--type", "git", "--url", str(remote))
    (project / "main.py").write_text("print('dirty')\n")
    for fast, slow in [
        (("status", str(project), "--json"), ("status", "--json", "--", str(project))),
        (("status", str(project)), ("status", "--", str(project))),
    ]:
        quick, full = world.builder(*fast), world.builder(*slow)
        assert quick.code == full.code == 0, (quick.stderr, full.stderr)
        if "--json" in fast:
            one, two = json.loads(quick.stdout), json.loads(full.stdout)
            assert one.pop("seconds") >= 0 and two.pop("seconds") >= 0
            assert one == two and one["mode"] == "bake" and one["dirty_files"] == ["main.py"]
        else:
            assert quick.stdout == full.stdout and "main.py" in quick.stdout


@pytest.mark.parametrize(
    "args, expected",
    [
        (("status", "--help"), 0),
        (("status", "--bogus"), 2),
        (("status", "a", "b"), 2),
        (("status", "does-not-exist", "--json"), 2),
    ],
)
def test_status_arguments_outside_the_fast_path_get_typer_answers(world, args, expected):
    done = world.builder(*args, cwd=world.root)
    assert done.code == expected, done.stderr
    if expected == 0:
        assert "--json" in done.stdout
    else:
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def world_env(world):
    import os

    return {**os.environ, "BUILDER_HOME": str(world.home)}
