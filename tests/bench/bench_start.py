"""Scenario e: container start. The entrypoint's overhead over a plain `docker run`.

Both sides are `docker run --rm --network host` of the same image (the project's base image)
with the same command, `true`. builder's side goes through the image's entrypoint with the
container contract of a reuse run (commit, repository, token file, cache volume), as
`builder run` starts it; the plain side bypasses the entrypoint (`--entrypoint true`).

- warm: the commit is already in the cache volume; the entrypoint copies it into the code
  dir and execs the command.
- cold: a fresh cache volume for every run, so the entrypoint downloads the commit (by
  default the medium project: 1,000 files, 10 MB) from the loopback GitHub server first.

The result is the difference of the medians, in seconds.

    python -m tests.bench.bench_start [--sizes medium] [--reps 5]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from builder.state.settings import DEFAULT_CODE_DIR
from tests.bench.context import BenchContext, BenchError, Project
from tests.bench.harness import DASH, Goal, Result, Side, interleave, progress

WARM_GOAL = Goal("overhead", 0.15)
COLD_GOAL = Goal("overhead", 0.5)
CACHE_MOUNT = "/var/cache/builder"
TOKEN_MOUNT = "/run/secrets/builder-token"


def _contract(ctx: BenchContext, project: Project) -> tuple[str, list[str]]:
    """The base image and the `docker run` options of a reuse run at the project's HEAD."""
    info = ctx.build_json(project)
    if info["mode"] != "reuse":
        raise BenchError(f"the {project.name} project does not reuse: {info['reasons']}")
    return str(info["image"]), contract_options(ctx, project, info["commit"],
                                                info["subdirectory"])


def contract_options(ctx: BenchContext, project: Project, commit: str,
                     subdirectory: str = "") -> list[str]:
    """`docker run` options of a reuse run at `commit`, as `builder run` starts it (the
    github type; the cache volume is the caller's)."""
    from builder.repositories.types import public_spec
    from builder.state.store import Store

    record = Store(ctx.home).get_repository(project.repository)
    assert record is not None
    token = ctx.root / "token"
    token.write_text(ctx.server.token)
    token.chmod(0o600)
    return [
        "-e",
        f"BUILDER_COMMIT={commit}",
        "-e",
        f"BUILDER_SUBDIRECTORY={subdirectory}",
        "-e",
        f"BUILDER_CODE_REPOSITORY={json.dumps(public_spec(record), sort_keys=True)}",
        "-e",
        f"BUILDER_CACHE_DIR={CACHE_MOUNT}",
        "-e",
        f"BUILDER_TOKEN_FILE={TOKEN_MOUNT}",
        "-v",
        f"{token}:{TOKEN_MOUNT}:ro",
        # as `builder run` starts it: the code dir is a tmpfs in reuse mode
        "--tmpfs",
        f"{DEFAULT_CODE_DIR}:exec,mode=755",
    ]


def start_scenarios(ctx: BenchContext, size: str) -> list[Result]:
    project = ctx.project(size)
    image, options = _contract(ctx, project)
    run = ["run", "--rm", "--network", "host"]
    goals = size == "medium"  # the goals are stated for 1,000 files

    def plain() -> None:
        ctx.docker(*run, "--entrypoint", "true", image)

    def requests(_: object) -> dict[str, float]:
        return {"requests": float(ctx.server.request_count)}

    results = []
    progress(f"bench e: warm container start, {project.describe()}")
    with ctx.volume() as volume:

        def warm() -> None:
            ctx.docker(*run, *options, "-v", f"{volume}:{CACHE_MOUNT}", image, "true")

        ours, theirs = interleave(
            Side("entrypoint, warm", warm, ctx.server.reset_counts, requests),
            Side("plain docker run", plain),
            ctx.reps,
            ctx.warmup,
        )
        results.append(
            Result(
                "e",
                "container start, commit cached (warm)",
                project.describe(),
                ours,
                theirs,
                WARM_GOAL if goals else None,
                _requests(ours.metrics["requests"]),
                kind="overhead",
            )
        )
        if max(ours.metrics["requests"]) > 0:
            raise BenchError("a warm start asked the server: the cache did not answer")

    progress(f"bench e: cold container start, {project.describe()}")
    fresh: list[str] = []

    def new_volume() -> None:
        ctx.server.reset_counts()
        fresh.append(ctx.docker("volume", "create").stdout.strip())
        ctx.volumes.add(fresh[-1])

    def cold() -> None:
        ctx.docker(*run, *options, "-v", f"{fresh[-1]}:{CACHE_MOUNT}", image, "true")

    def drop_volume(_: object) -> dict[str, float]:
        metrics = requests(None)
        ctx.docker("volume", "rm", "-f", fresh[-1], check=False)
        ctx.volumes.discard(fresh[-1])
        return metrics

    ours, theirs = interleave(
        Side("entrypoint, cold", cold, new_volume, drop_volume),
        Side("plain docker run", plain),
        ctx.reps,
        ctx.warmup,
    )
    results.append(
        Result(
            "e",
            "container start, download (cold)",
            project.describe(),
            ours,
            theirs,
            COLD_GOAL if goals else None,
            _requests(ours.metrics["requests"]),
            kind="overhead",
        )
    )
    if min(ours.metrics["requests"]) < 1:
        raise BenchError("a cold start did not download: a cache answered")
    return results


def _requests(values: list[float]) -> list[str]:
    low, high = int(min(values)), int(max(values))
    return [f"{low if low == high else f'{low}{DASH}{high}'} requests to the server"]


def run(ctx: BenchContext, sizes: Sequence[str]) -> list[Result]:
    return [result for size in sizes for result in start_scenarios(ctx, size)]


if __name__ == "__main__":
    from tests.bench.context import standalone

    sys.exit(standalone(run, __doc__ or "", ["medium"]))
