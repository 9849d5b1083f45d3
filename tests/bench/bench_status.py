"""Scenario d: the decision. `builder status --json` against its floor.

builder decides by asking git two questions: is any file that would ship different from the
commit, and does the remote have the commit. The floor is what those questions cost with git
alone: `git status --porcelain` then `git ls-remote origin`, two processes one after the
other, on the same clean and pushed project (by default the large one, 5,000 files, and the
xlarge one, 10,000 files: the goal is stated for 10,000).
builder's side is the whole command as a user runs it: a new Python process, settings, the
store, git, and the JSON out.

    python -m tests.bench.bench_status [--sizes large,xlarge] [--reps 5]
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

from tests.bench.context import BenchContext, BenchError, sh
from tests.bench.harness import Goal, Result, Side, interleave, progress

GOAL = Goal("at_most", 2)


def status_scenario(ctx: BenchContext, size: str) -> Result:
    project = ctx.project(size)
    progress(f"bench d: decision, {project.describe()}")
    if project.git("status", "--porcelain"):
        raise BenchError(f"the {size} project is not clean")

    def builder_status() -> subprocess.CompletedProcess[str]:
        return ctx.builder("status", str(project.path), "--json")

    def check(done: subprocess.CompletedProcess[str]) -> None:
        info = json.loads(done.stdout)
        if info["mode"] != "reuse":
            raise BenchError(f"builder status did not decide reuse: {info['reasons']}")

    def floor() -> None:
        sh(["git", "status", "--porcelain"], cwd=project.path, env=project.env)
        sh(["git", "ls-remote", "origin"], cwd=project.path, env=project.env)

    ours, theirs = interleave(
        Side("builder status", builder_status, after=lambda done: check(done)),
        Side("git status + ls-remote", floor),
        ctx.reps,
        ctx.warmup,
    )
    return Result(
        "d",
        "decision (clean, pushed)",
        project.describe(),
        ours,
        theirs,
        GOAL if size == "xlarge" else None,
        kind="at_most",
    )


def run(ctx: BenchContext, sizes: Sequence[str]) -> list[Result]:
    return [status_scenario(ctx, size) for size in sizes]


if __name__ == "__main__":
    from tests.bench.context import standalone

    sys.exit(standalone(run, __doc__ or "", ["large", "xlarge"]))
