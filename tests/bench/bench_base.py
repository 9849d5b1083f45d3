"""Scenario i: the base image build. `builder build` against `docker build` of the
conventional Dockerfile (FROM parent, COPY requirements, pip install, COPY . .).

The project needs 15 pinned pure-Python packages from the index (through this machine's
proxy, as users' builds go). Two cases, each on its own project directory per side:

- cold: the project's first base build. No base image and an empty download cache
  (`$BUILDER_HOME/downloads`) for builder; `docker build --no-cache` for the conventional
  side. What builder makes once per builder version and parent, for every project, is ready
  from the warm-up, as the parent image is: its wheelhouse and its environment layer (kept
  alive here by the base image of a second project, as any earlier project's base keeps it).
- one requirement changes: each run pins a version of `more-itertools` that no earlier run
  used. builder builds its base on the previous one (README, "How a base is rebuilt"), with
  the cache of the earlier runs, so it downloads and installs one package (the run checks
  uv's "Prepared 1 package", and counts the bases built on the previous one); docker's layer
  cache ends at the COPY of requirements.txt, and pip installs all 15 again. The warm-up and
  the counted runs are at most 6 updates from a fresh base, within builder's default of 10:
  every 11th change builds a fresh base, as cold but with the download cache.

Both sides bake or copy the same small project code. Goals: at least 2x faster cold, at least
3x faster after one change.

    python -m tests.bench.bench_base [--reps 5]
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.bench.context import PARENT_IMAGE, BenchContext, BenchError, sh
from tests.bench.harness import Goal, Metrics, Result, Side, interleave, progress

NAME = "builder-bench-base"
KEEPER = "builder-bench-base-keeper"  # a second project: its base keeps builder's layer
CONVENTIONAL = "builder-bench-base-conventional"
REQUIREMENTS = [
    "attrs==24.2.0",
    "certifi==2024.8.30",
    "click==8.1.7",
    "idna==3.7",
    "iniconfig==2.0.0",
    "markdown-it-py==3.0.0",
    "mdurl==0.1.2",
    "packaging==24.1",
    "pluggy==1.5.0",
    "pygments==2.18.0",
    "python-dateutil==2.9.0.post0",
    "pytz==2024.2",
    "six==1.16.0",
    "tabulate==0.9.0",
    "more-itertools=={version}",
]
# more-itertools releases, newest first: each run of the "one change" case pins a new one.
VERSIONS = [
    "10.5.0", "10.4.0", "10.3.0", "10.2.0", "10.1.0", "10.0.0", "9.1.0", "9.0.0", "8.14.0",
    "8.13.0", "8.12.0", "8.11.0", "8.10.0", "8.9.0", "8.8.0", "8.7.0", "8.6.0", "8.5.0",
    "8.4.0", "8.3.0", "8.2.0", "8.1.0", "8.0.2", "8.0.0",
]
MAIN = "import attrs, click, dateutil, more_itertools, pygments, tabulate\nprint('ok')\n"
DOCKERFILE = f"""\
FROM {PARENT_IMAGE}
WORKDIR /app/code
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
CMD ["python", "main.py"]
"""
COLD_GOAL = Goal("faster", 2)
CHANGE_GOAL = Goal("faster", 3)
_PREPARED = re.compile(r"Prepared (\d+) packages?")


def write_project(path: Path, version: str, marker: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "builder.yaml").write_text(f"name: {NAME}\ncommand: [python, main.py]\n")
    (path / "main.py").write_text(MAIN)
    (path / "Dockerfile").write_text(DOCKERFILE)
    (path / ".dockerignore").write_text("Dockerfile\n")
    set_version(path, version, marker)


def set_version(path: Path, version: str, marker: str) -> None:
    """The requirements; the comment keeps docker's layer cache of an earlier bench run from
    answering (builder's checksum ignores comments, and its state is this run's own)."""
    text = f"# {marker}\n" + "\n".join(REQUIREMENTS).format(version=version) + "\n"
    (path / "requirements.txt").write_text(text)


class BaseBench:
    def __init__(self, ctx: BenchContext) -> None:
        self.ctx = ctx
        self.root = ctx.root / "base-build"
        self.home = self.root / "home"
        self.env = {**ctx.env, "BUILDER_HOME": str(self.home)}
        self.ours = self.root / "builder"
        self.theirs = self.root / "docker"
        self.versions: Iterator[str] = iter(VERSIONS)
        self.images: set[str] = set()
        write_project(self.ours, next(self.versions), ctx.marker("base"))
        write_project(self.theirs, VERSIONS[0], ctx.marker("base"))
        self.keeper = self.root / "keeper"
        self.keeper.mkdir(parents=True)
        (self.keeper / "builder.yaml").write_text(f"name: {KEEPER}\n")

    def builder_build(self) -> subprocess.CompletedProcess[str]:
        return sh([str(_builder()), "build", str(self.ours), "--json"], env=self.env)

    def docker_build(self, *options: str) -> str:
        done = sh(["docker", "build", "-q", *options, "-t", f"{CONVENTIONAL}:latest",
                   str(self.theirs)], env=self.env)
        image = done.stdout.split()[-1]
        self.images.add(image)
        return image

    def built_base(self, done: subprocess.CompletedProcess[str]) -> Metrics:
        info = json.loads(done.stdout)
        if info["base_image"] not in info["built"]:
            raise BenchError(f"builder build did not build its base image: {info['built']}")
        prepared = [int(n) for n in _PREPARED.findall(done.stderr)]
        updated = "updating the requirements of the previous base" in done.stderr
        return {"downloaded": float(prepared[0]) if prepared else 0.0,
                "updated": 1.0 if updated else 0.0}

    def forget_base(self) -> None:
        """No base image of the project and an empty download cache ($BUILDER_HOME/downloads)."""
        listing = sh(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", NAME],
                     env=self.env).stdout.split()
        if listing:
            sh(["docker", "image", "rm", *listing], env=self.env)
        shutil.rmtree(self.home / "downloads", ignore_errors=True)

    def cold(self) -> Result:
        progress("bench i: base build, cold")
        sh([str(_builder()), "build", str(self.keeper), "--json"], env=self.env)
        ours, theirs = interleave(
            Side("builder build", self.builder_build, before=self.forget_base,
                 after=self.built_base),
            Side("docker build --no-cache", lambda: self.docker_build("--no-cache")),
            self.ctx.reps, self.ctx.warmup,
        )
        return Result("i", "base build, cold", "15 packages", ours, theirs, COLD_GOAL)

    def one_change(self) -> Result:
        progress("bench i: base build after one requirement changes")
        theirs_versions = itertools.cycle(VERSIONS[1:])

        def change_ours() -> None:
            set_version(self.ours, next(self.versions), self.ctx.marker("base"))

        def change_theirs() -> None:
            set_version(self.theirs, next(theirs_versions), self.ctx.marker("base"))

        ours, theirs = interleave(
            Side("builder build", self.builder_build, before=change_ours, after=self.built_base),
            Side("docker build", self.docker_build, before=change_theirs),
            self.ctx.reps, self.ctx.warmup,
        )
        downloaded = ours.metric("downloaded")
        notes = [f"builder downloaded {downloaded:g} package(s) per change"] \
            if downloaded is not None else []
        updates = ours.metrics.get("updated") or []
        notes.append(f"{sum(updates):g} of {len(updates)} bases built on the previous one")
        return Result("i", "base build, one requirement changed", "15 packages", ours, theirs,
                      CHANGE_GOAL, notes=notes)

    def cleanup(self) -> None:
        listing = [ref for name in (NAME, KEEPER) for ref in sh(
            ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", name],
            env=self.env, check=False).stdout.split()]
        for ref in [*listing, f"{CONVENTIONAL}:latest", *sorted(self.images)]:
            sh(["docker", "image", "rm", ref], env=self.env, check=False)


def _builder() -> Path:
    from tests.bench.context import BUILDER_COMMAND

    return BUILDER_COMMAND


def run(ctx: BenchContext, sizes: Sequence[str]) -> list[Result]:
    if ctx.reps + ctx.warmup > len(VERSIONS) - 1:
        raise BenchError(f"at most {len(VERSIONS) - 1} runs of the one-change case")
    bench = BaseBench(ctx)
    try:
        return [bench.cold(), bench.one_change()]
    finally:
        bench.cleanup()


if __name__ == "__main__":
    from tests.bench.context import standalone

    sys.exit(standalone(run, __doc__ or "", ["small"]))
