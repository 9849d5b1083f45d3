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

Scenario h: the project's install at start (README "Project formats"). Both sides are the
warm start above; builder's writes the project's install (dist-info, import roots, script
wrappers) after the copy, as every reuse-mode start does; the other side is told not to
(`BUILDER_PROJECT_DIR=`). The note gives the install's own time inside the container
(median of 200 writes, in the image's Python).

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
PROJECT_GOAL = Goal("overhead", 0.05)
# The install's own time, in the image: read what the cache remembers, write the install.
_TIMING = """
import glob, json, statistics, time
from builder.project import install
entry = glob.glob("{cache}/*.project.json")[0][: -len(".project.json")]
times = []
for _ in range(200):
    started = time.perf_counter()
    known, project = install.read_sidecar(entry)
    install.write(project, "{code}", "/tmp/bench-project")
    times.append(time.perf_counter() - started)
print(json.dumps({{"median": statistics.median(times), "name": project["name"]}}))
"""
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


def project_scenario(ctx: BenchContext, size: str) -> list[Result]:
    project = ctx.project(size)
    image, options = _contract(ctx, project)
    run = ["run", "--rm", "--network", "host"]
    progress(f"bench h: project install at a warm container start, {project.describe()}")
    with ctx.volume() as volume:
        cache = ["-v", f"{volume}:{CACHE_MOUNT}"]

        def installed() -> None:
            ctx.docker(*run, *options, *cache, image, "true")

        def not_installed() -> None:
            ctx.docker(*run, *options, *cache, "-e", "BUILDER_PROJECT_DIR=", image, "true")

        ours, theirs = interleave(Side("entrypoint + project install", installed),
                                  Side("entrypoint, no project install", not_installed),
                                  ctx.reps, ctx.warmup)
        timing = ctx.docker(*run, *cache, "--entrypoint", "/opt/builder/bin/python", image,
                            "-c", _TIMING.format(cache=CACHE_MOUNT, code=DEFAULT_CODE_DIR))
    measured = json.loads(timing.stdout.strip().splitlines()[-1])
    note = (f"install of {measured['name']} in the container: "
            f"{measured['median'] * 1000:.1f} ms (median of 200)")
    return [Result("h", "project install at container start (warm)", project.describe(), ours,
                   theirs, PROJECT_GOAL if size == "medium" else None, [note], kind="overhead")]


def run_project(ctx: BenchContext, sizes: Sequence[str]) -> list[Result]:
    return [result for size in sizes for result in project_scenario(ctx, size)]


def _requests(values: list[float]) -> list[str]:
    low, high = int(min(values)), int(max(values))
    return [f"{low if low == high else f'{low}{DASH}{high}'} requests to the server"]


def run(ctx: BenchContext, sizes: Sequence[str]) -> list[Result]:
    return [result for size in sizes for result in start_scenarios(ctx, size)]


if __name__ == "__main__":
    from tests.bench.context import standalone

    sys.exit(standalone(run, __doc__ or "", ["medium"]))
