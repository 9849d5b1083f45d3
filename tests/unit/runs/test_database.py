"""The run database on a real SQLite file: ids, order, the cap, pruning, bad files, secrets."""

from __future__ import annotations

import sqlite3

import pytest

from builder.errors import StoreError, UsageError
from builder.runs.database import SCHEMA_VERSION, RunDatabase, database_path
from builder.runs.owners import Owner, lock_path
from builder.runs.records import FINISHED, KILLED, RUNNING, RunRecord
from builder.state import secrets

TOKEN = "ghp_RunRecordsSecret0123456789"


def record(run_id: str, started: float = 1000.0, project: str = "/p", **fields) -> RunRecord:
    return RunRecord(id=run_id.ljust(32, "0"), kind="run", started_at=started,
                     project_path=project, **fields)


@pytest.fixture
def database(tmp_path):
    with RunDatabase(tmp_path) as db:
        yield db


def test_a_record_reads_back_as_written(database):
    written = record("a1", status=FINISHED, exit_code=0, target="local",
                     command=["python", "-c", "print('x')"],
                     reasons=["1 file differs"], dirty_files=["main.py"],
                     repository_spec={"type": "git", "name": "app", "config": {"url": "u"}},
                     volumes={"/data": {"bind": "/data", "mode": "ro"}}, verify_download=True,
                     ci={"system": "github", "run_id": "5"}, commit="c" * 40)
    database.insert(written)
    assert database.find("a1") == written
    assert database.path == database_path(database.directory.parent)


def test_a_unique_prefix_finds_a_run_and_anything_else_is_a_usage_error(database):
    database.insert(record("abc1"))
    database.insert(record("abc2"))
    database.insert(record("f00"))
    assert database.find("F00").id.startswith("f00")
    assert database.find("abc2").id.startswith("abc2")
    with pytest.raises(UsageError, match=r"ambiguous: it starts abc2.*abc1"):
        database.find("ab")
    with pytest.raises(UsageError, match="no run 'dead'"):
        database.find("dead")
    with pytest.raises(UsageError, match="not a run id"):
        database.find("xyz")


def test_newest_first_by_project_and_limit(database):
    for index, project in enumerate(["/a", "/b", "/a", "/a"]):
        database.insert(record(f"{index:x}", started=1000 + index, project=project))
    assert [r.id[0] for r in database.runs()] == ["3", "2", "1", "0"]
    assert [r.id[0] for r in database.runs("/a")] == ["3", "2", "0"]
    assert [r.id[0] for r in database.runs("/a", limit=2)] == ["3", "2"]


def test_a_finished_record_is_never_rewritten(database):
    database.insert(record("a1", status=RUNNING))
    database.update(record("a1").id, status=FINISHED, exit_code=3)
    database.update(record("a1").id, status=FINISHED, exit_code=0, mode="bake")
    found = database.find("a1")
    assert (found.status, found.exit_code, found.mode) == (FINISHED, 3, None)
    with pytest.raises(ValueError, match="not a run record field"):
        database.update(record("a1").id, colour="red")


def test_the_cap_keeps_the_newest_finished_records_and_every_running_one(tmp_path):
    with RunDatabase(tmp_path, keep=3) as database:
        owner = Owner(database.directory, record("e0").id)
        owner.acquire()
        try:
            database.insert(record("e0", status=RUNNING))  # the oldest, but alive
            for index in range(1, 6):
                database.insert(record(f"{index:x}", status=FINISHED, exit_code=0))
            assert [r.id[:2] for r in database.runs()] == ["50", "40", "30", "e0"]
        finally:
            owner.release()


def test_prune_removes_old_finished_records_only(database):
    database.insert(record("01", started=100.0, status=FINISHED, exit_code=0))
    database.insert(record("02", started=500.0, status=KILLED))
    database.insert(record("03", started=950.0, status=FINISHED, exit_code=0))
    owner = Owner(database.directory, record("04").id)
    owner.acquire()
    try:
        database.insert(record("04", started=10.0, status=RUNNING))
        assert database.prune(older_than=100, now=1000.0) == 2
        assert sorted(r.id[:2] for r in database.runs()) == ["03", "04"]
    finally:
        owner.release()


