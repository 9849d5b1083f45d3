"""`make bench`: builder side by side with the conventional Docker workflow.

    python -m tests.bench [--quick] [--only a,b,...] [--reps N] [--no-write] [--strict]

Scenarios (the letters of the README table; each module also runs on its own):
  a  pushed one-line change -> output: builder run against docker build+push+run
     (bench_iterate; small, medium, large; the github and the git type)
  b  uncommitted one-line change -> output: the same (bench_iterate; small, medium, large;
     the github and the git type)
  c  download a commit: GitHub download_files against a contents-API walk (bench_download;
     medium)
  d  decision: builder status against git status + git ls-remote (bench_status; large,
     xlarge)
  e  container start, warm and cold: the entrypoint against a plain docker run (bench_start;
     medium)
  f  no-op build: builder build against docker build, all cached (bench_build; large)
  g  run records: builder runs list on 10,000 recorded runs against the same on one record
     (bench_runs)
  h  the project's install at a warm container start: with it against without it
     (bench_start; medium)
  i  base image build, cold and after one requirement changes: builder build against docker
     build of the conventional Dockerfile with pip (bench_base; 15 pinned packages)
  j  builder's own time on the reuse path: builder run against docker run of the same
     container after a pushed change (bench_overhead; small)

A full run (5 repetitions after 1 warm-up, all sizes) prints the table, writes it into
README's "Benchmarks" section with the date and the machine, and draws docs/bench.png.
`--quick` is a smoke test: 2 repetitions, the small project only, README and plot untouched
(unless `--write`). Needs the engine, the parent image and the registry (`make infra`).
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.bench import (
    bench_base,
    bench_build,
    bench_download,
    bench_iterate,
    bench_overhead,
    bench_runs,
    bench_start,
    bench_status,
    fixtures,
    report,
)
from tests.bench.context import (
    BUILDER_COMMAND,
    PARENT_IMAGE,
    REGISTRY,
    BenchContext,
    machine,
    sh,
)
from tests.bench.harness import Result, markdown_table, progress

ROOT = Path(__file__).resolve().parents[2]
SIZE_ORDER = ["small", "medium", "large"]
Scenario = Callable[[BenchContext, Sequence[str]], list[Result]]

# (letter, scenario, sizes in a full run); run in this order: f first builds the base image
# (in its warm-up) that e, a and b use.
PLAN: list[tuple[str, Scenario, list[str]]] = [
    ("f", bench_build.run, ["large"]),
    ("e", bench_start.run, ["medium"]),
    ("h", bench_start.run_project, ["medium"]),
    ("d", bench_status.run, ["large", "xlarge"]),
    ("c", bench_download.run, ["medium"]),
    ("a", bench_iterate.run_pushed, SIZE_ORDER),
    ("b", bench_iterate.run_uncommitted, SIZE_ORDER),
    ("g", bench_runs.run, ["records"]),
    ("i", bench_base.run, ["small"]),  # its own 15-package project, whatever the size
    ("j", bench_overhead.run, ["small"]),
]


def preflight() -> None:
    """Fail early, with the fix, if a real part is missing."""
    if not BUILDER_COMMAND.is_file():
        raise SystemExit(f"bench: no {BUILDER_COMMAND}; run `make setup`")
    if sh(["docker", "info"], check=False).returncode != 0:
        raise SystemExit("bench: no Docker engine answers; run `make engine`")
    if sh(["docker", "image", "inspect", PARENT_IMAGE], check=False).returncode != 0:
        raise SystemExit(f"bench: no {PARENT_IMAGE} image; run `make parent-image`")
    try:
        urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=5).close()
    except OSError:
        raise SystemExit(f"bench: no registry answers at {REGISTRY}; run `make registry`") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 2 repetitions, small project, README untouched",
    )
    parser.add_argument("--only", default="", help="scenario letters, e.g. a,c (default all)")
    parser.add_argument("--reps", type=int, default=None, help="counted repetitions (5)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up runs per side (1)")
    parser.add_argument("--write", action="store_true", help="write README and plot (--quick)")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a goal is missed")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args(argv)
    reps = args.reps or (2 if args.quick else 5)
    only = {letter.strip() for letter in args.only.split(",") if letter.strip()}
    if unknown := only - {letter for letter, _, _ in PLAN}:
        parser.error(f"--only: unknown scenario {', '.join(sorted(unknown))}")
    if reps < 1 or args.warmup < 0:
        parser.error("--reps must be at least 1 and --warmup at least 0")
    write = (args.write or not args.quick) and not args.no_write

    preflight()
    started = time.perf_counter()
    results: list[Result] = []
    with BenchContext(reps=reps, warmup=args.warmup, keep=args.keep) as ctx:
        for letter, scenario, sizes in PLAN:
            if only and letter not in only:
                continue
            results += scenario(ctx, ["small"] if args.quick else sizes)
    minutes = (time.perf_counter() - started) / 60
    sizes = list(fixtures.SPECS)
    results.sort(key=lambda r: (r.key, _size_order(sizes, r.project)))

    table = markdown_table(results)
    print(table)
    missed = [r for r in results if r.met is False]
    for r in missed:
        print(f"goal missed: {r.key} {r.title}, {r.project}: {r.statement()} ({r.verdict()})")
    print(f"bench: {minutes:.1f} minutes")
    if write:
        info = machine()
        plot = ROOT / report.PLOT
        report.plot(results, plot, info)
        block = report.generated_block(results, info, reps, args.warmup, minutes, report.PLOT)
        report.update_readme(ROOT / "README.md", block)
        progress(f"bench: wrote {report.PLOT} and README.md's Benchmarks section")
    return 1 if args.strict and missed else 0


def _size_order(sizes: Sequence[str], project: str) -> int:
    """Rows of one scenario by fixture size; a row on no fixture (g's records) after them."""
    size = project.split(":")[0]
    return sizes.index(size) if size in sizes else len(sizes)


if __name__ == "__main__":
    sys.exit(main())
