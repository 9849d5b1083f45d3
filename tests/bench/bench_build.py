"""Scenario f: a no-op build. `builder build --json` against `docker build`, all cached.

The project is clean and pushed, and its base image is in the local engine: builder decides
reuse and builds nothing. The conventional side is `docker build` of the conventional
Dockerfile (FROM parent, COPY requirements, pip install, COPY . .) with every layer cached:
it still sends the whole build context to the engine and checks every layer. Both sides run
as a user runs them (the `builder` CLI and the `docker` CLI, classic builder); by default on
the large project (5,000 files, 50 MB).

    python -m tests.bench.bench_build [--sizes large] [--reps 5]
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

from tests.bench.context import BenchContext, BenchError
from tests.bench.harness import Goal, Result, Side, interleave, progress

GOAL = Goal("faster", 3)


def noop_build(ctx: BenchContext, size: str) -> Result:
    project = ctx.project(size)
    progress(f"bench f: no-op build, {project.describe()}")
    built: list[list[str]] = []
    images: list[str] = []

    def builder_build() -> subprocess.CompletedProcess[str]:
        return ctx.builder("build", str(project.path), "--json")

    def check(done: subprocess.CompletedProcess[str]) -> None:
        info = json.loads(done.stdout)
        if info["mode"] != "reuse":
            raise BenchError(f"builder build did not reuse: {info['reasons']}")
        built.append(info["built"])
        ctx.bases.add(info["base_image"])

    ours, theirs = interleave(
        Side("builder build", builder_build, after=check),
        Side("docker build (cached)", lambda: ctx.docker_build(project), after=images.append),
        ctx.reps,
        ctx.warmup,
    )
    # The warm-up may build: the base image, the last layer after an earlier change.
    if any(built[ctx.warmup :]):
        raise BenchError(f"a no-op builder build built {built[ctx.warmup :]}")
    if len(set(images[ctx.warmup :])) > 1:
        raise BenchError("a docker build with every layer cached made a new image")
    return Result(
        "f", "no-op build", project.describe(), ours, theirs, GOAL if size == "large" else None
    )


def run(ctx: BenchContext, sizes: Sequence[str]) -> list[Result]:
    return [noop_build(ctx, size) for size in sizes]


if __name__ == "__main__":
    from tests.bench.context import standalone

    sys.exit(standalone(run, __doc__ or "", ["large"]))
