"""Benchmarks of `builder build` against plain `docker build` on a 5,000-file project.

    python -m tests.bench.bench_build [--files 5000] [--reps 5] [--keep]

1. No-op: `builder build` of a clean, pushed project whose base image is present (reuse)
   against `docker build` of the conventional Dockerfile (FROM parent, COPY requirements,
   pip install, COPY . .) with every layer cached. Target: builder at least 3x faster.
2. Dirty bake with unchanged dependencies: `builder build` after a one-file change against
   `docker build` of a bare `FROM base` + `COPY . /app/code` after the same kind of change.
   Target: builder within 1.5x.

Both sides run as the user would run them (the `builder` CLI and the `docker` CLI, classic
builder), after one warm-up each, interleaved A/B for `--reps` rounds. Medians, minimum,
maximum and the ratio of medians are printed; the exit code is 1 if a target is missed.
Needs the engine and the parent image (`make engine parent-image`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

PARENT = "python:3.11-slim"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}
NOOP_TARGET = 3.0
BAKE_TARGET = 1.5


def run(command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, env={**os.environ, **GIT_ENV, **(env or {})},
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench: `{' '.join(command[:4])}` failed ({done.returncode}):\n"
                         f"{done.stderr[-3000:]}")
    return done.stdout


def make_project(root: Path, name: str, files: int) -> tuple[Path, Path]:
    project = root / "project"
    remote = root / "remote.git"
    for index in range(files - 4):
        path = project / f"pkg{index % 100:02d}" / f"module_{index:04d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        body = "".join(f"def function_{index}_{n}(value):\n    return value * {n} + {index}\n\n"
                       for n in range(24))
        path.write_text(f'"""Module {index}."""\n\n{body}')
    (project / "builder.yaml").write_text(f"name: {name}\nrequirements: [requirements.txt]\n")
    (project / "requirements.txt").write_text("six\n")
    (project / "main.py").write_text("import six\nprint('hello', six.__version__)\n")
    (project / ".dockerignore").write_text(".git\n")
    run(["git", "init", "-q", "-b", "main", str(project)])
    run(["git", "add", "-A"], cwd=project)
    run(["git", "commit", "-q", "-m", "bench"], cwd=project)
    run(["git", "init", "-q", "--bare", "-b", "main", str(remote)])
    run(["git", "remote", "add", "origin", str(remote)], cwd=project)
    run(["git", "push", "-q", "-u", "origin", "main"], cwd=project)
    return project, remote


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def interleave(reps: int, a: Callable[[], object], b: Callable[[], object],
               before: Callable[[], object] | None = None) -> tuple[list[float], list[float]]:
    times_a: list[float] = []
    times_b: list[float] = []
    for _ in range(reps):
        if before:
            before()
        times_a.append(timed(a))
        if before:
            before()
        times_b.append(timed(b))
    return times_a, times_b


def report(title: str, label_a: str, a: list[float], label_b: str, b: list[float],
           target: float, faster: bool) -> bool:
    med_a, med_b = statistics.median(a), statistics.median(b)
    print(f"\n{title}")
    for label, values, med in ((label_a, a, med_a), (label_b, b, med_b)):
        print(f"  {label:<44} median {med:7.3f} s   min {min(values):7.3f}   "
              f"max {max(values):7.3f}   (n={len(values)})")
    if faster:
        ratio = med_b / med_a
        ok = ratio >= target
        print(f"  speed-up (median {label_b} / median {label_a}): {ratio:.2f}x "
              f"(target >= {target:g}x) {'PASS' if ok else 'FAIL'}")
    else:
        ratio = med_a / med_b
        ok = ratio <= target
        print(f"  ratio (median {label_a} / median {label_b}): {ratio:.2f}x "
              f"(target <= {target:g}x) {'PASS' if ok else 'FAIL'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and images")
    args = parser.parse_args(argv)

    name = f"builder-bench-{uuid.uuid4().hex[:8]}"
    root = Path(tempfile.mkdtemp(prefix="builder-bench-"))
    home = root / "home"
    env = {"BUILDER_HOME": str(home), "DOCKER_BUILDKIT": "0"}
    builder = [sys.executable, "-m", "builder"]
    conventional_tag = f"{name}-conventional:latest"
    bare_tag = f"{name}-bare:latest"
    image_ids: set[str] = set()
    try:
        started = time.perf_counter()
        project, remote = make_project(root, name, args.files)
        run([*builder, "code-repository", "register", "origin", "--type", "git",
             "--url", str(remote)], env=env)
        print(f"bench: {args.files} files in {project} ({time.perf_counter() - started:.1f} s "
              "to create)")

        def builder_build() -> dict[str, object]:
            return dict(json.loads(run([*builder, "build", str(project), "--json"], env=env)))

        conventional = root / "conventional.Dockerfile"
        conventional.write_text(f"FROM {PARENT}\nWORKDIR /app/code\nCOPY requirements.txt .\n"
                                "RUN pip install --no-cache-dir -r requirements.txt\n"
                                "COPY . .\n")

        def docker_build(dockerfile: Path, tag: str) -> Callable[[], object]:
            def action() -> None:
                output = run(["docker", "build", "-q", "-f", str(dockerfile), "-t", tag,
                              str(project)], env=env)
                image_ids.update(output.split()[-1:])
            return action

        # ---- 1. no-op ------------------------------------------------------------------
        warm = builder_build()
        assert warm["mode"] == "reuse", warm["reasons"]
        print(f"bench: warm-up built {warm['built']} in {warm['seconds']} s")
        docker_build(conventional, conventional_tag)()
        for _ in range(2):
            again = builder_build()
            assert again["built"] == [] and again["mode"] == "reuse", again
            docker_build(conventional, conventional_tag)()
        noop_a, noop_b = interleave(args.reps, builder_build,
                                    docker_build(conventional, conventional_tag))
        ok_noop = report(f"no-op build, {args.files} files, image present (reuse)",
                         "builder build", noop_a,
                         "docker build (conventional, all cached)", noop_b,
                         NOOP_TARGET, faster=True)

        # ---- 2. dirty bake ---------------------------------------------------------------
        base = str(warm["base_image"])
        bare = root / "bare.Dockerfile"
        bare.write_text(f"FROM {base}\nCOPY . /app/code/\n")
        changed = project / "pkg00" / "module_0000.py"
        original = changed.read_text()
        counter = iter(range(1_000_000))

        def change() -> None:
            changed.write_text(original + f"# change {next(counter)} {uuid.uuid4().hex}\n")

        change()
        first = builder_build()
        assert first["mode"] == "bake" and first["base_image"] == base, first
        change()
        docker_build(bare, bare_tag)()
        built_images: list[str] = []

        def bake() -> None:
            result = builder_build()
            assert result["built"] == [result["image"]], result
            built_images.append(str(result["image"]))

        bake_a, bake_b = interleave(args.reps, bake, docker_build(bare, bare_tag), before=change)
        ok_bake = report(f"dirty bake, {args.files} files, dependencies unchanged",
                         "builder build (bake)", bake_a,
                         "docker build (FROM base + COPY)", bake_b, BAKE_TARGET, faster=False)
        print()
        return 0 if ok_noop and ok_bake else 1
    finally:
        if not args.keep:
            refs = subprocess.run(["docker", "image", "ls", "--format",
                                   "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True,
                                  check=False).stdout.split()
            mine = [ref for ref in refs if ref.startswith(name)] + sorted(image_ids)
            for ref in mine:
                subprocess.run(["docker", "image", "rm", "-f", ref], capture_output=True,
                               check=False)
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"bench: kept {root} and images {name}*")


if __name__ == "__main__":
    sys.exit(main())
