"""Scenario e, continued: the cold start against its floor, and many containers at once.

Cold start against its floor (medium and large: 1,000 and 5,000 files). builder's side is its
whole cold start as the container runs it, here on the host: a new `builder entrypoint --
true` process with the contract of a reuse run and an empty cache, which downloads the
commit's archive from the (loopback) GitHub server into the cache, puts the tree in the code
dir and execs `true`. The floor is `curl -L <the same archive URL> | tar -xz` into a new
directory on the same file system as builder's cache (ext4 here, as Docker's volumes). The
code dir is on tmpfs, as the one `builder run` mounts. Each run's peak memory (RSS) is
reported: the download streams, so it does not grow with the archive.

Fan-out (medium): 8 containers start the same commit at once on one node. With one shared
cache volume (the node-level cache: Swarm's named volume, the Job's opt-in `hostPath`) they
make one download and all start; against 8 containers with a cache each (a Job's `emptyDir`),
which make 8. The server's archive requests are counted.

    python -m tests.bench.bench_cold [--sizes medium,large] [--reps 5]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from tests.bench.bench_start import CACHE_MOUNT, _contract
from tests.bench.context import BUILDER_COMMAND, OWNER, BenchContext, BenchError, Project
from tests.bench.harness import DASH, Goal, Result, Side, fmt_bytes, interleave, progress
from tests.infra.rss import peak_rss

FLOOR_GOAL = Goal("at_most", 1.3)
FAN_OUT = 8
FAN_OUT_GOAL = Goal("faster", 1, "1 download")
ARCHIVES = r"/legacy\.tar\.gz/"  # codeload's archive requests (not the API's redirects)


def _tmpfs() -> Path:
    """A directory on tmpfs for the code dirs, as `builder run` mounts one."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="builder-bench-code-", dir=shm))
    raise BenchError("no writable /dev/shm (tmpfs) for the code dirs")


