"""Scenarios a and b: one iteration of the edit-run loop, until the new code's output appears.

a. After a pushed one-line change: `builder run --push --network host` (reuse: nothing is
   built or pushed; the container downloads the commit) against the conventional loop:
   `docker build` of the conventional Dockerfile (FROM parent, COPY requirements, pip install,
   COPY . .; every layer but the last cached), `docker push` to the local registry, and
   `docker run` with the same network.
b. After an uncommitted one-line change: `builder run --push --network host` (bake: a thin
   code layer on the cached base image, pushed) against the same conventional loop.

Both sides push, so that either leaves the image in the registry for a remote run; the bytes
each push adds to the registry's storage are reported. Each run gets a change of its own, so
neither Docker's layer cache nor builder's download cache can answer for it.

On the WAN profile the image runs as on a cluster node, which has the parent's (and builder's
base image's) layers from earlier runs but not this iteration's: the conventional run pulls
its image back, and so does builder's bake (after its own run, which only adds to its time);
builder's reuse run needs no image it does not have, and downloads the change instead.

    python -m tests.bench.bench_iterate [--sizes small,medium,large] [--reps 5]
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Sequence

from tests.bench.context import CONVENTIONAL, IMAGE_NAME, BenchContext, BenchError, Project
from tests.bench.harness import Goal, Result, Side, fmt_bytes, interleave, progress

PUSHED_GOAL = Goal("faster", 5, "0 bytes pushed")
WAN_GOAL = Goal("faster", 5)  # uncommitted changes on the WAN, medium and large
_BAKED = re.compile(r"^builder: bake: (\S+) ", re.MULTILINE)


def _sides(
    ctx: BenchContext, project: Project, prepare: Callable[[str], object], mode: str
) -> tuple[Side, Side]:
    state: dict[str, object] = {}

    def before(what: str) -> Callable[[], None]:
        def step() -> None:
            marker = ctx.marker(what)
            prepare(marker)
            state["marker"] = marker
            state["snapshot"] = ctx.registry.snapshot() if ctx.registry.available else {}

        return step

    def check(output: str, who: str) -> None:
        if str(state["marker"]) not in output:
            raise BenchError(
                f"{who} did not print the new code's output ({state['marker']}): {output[-500:]!r}"
            )

    def pushed(repository: str) -> dict[str, float]:
        if not ctx.registry.available:
            return {}
        snapshot = state["snapshot"]
        assert isinstance(snapshot, dict)
        return {"pushed": float(ctx.registry.pushed(snapshot, repository))}

    def builder_run() -> subprocess.CompletedProcess[str]:
        done = ctx.builder("run", str(project.path), "--push", "--network", "host")
        baked = _BAKED.search(done.stderr)
        if baked:
            ctx.node_pull(baked.group(1))
        return done

    def builder_after(done: subprocess.CompletedProcess[str]) -> dict[str, float]:
        check(done.stdout, "builder run")
        if f"builder: {mode}:" not in done.stderr:
            raise BenchError(f"builder run did not {mode}: {done.stderr[-1500:]}")
        return pushed(IMAGE_NAME)

    def conventional_after(output: str) -> dict[str, float]:
        check(output, "docker run")
        return pushed(CONVENTIONAL.split("/", 1)[1])

    return (
        Side("builder run", builder_run, before("builder"), builder_after),
        Side(
            "docker build+push+run",
            lambda: ctx.conventional_iteration(project),
            before("docker"),
            conventional_after,
        ),
    )


def _notes(ours_pushed: float | None, theirs_pushed: float | None) -> list[str]:
    if ours_pushed is None or theirs_pushed is None:
        return ["registry storage not readable: bytes pushed not measured"]
    return [f"pushed {fmt_bytes(ours_pushed)} vs {fmt_bytes(theirs_pushed)}"]


def pushed_change(ctx: BenchContext, size: str) -> Result:
    """Scenario a on one project."""
    project = ctx.project(size)
    progress(f"bench a: pushed one-line change, {project.describe()}")
    a, b = _sides(ctx, project, project.commit_and_push, "reuse")
    ours, theirs = interleave(a, b, ctx.reps, ctx.warmup)
    result = Result(
        "a",
        "pushed one-line change → output",
        project.describe(),
        ours,
        theirs,
        _goal(ctx, size, PUSHED_GOAL if size == "large" else None, PUSHED_GOAL),
        _notes(ours.metric("pushed"), theirs.metric("pushed")),
    )
    result.extra_ok = max(ours.metrics.get("pushed", [1.0])) == 0
    return result


def uncommitted_change(ctx: BenchContext, size: str) -> Result:
    """Scenario b on one project; the project is clean again afterwards."""
    project = ctx.project(size)
    progress(f"bench b: uncommitted one-line change, {project.describe()}")
    a, b = _sides(ctx, project, project.change, "bake")
    try:
        ours, theirs = interleave(a, b, ctx.reps, ctx.warmup)
    finally:
        project.git("checkout", "--", "main.py")
    return Result(
        "b",
        "uncommitted one-line change → output",
        project.describe(),
        ours,
        theirs,
        _goal(ctx, size, None, WAN_GOAL),
        _notes(ours.metric("pushed"), theirs.metric("pushed")),
    )


def _goal(ctx: BenchContext, size: str, loopback: Goal | None, wan: Goal) -> Goal | None:
    """The WAN profile states its goals (5x) for medium and large projects, either change."""
    if ctx.wan is None:
        return loopback
    return wan if size in ("medium", "large") else None


def run_pushed(ctx: BenchContext, sizes: Sequence[str]) -> list[Result]:
    return [pushed_change(ctx, size) for size in sizes]


def run_uncommitted(ctx: BenchContext, sizes: Sequence[str]) -> list[Result]:
    return [uncommitted_change(ctx, size) for size in sizes]


def run(ctx: BenchContext, sizes: Sequence[str]) -> list[Result]:
    return run_pushed(ctx, sizes) + run_uncommitted(ctx, sizes)


if __name__ == "__main__":
    from tests.bench.context import standalone

    sys.exit(standalone(run, __doc__ or "", ["small", "medium", "large"]))
