"""Scenario c: builder's GitHub download against a per-file contents-API walk (ZenML's way).

Both download one commit of a fixture project (by default the medium one: 1,000 files in 50
directories, about 10 MB) from the loopback GitHub server. builder's `download` streams one
tarball: the API's redirect and the archive, 2 requests. The walk calls `get_contents` per
directory and reads every file's content with one more request, as ZenML's GitHub repository
does. PyGithub's throttle is off for both (`seconds_between_requests=0`); with its default of
0.25 s per request the walk would take minutes longer still. Both trees must be identical.

    python -m tests.bench.bench_download [--sizes medium] [--reps 5]
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from builder.code.download import download
from builder.repositories.github import GitHubCodeRepository
from tests.bench.context import OWNER, BenchContext, BenchError
from tests.bench.harness import DASH, Goal, Result, Side, interleave, progress

GOAL = Goal("faster", 20, f"1{DASH}2 requests")


def contents_walk(repo: GitHubCodeRepository, commit: str, directory: Path) -> None:
    """ZenML's download: recursive get_contents and one content request per file."""
    from github import Auth, Github

    remote = Github(
        base_url=repo.api_url,
        auth=Auth.Token(repo.token or ""),
        retry=None,
        seconds_between_requests=0,
        seconds_between_writes=0,
        lazy=True,
    ).get_repo(repo.full_name)

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


def download_scenario(ctx: BenchContext, size: str) -> Result:
    project = ctx.project(size)
    progress(f"bench c: download, {project.describe()}")
    commit = project.head()
    repo = GitHubCodeRepository(
        "bench",
        "bench",
        {
            "owner": OWNER,
            "repository": size,
            "url": ctx.server.url,
            "api_url": ctx.server.url,
            "token": ctx.server.token,
        },
    )
    scratch = ctx.root / "downloads"
    scratch.mkdir(exist_ok=True)
    digests: set[str] = set()
    targets = iter(range(1_000_000))
    state: dict[str, Path] = {}

    def before() -> None:
        state["target"] = scratch / f"tree-{next(targets)}"
        ctx.server.reset_counts()

    def after(_: object) -> dict[str, float]:
        requests = ctx.server.request_count
        digests.add(tree_digest(state["target"]))
        shutil.rmtree(state["target"])
        return {"requests": float(requests)}

    ours, theirs = interleave(
        Side("download_files", lambda: download(repo, commit, state["target"]), before, after),
        Side(
            "contents-API walk", lambda: contents_walk(repo, commit, state["target"]), before, after
        ),
        ctx.reps,
        ctx.warmup,
    )
    if len(digests) != 1:
        raise BenchError("builder's download and the contents-API walk gave different trees")
    ours_requests = ours.metrics["requests"]
    result = Result(
        "c",
        "download a commit (GitHub API)",
        project.describe(),
        ours,
        theirs,
        GOAL if size == "medium" else None,
        [f"{_count(ours_requests)} vs {_count(theirs.metrics['requests'])} requests"],
    )
    result.extra_ok = all(1 <= n <= 2 for n in ours_requests)
    return result


def _count(values: list[float]) -> str:
    low, high = int(min(values)), int(max(values))
    return f"{low:,}" if low == high else f"{low:,}{DASH}{high:,}"


def run(ctx: BenchContext, sizes: Sequence[str]) -> list[Result]:
    return [download_scenario(ctx, size) for size in sizes]


if __name__ == "__main__":
    from tests.bench.context import standalone

    sys.exit(standalone(run, __doc__ or "", ["medium"]))
