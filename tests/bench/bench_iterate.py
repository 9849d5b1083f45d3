"""Scenarios a and b: one iteration of the edit-run loop, until the new code's output appears.

a. After a pushed one-line change: `builder run --push --network host` (reuse: nothing is
   built or pushed; the container brings its cached tree to the new commit) against the
   conventional loop: `docker build` of the conventional Dockerfile (FROM parent, COPY
   requirements, pip install, COPY . .; every layer but the last cached), `docker push` to
   the local registry, and `docker run` with the same network.
b. After an uncommitted one-line change: `builder run --push --network host` (bake: a small
   layer of what differs on the commit's tree image, pushed) against the same loop.

Each runs with the project registered as a GitHub repository (the API) and as a plain git
repository (the git protocol), in one interleaved loop of three sides: builder with github,
builder with git, the conventional loop. Both builder rows compare with that one
conventional series. Every side pushes, so that each leaves the image in the registry for a
remote run; the bytes each push adds to the registry's storage are reported. Each run gets a
change of its own, so neither Docker's layer cache nor builder's caches can answer for it.

    python -m tests.bench.bench_iterate [--sizes small,medium,large] [--reps 5]
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence

from tests.bench import fixtures
from tests.bench.context import (
    CONVENTIONAL,
    IMAGE_NAME,
    TYPES,
    BenchContext,
    BenchError,
    Project,
)
from tests.bench.harness import Goal, Result, Series, Side, fmt_bytes, interleave_all, progress

SLACK = 64_000  # bytes an uncommitted iteration may push beyond the changed files


def goal(scenario: str, size: str) -> Goal:
    """The issue's goals: faster in every cell; 2x at medium and large; 5x for large pushed
    changes and 3x for large uncommitted ones; bytes pushed: none for a pushed change, at most
    the changed files plus 64 kB for an uncommitted one."""
    extra = "0 bytes pushed" if scenario == "a" else "≤ changed files + 64 kB pushed"
    factor = {"small": 1.0, "medium": 2.0}.get(size, 5.0 if scenario == "a" else 3.0)
    return Goal("faster", factor, extra)


def _sides(ctx: BenchContext, project: Project, prepare: Callable[[str], object],
           mode: str) -> list[Side]:
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

    def builder_side(kind: str) -> Side:
        def run() -> subprocess.CompletedProcess[str]:
            return ctx.builder("run", str(project.path), "--push", "--network", "host",
                               kind=kind)

        def after(done: subprocess.CompletedProcess[str]) -> dict[str, float]:
            check(done.stdout, f"builder run ({kind})")
            if f"builder: {mode}:" not in done.stderr:
                raise BenchError(f"builder run ({kind}) did not {mode}: {done.stderr[-1500:]}")
            return pushed(IMAGE_NAME)

        return Side(f"builder run ({kind})", run, before(f"builder-{kind}"), after)

    def conventional_after(output: str) -> dict[str, float]:
        check(output, "docker run")
        return pushed(CONVENTIONAL.split("/", 1)[1])

    return [
        *(builder_side(kind) for kind in TYPES),
        Side(
            "docker build+push+run",
            lambda: ctx.conventional_iteration(project),
            before("docker"),
            conventional_after,
        ),
    ]


def _results(key: str, title: str, project: Project, size: str, series: list[Series],
             changed_bytes: int) -> list[Result]:
    *ours, theirs = series
    results = []
    for kind, mine in zip(TYPES, ours, strict=True):
        pushed = mine.metric("pushed")
        notes = (["registry storage not readable: bytes pushed not measured"]
                 if pushed is None or theirs.metric("pushed") is None
                 else [f"pushed {fmt_bytes(pushed)} vs {fmt_bytes(theirs.metric('pushed') or 0)}"])
        result = Result(key, f"{title} ({kind})", project.describe(), mine, theirs,
                        goal(key, size), notes)
        most = max(mine.metrics.get("pushed", [0.0]))
        result.extra_ok = most == 0 if key == "a" else most <= changed_bytes + SLACK
        results.append(result)
    return results


def _ready(ctx: BenchContext, project: Project) -> None:
    """Each type's base image exists (built once, kept), and the project is clean."""
    for kind in TYPES:
        info = ctx.build_json(project, kind)
        if info["mode"] != "reuse":
            raise BenchError(f"the {project.name} project does not reuse ({kind}): "
                             f"{info['reasons']}")


def pushed_change(ctx: BenchContext, size: str) -> list[Result]:
    """Scenario a on one project, both types."""
    project = ctx.project(size)
    progress(f"bench a: pushed one-line change, {project.describe()}")
    _ready(ctx, project)
    series = interleave_all(_sides(ctx, project, project.commit_and_push, "reuse"), ctx.reps,
                            ctx.warmup)
    return _results("a", "pushed one-line change → output", project, size, series, 0)


def uncommitted_change(ctx: BenchContext, size: str) -> list[Result]:
    """Scenario b on one project, both types; the project is clean again afterwards."""
    project = ctx.project(size)
    progress(f"bench b: uncommitted one-line change, {project.describe()}")
    _ready(ctx, project)
    try:
        series = interleave_all(_sides(ctx, project, project.change, "bake"), ctx.reps,
                                ctx.warmup)
    finally:
        project.git("checkout", "--", "main.py")
    changed = len(fixtures.MAIN.format(marker="x" * 64))  # main.py, with a marker at most this long
    return _results("b", "uncommitted one-line change → output", project, size, series,
                    changed)


def run_pushed(ctx: BenchContext, sizes: Sequence[str]) -> list[Result]:
    return [result for size in sizes for result in pushed_change(ctx, size)]


def run_uncommitted(ctx: BenchContext, sizes: Sequence[str]) -> list[Result]:
    return [result for size in sizes for result in uncommitted_change(ctx, size)]


def run(ctx: BenchContext, sizes: Sequence[str]) -> list[Result]:
    return run_pushed(ctx, sizes) + run_uncommitted(ctx, sizes)


if __name__ == "__main__":
    from tests.bench.context import standalone

    sys.exit(standalone(run, __doc__ or "", ["small", "medium", "large"]))
