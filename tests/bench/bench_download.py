"""Benchmark: builder's GitHub download against a per-file contents-API walk (ZenML's way).

Both run against the same loopback GitHub server and repository (1,000 files in 50
directories by default). builder streams one tarball (2 HTTP requests: the API's redirect and
the archive). The walk calls `get_contents` per directory and fetches every file's content
with one more request, as ZenML's GitHub repository does. PyGithub's throttle is off for both
(`seconds_between_requests=0`); with its default of 0.25 s per request the walk would take
minutes longer still.

    python -m tests.bench.bench_download [--files 1000] [--dirs 50] [--repeat 5]

Prints the requests per download, median/min/max seconds over interleaved repetitions (after
one warm-up of each), and the ratio of the medians. With the defaults it runs for about eight
minutes, nearly all of it in the walk (about 85 s per walk of 1,056 requests here).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from builder.download import download
from builder.repositories.github import GitHubCodeRepository
from tests.infra.github_server import GitHubServer


def make_files(files: int, dirs: int) -> dict[str, bytes]:
    """`files` files spread over `dirs` directories (two levels), 200 B to 6 KiB each."""
    content: dict[str, bytes] = {}
    for index in range(files):
        folder = index % dirs
        path = f"pkg{folder // 10}/mod{folder}/file_{index:04d}.py"
        size = 200 + (index * 97) % 6000
        seed = hashlib.sha256(str(index).encode()).hexdigest().encode()
        content[path] = (b"# generated\n" + seed * (size // len(seed) + 1))[:size]
    return content


def contents_walk(repo: GitHubCodeRepository, commit: str, directory: Path) -> None:
    """ZenML's download: recursive get_contents and one content request per file."""
    from github import Auth, Github

    remote = Github(base_url=repo.api_url, auth=Auth.Token(repo.token or ""), retry=None,
                    seconds_between_requests=0, seconds_between_writes=0,
                    lazy=True).get_repo(repo.full_name)

    def walk(path: str, target: Path) -> None:
        items = remote.get_contents(path, ref=commit)
        for item in items if isinstance(items, list) else [items]:
            local = target / item.name
            if item.type == "dir":
                local.mkdir(parents=True, exist_ok=True)
                walk(item.path, local)
            else:
                # A listing entry has no content: reading it completes the object (one GET).
                local.write_bytes(item.decoded_content)

    directory.mkdir(parents=True, exist_ok=True)
    walk("", directory)


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def measure(server: GitHubServer, run: Callable[[Path], Any], scratch: Path,
            label: str) -> tuple[float, int, str]:
    target = scratch / f"{label}-{time.monotonic_ns()}"
    server.reset_counts()
    started = time.perf_counter()
    run(target)
    elapsed = time.perf_counter() - started
    requests = server.request_count
    digest = tree_digest(target)
    shutil.rmtree(target)
    return elapsed, requests, digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_download",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--dirs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.files < 1 or args.dirs < 1:
        parser.error("--files, --dirs and --repeat must be positive")

    base = Path(tempfile.mkdtemp(prefix="bench-download-"))
    try:
        with GitHubServer(base / "repos", work_dir=base / "work") as server:
            handle = server.create_repo("bench/proj")
            commit = handle.commit(make_files(args.files, args.dirs), "bench tree")
            handle.push()
            repo = GitHubCodeRepository("bench", "bench", {
                "owner": "bench", "repository": "proj", "url": server.url,
                "api_url": server.url, "token": server.token})
            scratch = base / "out"
            scratch.mkdir()
            runs: dict[str, Callable[[Path], Any]] = {
                "builder (tarball)": lambda target: download(repo, commit, target),
                "contents-API walk": lambda target: contents_walk(repo, commit, target),
            }
            for label, run in runs.items():  # warm-up
                measure(server, run, scratch, label.split()[0])
            times: dict[str, list[float]] = {label: [] for label in runs}
            counts: dict[str, set[int]] = {label: set() for label in runs}
            digests: set[str] = set()
            for _ in range(args.repeat):  # interleaved
                for label, run in runs.items():
                    elapsed, requests, digest = measure(server, run, scratch, label.split()[0])
                    times[label].append(elapsed)
                    counts[label].add(requests)
                    digests.add(digest)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print(f"{args.files} files in {args.dirs} directories, {args.repeat} interleaved "
          f"repetitions after one warm-up, loopback GitHub server")
    header = f"{'method':<20} {'requests':>9} {'median s':>9} {'min s':>8} {'max s':>8}"
    print(header)
    print("-" * len(header))
    for label in runs:
        values = times[label]
        requests_text = "/".join(str(c) for c in sorted(counts[label]))
        print(f"{label:<20} {requests_text:>9} {statistics.median(values):>9.3f} "
              f"{min(values):>8.3f} {max(values):>8.3f}")
    ours, walk = (statistics.median(times[label]) for label in runs)
    ratio = walk / ours if ours > 0 else float("inf")
    print(f"ratio of medians (walk / builder): {ratio:.1f}x")
    print("trees identical: " + ("yes" if len(digests) == 1 else "NO"))
    return 0 if len(digests) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
