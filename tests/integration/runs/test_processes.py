"""Run records across real processes: concurrent writers lose nothing, a killed one shows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from builder.runs.database import RunDatabase
from builder.runs.owners import lock_path
from builder.runs.records import FINISHED, KILLED

WRITERS = 10
RECORDS_EACH = 20

WRITER = """
import sys
from builder.runs.recording import Recording
home, project = sys.argv[1], sys.argv[2]
sys.stdin.readline()  # every writer starts at once, on an empty home
for index in range(int(sys.argv[3])):
    recording = Recording.start(home, kind="run", target="local", path=project,
                                command=["python", str(index)])
    recording.finish(index % 3)
"""

OWNER = """
import sys
from builder.runs.recording import Recording
recording = Recording.start(sys.argv[1], kind="run", target="local", path=sys.argv[2])
print(recording.id, flush=True)
sys.stdin.readline()
"""


def python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())},
    )


def test_concurrent_writers_on_a_new_database_lose_no_record(tmp_path):
    home = tmp_path / "home"
    writers = [python(WRITER, str(home), str(tmp_path / f"p{n}"), str(RECORDS_EACH))
               for n in range(WRITERS)]
    for writer in writers:
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    with RunDatabase(home) as database:
        records = database.runs()
    assert len(records) == WRITERS * RECORDS_EACH
    assert {record.status for record in records} == {FINISHED}
    for n in range(WRITERS):
        mine = [r for r in records if r.project_path == str(tmp_path / f"p{n}")]
        assert sorted(int(r.command[1]) for r in mine) == list(range(RECORDS_EACH))
    assert list((home / "runs" / "active").iterdir()) == []


def test_a_process_killed_with_sigkill_leaves_a_record_that_says_so(tmp_path):
    home = tmp_path / "home"
    owner = python(OWNER, str(home), str(tmp_path))
    assert owner.stdout is not None
    run_id = owner.stdout.readline().strip()
    with RunDatabase(home) as database:
        assert database.find(run_id).result == "still running"
    owner.send_signal(signal.SIGKILL)
    owner.communicate(timeout=30)
    assert owner.returncode == -signal.SIGKILL
    with RunDatabase(home) as database:
        found = database.find(run_id)
    assert found.status == KILLED and found.result == "killed" and found.exit_code is None
    assert not lock_path(home / "runs", run_id).exists()