def test_a_running_record_whose_owner_is_gone_reads_killed(database):
    alive, dead = record("a1", status=RUNNING), record("d1", status=RUNNING)
    owner = Owner(database.directory, alive.id)
    owner.acquire()
    database.insert(alive)
    gone = Owner(database.directory, dead.id)
    gone.acquire()
    database.insert(dead)
    gone._stack.close()  # the lock is dropped as a dead process's would be; the file stays
    try:
        assert {r.id[:2]: r.status for r in database.runs()} == {"a1": RUNNING, "d1": KILLED}
        assert not lock_path(database.directory, dead.id).exists()
        assert database.find("a1").result == "still running"
    finally:
        owner.release()
    assert database.find("a1").status == KILLED  # released without finishing: gone too


def files(directory):
    return {path.name: path.read_bytes() for path in directory.iterdir() if path.is_file()}


def test_a_file_that_is_not_a_database_is_one_error_naming_it_and_is_kept(tmp_path):
    path = database_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not sqlite\n" * 100)
    before = files(path.parent)
    with RunDatabase(tmp_path) as database, pytest.raises(StoreError) as caught:
        database.runs()
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert "move it away" in str(caught.value)
    assert files(path.parent) == before


def test_a_damaged_page_is_one_error_naming_the_file_and_is_kept(tmp_path):
    with RunDatabase(tmp_path) as database:
        for index in range(300):
            database.insert(record(f"{index:04x}", command=["python", "-c", "x" * 200]))
    path = database_path(tmp_path)
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 8 * page
    data[3 * page: 6 * page] = b"\xff" * (3 * page)  # b-tree pages of the table
    path.write_bytes(bytes(data))
    before = files(path.parent)
    with RunDatabase(tmp_path) as database, pytest.raises(StoreError) as caught:
        database.runs(limit=0)
    assert str(path) in str(caught.value) and "not a readable run database" in str(caught.value)
    assert files(path.parent) == before


def test_a_newer_schema_is_an_error_and_the_file_is_kept(tmp_path):
    with RunDatabase(tmp_path) as database:
        database.insert(record("a1"))
    path = database_path(tmp_path)
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    before = files(path.parent)
    with RunDatabase(tmp_path) as database, pytest.raises(StoreError, match="newer than this"):
        database.find("a1")
    assert files(path.parent) == before


def test_another_programs_database_is_not_taken_over(tmp_path):
    path = database_path(tmp_path)
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE notes (text TEXT)")
    raw.close()
    with RunDatabase(tmp_path) as database, pytest.raises(StoreError, match="not builder's"):
        database.runs()
    with sqlite3.connect(path) as raw:
        assert [row[0] for row in raw.execute("SELECT name FROM sqlite_master")] == ["notes"]
    raw.close()


def test_a_known_secret_is_never_stored(tmp_path):
    secrets.remember(TOKEN)
    quoted = 'tok"en\\' + TOKEN
    with RunDatabase(tmp_path) as database:
        database.insert(record("a1", command=["curl", "-H", f"Authorization: {TOKEN}"],
                               error=f"failed with {TOKEN}", ci={"url": f"https://{TOKEN}@x"},
                               reasons=[quoted]))
        found = database.find("a1")
    assert TOKEN not in repr(found)
    for path in database_path(tmp_path).parent.iterdir():
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_a_field_that_does_not_parse_reads_empty_and_the_rest_of_the_list_is_intact(tmp_path):
    with RunDatabase(tmp_path) as database:
        database.insert(record("a1", status=FINISHED, command=["python", "a.py"]))
        database.insert(record("b1", status=FINISHED, command=["python", "b.py"]))
    with sqlite3.connect(database_path(tmp_path)) as raw:
        raw.execute("UPDATE runs SET command = '[\"python\", ' WHERE id LIKE 'a1%'")
    raw.close()
    with RunDatabase(tmp_path) as database:
        assert [(r.id[:2], r.command) for r in database.runs()] == [
            ("b1", ["python", "b.py"]), ("a1", [])]