def _measured(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run a command; its peak RSS in bytes (tests/infra/rss.py) and its stderr."""
    rss, code, err = peak_rss(command, env)
    if code != 0:
        raise BenchError(f"`{' '.join(command[:3])}` failed ({code}): {err[-2000:]}")
    return rss, err


def floor_scenario(ctx: BenchContext, size: str) -> Result:
    project = ctx.project(size)
    progress(f"bench e: cold start against curl | tar, {project.describe()}")
    commit = project.head()
    spec, token = _spec_and_token(ctx, project)
    url = f"{_api_url(ctx, project)}/repos/{OWNER}/{project.name}/tarball/{commit}"
    header = ctx.root / "floor-header"
    header.write_text(f"Authorization: token {ctx.server.token}\n")  # not in curl's argv
    header.chmod(0o600)
    disk = Path(tempfile.mkdtemp(prefix="cold-", dir=ctx.root))
    memory = _tmpfs()
    runs = iter(range(1_000_000))
    state: dict[str, Path] = {}

    def before() -> None:
        index = next(runs)
        state["cache"], state["code"] = disk / f"cache-{index}", memory / f"code-{index}"
        state["floor"] = disk / f"floor-{index}"
        for path in state.values():
            path.mkdir()
        ctx.server.reset_counts()

    def ours() -> tuple[int, str]:
        env = {
            **ctx.env,
            "BUILDER_COMMIT": commit,
            "BUILDER_SUBDIRECTORY": "",
            "BUILDER_CODE_REPOSITORY": _json(spec),
            "BUILDER_CACHE_DIR": str(state["cache"]),
            "BUILDER_CODE_DIR": str(state["code"]),
            "BUILDER_TOKEN_FILE": str(token),
        }
        return _measured([str(BUILDER_COMMAND), "entrypoint", "--", "true"], env)

    def floor() -> None:
        pipeline = (f"set -o pipefail; curl -sSfL -H @{header} '{url}' "
                    f"| tar -xz --strip-components=1 -C {state['floor']}")
        subprocess.run(["bash", "-c", pipeline], check=True, timeout=600)

    counts: dict[str, int] = {}

    def ours_after(done: tuple[int, str]) -> dict[str, float]:
        files = _count(state["code"])
        counts["ours"] = files
        _clear(state)
        return {"rss": float(done[0]), "archives": float(ctx.server.count(ARCHIVES)),
                "files": float(files)}

    def floor_after(_: object) -> dict[str, float]:
        files = _count(state["floor"])
        if counts.get("ours") not in (None, files):
            raise BenchError(f"builder's code dir has {counts['ours']} files, the floor's {files}")
        _clear(state)
        return {"archives": float(ctx.server.count(ARCHIVES)), "files": float(files)}

    try:
        ours_series, floor_series = interleave(
            Side("builder entrypoint, cold", ours, before, ours_after),
            Side("curl -L, piped to tar -xz", floor, before, floor_after),
            ctx.reps,
            ctx.warmup,
        )
    finally:
        shutil.rmtree(disk, ignore_errors=True)
        shutil.rmtree(memory, ignore_errors=True)
    rss = ours_series.metrics["rss"]
    result = Result(
        "e",
        "cold start against its floor",
        project.describe(),
        ours_series,
        floor_series,
        FLOOR_GOAL if size in ("medium", "large") else None,
        [f"peak RSS {fmt_bytes(min(rss))}{DASH}{fmt_bytes(max(rss))}",
         f"{int(max(ours_series.metrics['archives']))} archive request(s) each"],
        kind="at_most",
    )
    return result


def fan_out_scenario(ctx: BenchContext, size: str) -> Result:
    """8 containers at once, one shared cache volume against one volume each."""
    project = ctx.project(size)
    progress(f"bench e: fan-out of {FAN_OUT} containers, {project.describe()}")
    image, options = _contract(ctx, project)
    volumes: list[str] = []

    def fresh(count: int) -> None:
        ctx.server.reset_counts()
        for _ in range(count):
            volumes.append(ctx.docker("volume", "create").stdout.strip())
            ctx.volumes.add(volumes[-1])

    def start_all(shared: bool) -> None:
        failures: list[str] = []

        def one(index: int) -> None:
            volume = volumes[0] if shared else volumes[index]
            done = ctx.docker("run", "--rm", "--network", "host", *options, "-v",
                              f"{volume}:{CACHE_MOUNT}", image, "true", check=False)
            if done.returncode != 0:
                failures.append(done.stderr[-1000:])

        threads = [threading.Thread(target=one, args=(n,)) for n in range(FAN_OUT)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise BenchError(f"{len(failures)} of {FAN_OUT} containers failed: {failures[0]}")

    def drop(_: object) -> dict[str, float]:
        archives = float(ctx.server.count(ARCHIVES))
        while volumes:
            name = volumes.pop()
            ctx.docker("volume", "rm", "-f", name, check=False)
            ctx.volumes.discard(name)
        return {"archives": archives}

    shared, separate = interleave(
        Side(f"{FAN_OUT} at once, one node cache", lambda: start_all(True),
             lambda: fresh(1), drop),
        Side(f"{FAN_OUT} at once, a cache each", lambda: start_all(False),
             lambda: fresh(FAN_OUT), drop),
        ctx.reps,
        ctx.warmup,
    )
    ours_archives = shared.metrics["archives"]
    result = Result(
        "e",
        f"fan-out: {FAN_OUT} containers, one commit",
        project.describe(),
        shared,
        separate,
        FAN_OUT_GOAL,
        [f"{int(max(ours_archives))} vs {int(min(separate.metrics['archives']))} "
         "archive downloads"],
    )
    result.extra_ok = all(n == 1 for n in ours_archives)
    return result


def _spec_and_token(ctx: BenchContext, project: Project) -> tuple[dict[str, object], Path]:
    from builder.repositories.types import public_spec
    from builder.state.store import Store

    record = Store(ctx.home).get_repository(project.repository)
    if record is None:
        raise BenchError(f"{project.repository} is not registered")
    token = ctx.root / "token"
    token.write_text(ctx.server.token)
    token.chmod(0o600)
    return public_spec(record), token


def _api_url(ctx: BenchContext, project: Project) -> str:
    """The API URL builder's download uses, so that both sides fetch the same URL."""
    from builder.repositories.types import instantiate
    from builder.state.store import Store

    record = Store(ctx.home).get_repository(project.repository)
    assert record is not None
    return str(instantiate(record).api_url).rstrip("/")


def _json(value: object) -> str:
    import json

    return json.dumps(value, sort_keys=True)


def _count(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def _clear(state: dict[str, Path]) -> None:
    for path in state.values():
        shutil.rmtree(path, ignore_errors=True)


def run(ctx: BenchContext, sizes: Sequence[str]) -> list[Result]:
    results = [floor_scenario(ctx, size) for size in sizes]
    return [*results, fan_out_scenario(ctx, sizes[0])]


if __name__ == "__main__":
    from tests.bench.context import standalone

    sys.exit(standalone(run, __doc__ or "", ["medium", "large"]))
