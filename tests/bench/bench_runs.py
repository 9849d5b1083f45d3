"""Scenario g: run records. `builder runs list` on 10,000 recorded runs, under 0.3 s.

A home holds 10,000 records written through builder's own recording path (`RunDatabase.insert`,
a transaction each, with the cap at its default), made like real ones: runs and builds on a
dozen projects, reuse and bake, dirty files, reasons, CI links. builder's side is the command
as a user types it, `builder runs list` (the newest 20), a new process each time. The other
side is the same command on a home with a single record: the floor of starting the CLI and
opening the database, so the ratio shows what 10,000 records add. The notes give the
database's size and the time of `runs list --limit 0 --json` (all 10,000 as JSON).

    python -m tests.bench.bench_runs [--reps 5]
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tests.bench.context import BUILDER_COMMAND, BenchContext, BenchError, sh
from tests.bench.harness import Goal, Result, Side, interleave, progress

RECORDS = 10_000
GOAL = Goal("within", 0.3)
SEED = 17


def seed_home(home: Path, count: int) -> float:
    """Write `count` realistic records into `home`; return the seconds it took."""
    from builder.runs.database import RunDatabase
    from builder.runs.records import FINISHED, RunRecord

    rng = random.Random(SEED)
    now = time.time()
    started = time.perf_counter()
    with RunDatabase(home) as database:
        for index in range(count):
            project = f"service-{index % 12}"
            bake = rng.random() < 0.4
            dirty = [f"src/module_{rng.randrange(200)}.py" for _ in range(rng.randrange(1, 6))]
            at = now - (count - index) * 60.0
            database.insert(RunRecord(
                id=f"{rng.getrandbits(128):032x}", kind="build" if index % 5 == 0 else "run",
                target=None if index % 5 == 0 else "local", status=FINISHED,
                started_at=at, ended_at=at + rng.uniform(1, 90), exit_code=rng.choice([0, 0, 1]),
                project_path=f"/home/dev/{project}", project_name=project,
                command=["python", "-m", project.replace("-", "_"), "--epochs", "3"],
                mode="bake" if bake else "reuse",
                reasons=[f"{len(dirty)} files differ from commit {index:012x}"] if bake else [],
                code_repository="app", commit=f"{rng.getrandbits(160):040x}",
                repository_spec={"type": "github", "name": "app",
                                 "config": {"owner": "team", "repository": project}},
                dirty_files=dirty if bake else [], content_hash="ab" * 32 if bake else None,
                checksum="cd" * 32, base_image=f"{project}:base-cdcdcdcdcdcdcdcd",
                image=f"{project}:code-{index:016x}", image_id=f"sha256:{index:064x}",
                image_digest=f"sha256:{index + 1:064x}", code_dir="/app/code",
                builder_version="0.1.0+0123456789abcdef01234567",
                ci={"system": "github", "run_id": str(9_000_000 + index),
                    "url": f"https://github.com/team/{project}/actions/runs/{9_000_000 + index}"},
                pid=10_000 + index, host="dev-laptop",
            ))
    return time.perf_counter() - started


def runs_list_scenario(ctx: BenchContext) -> Result:
    many, one = ctx.root / "runs-home-many", ctx.root / "runs-home-one"
    progress(f"bench g: writing {RECORDS:,} run records")
    seconds = seed_home(many, RECORDS)
    seed_home(one, 1)
    database = many / "runs" / "runs.db"
    progress(f"bench g: {RECORDS:,} records written in {seconds:.1f} s "
             f"({seconds / RECORDS * 1000:.2f} ms each)")

    def runs_list(home: Path) -> subprocess.CompletedProcess[str]:
        return sh([str(BUILDER_COMMAND), "runs", "list"],
                  env={**ctx.env, "BUILDER_HOME": str(home)})

    def check(done: subprocess.CompletedProcess[str]) -> None:
        if len(done.stdout.splitlines()) != 21:
            raise BenchError(f"builder runs list printed {done.stdout!r}")

    ours, theirs = interleave(
        Side(f"runs list, {RECORDS:,} records", lambda: runs_list(many), after=check),
        Side("runs list, 1 record", lambda: runs_list(one)),
        ctx.reps,
        ctx.warmup,
    )
    everything = []
    for _ in range(3):
        begun = time.perf_counter()
        done = sh([str(BUILDER_COMMAND), "runs", "list", "--limit", "0", "--json"],
                  env={**ctx.env, "BUILDER_HOME": str(many)})
        everything.append(time.perf_counter() - begun)
        if len(json.loads(done.stdout)) != RECORDS:
            raise BenchError("runs list --limit 0 did not list every record")
    size = database.stat().st_size / 1e6
    return Result(
        "g", "list run records", f"{RECORDS:,} records", ours, theirs, GOAL,
        notes=[f"{size:.1f} MB database", f"all {RECORDS:,} as JSON: "
               f"{statistics.median(everything):.2f} s"],
        kind="within",
    )


def run(ctx: BenchContext, sizes: Sequence[str]) -> list[Result]:
    return [runs_list_scenario(ctx)]


if __name__ == "__main__":
    from tests.bench.context import standalone

    sys.exit(standalone(run, __doc__ or "", ["small"]))
