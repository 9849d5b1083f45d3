"""`builder runs` through the real CLI, without an engine: listing, ids, bad files, retention."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from builder.runs.database import RunDatabase, database_path
from builder.runs.records import FINISHED, KILLED, RunRecord
from tests.gitworld import GitWorld

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


@pytest.fixture
def world(tmp_path):
    return GitWorld(tmp_path)


def seed(world: GitWorld, *records: RunRecord) -> None:
    with RunDatabase(world.home) as database:
        for record in records:
            database.insert(record)


def record(run_id: str, project: str = "/srv/app", **fields) -> RunRecord:
    values = {"status": FINISHED, "exit_code": 0, "started_at": time.time() - 60,
              "ended_at": time.time() - 55, "project_name": "app", "mode": "bake",
              "commit": "c0ffee" * 6 + "c0ff", "dirty_files": ["main.py", "lib/util.py"],
              "image_id": "sha256:" + "ab" * 32, "image": "app:code-1", **fields}
    return RunRecord(id=run_id.ljust(32, "0"), kind="run", target="local",
                     project_path=project, **values)


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("builder: error: ") and "Traceback" not in stderr
    return lines[0]


def test_nothing_recorded_lists_nothing_and_creates_nothing(world):
    done = world.builder("runs", "list")
    assert done.code == 0 and done.stdout == "" and "no runs recorded" in done.stderr
    assert json.loads(world.builder("runs", "list", "--json").stdout) == []
    assert not database_path(world.home).exists()
    line = one_error_line(world.builder("runs", "show", "abc").stderr)
    assert "no run 'abc'" in line


def test_list_shows_commits_dirty_files_and_image_ids_newest_first(world):
    seed(world, record("aa", started_at=time.time() - 120),
         record("bb", project="/srv/other", project_name="other", dirty_files=[],
                image_digest="sha256:" + "cd" * 32))
    done = world.builder("runs", "list")
    assert done.code == 0, done.stderr
    header, newest, oldest = done.stdout.splitlines()
    assert header.split()[:4] == ["ID", "STARTED", "TOOK", "RESULT"]
    assert newest.startswith("bb0000000000") and oldest.startswith("aa0000000000")
    assert "main.py +1" in oldest and "abababababab" in oldest and "cdcdcdcdcdcd" in newest
    assert "c0ffeec0ffee" in oldest and "exit 0" in oldest
    only = world.builder("runs", "list", "/srv/other", "--json").json()
    assert [item["id"][:2] for item in only] == ["bb"]
    assert only[0]["image_digest"] == "sha256:" + "cd" * 32
    assert len(world.builder("runs", "list", "--limit", "1", "--json").json()) == 1


def test_show_takes_a_unique_prefix(world):
    seed(world, record("abc1", error="engine gone", exit_code=1),
         record("abc2", status=KILLED, exit_code=None))
    shown = world.builder("runs", "show", "abc1", "--json").json()
    assert shown["id"].startswith("abc1") and shown["result"] == "failed (1)"
    text = world.builder("runs", "show", "ABC2").stdout
    assert "killed" in text and "org.builder.run-id=abc2" in text
    assert "lib/util.py" in text


def test_an_unknown_or_ambiguous_id_is_one_line_and_exit_2(world):
    seed(world, record("abc1"), record("abc2"))
    for args, expected in [(("show", "ab"), "ambiguous"), (("show", "ffff"), "no run 'ffff'"),
                           (("rerun", "abc"), "ambiguous"), (("rerun", "0123"), "no run"),
                           (("show", "not-hex"), "not a run id")]:
        done = world.builder("runs", *args)
        assert done.code == 2, (args, done.stderr)
        assert expected in one_error_line(done.stderr)


def test_a_corrupt_database_is_exit_1_with_one_line_and_the_file_is_kept(world):
    path = database_path(world.home)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00garbage, not SQLite\n" * 64)
    before = path.read_bytes()
    project = world.project()
    for args in [("runs", "list"), ("runs", "show", "ab"), ("runs", "prune", "--older-than", "1d"),
                 ("build", str(project)), ("run", str(project))]:
        done = world.builder(*args, env=NO_ENGINE)
        assert done.code == 1, (args, done.stderr)
        line = one_error_line(done.stderr)
        assert str(path) in line and "not a readable run database" in line
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["runs.db"]


def test_a_failed_build_is_recorded_with_its_error_and_bad_input_is_not(world):
    project = world.project()
    done = world.builder("build", str(project), env=NO_ENGINE)
    assert done.code == 1 and "cannot reach the Docker engine" in done.stderr
    missing = world.builder("build", str(world.root / "nowhere"), env=NO_ENGINE)
    assert missing.code == 2 and "not a directory" in one_error_line(missing.stderr)
    runs = world.builder("runs", "list", "--json").json()
    assert len(runs) == 1
    assert runs[0]["kind"] == "build" and runs[0]["result"] == "failed (1)"
    assert "cannot reach the Docker engine" in runs[0]["error"]
    assert runs[0]["project_path"] == str(project)
    assert runs[0]["ended_at"] is not None and runs[0]["builder_version"]


def test_prune_removes_what_is_older_than_the_age(world):
    seed(world, record("01", started_at=time.time() - 3 * 86400), record("02"))
    done = world.builder("runs", "prune", "--older-than", "2d")
    assert done.code == 0 and "removed 1 run record " in done.stderr
    assert [r["id"][:2] for r in world.builder("runs", "list", "--json").json()] == ["02"]
    for bad in ("2", "2y", "-1d"):
        done = world.builder("runs", "prune", "--older-than", bad)
        assert done.code == 2 and "--older-than" in one_error_line(done.stderr)
    assert world.builder("runs", "list", "--limit", "-1").code == 2


def test_the_list_fast_path_and_typer_agree_and_the_fast_path_loads_no_cli_framework(world):
    seed(world, record("aa"), record("bb", project="/srv/other"))
    for fast, slow in [
        (("runs", "list"), ("runs", "list", "--")),
        (("runs", "list", "--json", "--limit", "1"), ("runs", "list", "--limit=1", "--json")),
        (("runs", "list", "/srv/other", "--json"), ("runs", "list", "--json", "--", "/srv/other")),
    ]:
        quick, typed = world.builder(*fast), world.builder(*slow)
        assert quick.code == typed.code == 0, (quick.stderr, typed.stderr)
        assert quick.stdout == typed.stdout and quick.stdout
    code = (
        "import sys\n"
        "from builder.cli import main\n"
        "try:\n"
        "    main(['runs', 'list', '--json'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "print(sorted(m for m in ('typer', 'click', 'docker', 'yaml') if m in sys.modules),\n"
        "      file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "BUILDER_HOME": str(world.home)}, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "[]"
    assert len(json.loads(done.stdout)) == 2
    bad = world.builder("runs", "list", "--limit", "x")
    assert bad.code == 2 and "--limit" in bad.stderr
