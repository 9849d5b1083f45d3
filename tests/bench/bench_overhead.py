"""Scenario j: builder's own time on the reuse path, over its floor.

After a pushed one-line change, `builder run --network host` (reuse: the container brings
its cached tree to the new commit, fetching the changed file) against its floor:
`docker run` of the same image with the same container, the contract of that commit, the
same cache volume and the tmpfs code dir, so that the container does the same update. The
difference of the medians is what builder itself costs: starting Python, its imports, git's
questions, its requests to the engine. (Scenario a runs with `--push`: there builder also
asks the registry whether it has the base image, while the container runs.)

    python -m tests.bench.bench_overhead [--sizes small] [--reps 5]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from builder.targets.local import CACHE_MOUNT, CACHE_VOLUME
from tests.bench.bench_start import contract_options
from tests.bench.context import BenchContext, BenchError
from tests.bench.harness import Goal, Result, Side, interleave, progress

GOAL = Goal("overhead", 0.25)


def overhead(ctx: BenchContext, size: str) -> Result:
    project = ctx.project(size)
    progress(f"bench j: builder's own time on the reuse path, {project.describe()}")
    info = ctx.build_json(project)
    if info["mode"] != "reuse":
        raise BenchError(f"the {project.name} project does not reuse: {info['reasons']}")
    image = str(info["image"])
    markers: list[str] = []

    def change() -> None:
        markers.append(ctx.marker("overhead"))
        project.commit_and_push(markers[-1])

    def builder_run() -> str:
        done = ctx.builder("run", str(project.path), "--network", "host")
        if "builder: reuse:" not in done.stderr:
            raise BenchError(f"builder run did not reuse: {done.stderr[-1500:]}")
        return done.stdout

    def floor() -> str:
        options = contract_options(ctx, project, project.head())
        return ctx.docker("run", "--rm", "--network", "host", *options, "-v",
                          f"{CACHE_VOLUME}:{CACHE_MOUNT}", image, "python", "main.py").stdout

    def check(output: str) -> None:
        if markers[-1] not in output:
            raise BenchError(f"the new code did not run: {output[-500:]!r}")

    ours, theirs = interleave(
        Side("builder run", builder_run, change, check),
        Side("docker run, same container", floor, change, check),
        ctx.reps,
        ctx.warmup,
    )
    return Result("j", "builder's own time, pushed change (reuse)", project.describe(), ours,
                  theirs, GOAL, kind="overhead")


def run(ctx: BenchContext, sizes: Sequence[str]) -> list[Result]:
    return [overhead(ctx, size) for size in sizes]


if __name__ == "__main__":
    from tests.bench.context import standalone

    sys.exit(standalone(run, __doc__ or "", ["small"]))
