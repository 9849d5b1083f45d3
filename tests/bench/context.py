"""What every scenario shares: a temp dir, a loopback GitHub server, the fixture projects,
builder's state, the local registry's storage, and helpers to run builder, git and docker.

The fixture projects are clones whose `origin` is the loopback GitHub server (git smart HTTP
with a token). Each is registered twice, in two builder homes: as a GitHub code repository
(the API) and as a plain git repository (the same URL, over the git protocol), so a scenario
can run builder with either type against the same checkout. Containers reach the server over
the host network. Every change a scenario makes carries this run's nonce, so no cache from an
earlier run (Docker's layer cache, builder's download cache) can answer for it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tests.bench import fixtures
from tests.bench.harness import Result, markdown_table, progress
from tests.infra.github_server import GitHubServer
from tests.infra.gitrepos import init_bare

PARENT_IMAGE = "python:3.11-slim"
REGISTRY = "127.0.0.1:5000"
IMAGE_NAME = "builder-bench"  # builder's images: <registry>/builder-bench:base-..., :code-...
CONVENTIONAL = f"{REGISTRY}/builder-bench-conventional"  # the conventional images, tag = size
OWNER = "bench"
TYPES = ("github", "git")  # the repository types a fixture is registered as, one home each
# `pip install` makes this script; users run it, not `python -m builder` (40 ms more of runpy)
BUILDER_COMMAND = Path(sys.executable).with_name("builder")
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


class BenchError(RuntimeError):
    """A step of the benchmark failed (not a goal missed: the run cannot go on)."""


def sh(
    command: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        list(command),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if check and done.returncode != 0:
        raise BenchError(
            f"`{' '.join(command[:5])}` failed ({done.returncode}):\n"
            f"{done.stderr[-3000:]}{done.stdout[-1000:]}"
        )
    return done


@dataclass
class Project:
    """A fixture project: a git clone whose origin is the loopback GitHub server."""

    spec: fixtures.Spec
    path: Path
    size: int  # bytes of files
    repository: str  # the registered code repository's name (the same in every home)
    env: dict[str, str]
    conventional: str  # the conventional image's reference
    clone_url: str = ""  # the server's git URL, which the git type fetches
    commits: list[str] = field(default_factory=list)  # every commit pushed by the benchmark

    @property
    def name(self) -> str:
        return self.spec.name

    def describe(self) -> str:
        megabytes = self.size / 1e6
        size = f"{megabytes:.0f} MB" if megabytes >= 10 else f"{megabytes:.1f} MB"
        return f"{self.spec.name}: {self.spec.files:,} files, {size}"

    def git(self, *args: str) -> str:
        return sh(["git", *args], cwd=self.path, env=self.env).stdout.strip()

    def change(self, marker: str) -> None:
        """A one-line change: main.py prints `marker`."""
        (self.path / "main.py").write_text(fixtures.MAIN.format(marker=marker))

    def commit_and_push(self, marker: str) -> str:
        self.change(marker)
        self.git("commit", "-q", "-am", f"bench: {marker}")
        self.git("push", "-q", "origin", "HEAD:main")
        head = self.git("rev-parse", "HEAD")
        self.commits.append(head)
        return head

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")


class RegistryStorage:
    """The local registry's storage directory: what a push added, per repository.

    Bytes pushed to repository R between two snapshots = the sizes of the blobs that are new
    in the storage and linked from R (layers, configs and manifests). Blobs that other
    repositories pushed meanwhile, or that R mounted from another repository, do not count.
    """

    def __init__(self, root: Path) -> None:
        self.v2 = root / "docker" / "registry" / "v2"

    @property
    def available(self) -> bool:
        return (self.v2 / "blobs").is_dir() and os.access(self.v2 / "blobs", os.R_OK)

    def snapshot(self) -> dict[str, int]:
        blobs: dict[str, int] = {}
        top = self.v2 / "blobs" / "sha256"
        if not top.is_dir():
            return blobs
        for prefix in os.scandir(top):
            for entry in os.scandir(prefix.path):
                data = os.path.join(entry.path, "data")
                try:
                    blobs[entry.name] = os.stat(data).st_size
                except FileNotFoundError:
                    continue
        return blobs

    def linked(self, repository: str) -> set[str]:
        root = self.v2 / "repositories" / repository
        found: set[str] = set()
        for sub in ("_layers/sha256", "_manifests/revisions/sha256"):
            directory = root / sub
            if directory.is_dir():
                found.update(entry.name for entry in os.scandir(directory))
        return found

    def pushed(self, before: dict[str, int], repository: str) -> int:
        after = self.snapshot()
        new = after.keys() - before.keys()
        return sum(after[digest] for digest in new & self.linked(repository))


def machine() -> dict[str, str]:
    """Where the numbers were measured."""
    memory = "?"
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    docker = sh(["docker", "version", "--format", "{{.Server.Version}}"], check=False)
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "cores": str(os.cpu_count()),
        "cpu": model,
        "memory": memory,
        "docker": docker.stdout.strip() or "?",
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


class BenchContext:
    """Shared state of one benchmark run; use as a context manager (cleans up on exit)."""

    def __init__(self, *, reps: int, warmup: int = 1, keep: bool = False) -> None:
        self.reps = reps
        self.warmup = warmup
        self.keep = keep
        self.nonce = uuid.uuid4().hex[:10]
        self.root = Path(tempfile.mkdtemp(prefix="builder-bench-"))
        self.homes = {kind: self.root / ("home" if kind == "github" else f"home-{kind}")
                      for kind in TYPES}
        self.home = self.homes["github"]
        self.env = {
            **os.environ,
            **GIT_IDENTITY,
            "BUILDER_HOME": str(self.home),
            "DOCKER_BUILDKIT": "0",
        }
        self.env.pop("BUILDER_REGISTRY", None)
        # Users run builder with bytecode caches (pip writes them): so does the benchmark.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.server = GitHubServer(self.root / "repos", work_dir=self.root / "work")
        # The per-file walk of scenario c alone makes more requests than github.com's 5,000 an
        # hour, which the server enforces: the benchmark measures time, not that limit.
        self.server.rate_limit = 10**9
        self.registry = RegistryStorage(
            Path(os.environ.get("BUILDER_REGISTRY_DIR", "/var/lib/builder-registry"))
        )
        self.projects: dict[str, Project] = {}
        self.image_ids: set[str] = set()  # conventional images built, removed at the end
        self.volumes: set[str] = set()
        self.bases: set[str] = set()  # builder's base images seen in this run (kept)
        self._counter = 0

    def __enter__(self) -> BenchContext:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if not self.keep:
                self.cleanup()
        finally:
            self.server.stop()
            if self.keep:
                progress(f"bench: kept {self.root}")
            else:
                shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ helpers
    def marker(self, what: str) -> str:
        """A unique marker for a one-line change: this run's nonce and a counter."""
        self._counter += 1
        return f"{what}-{self.nonce}-{self._counter}"

    def builder(
        self, *args: str, check: bool = True, kind: str = "github"
    ) -> subprocess.CompletedProcess[str]:
        """The builder CLI as a user runs it: the `builder` command the install made, with
        the home where the fixtures are registered as `kind` repositories."""
        env = {**self.env, "BUILDER_HOME": str(self.homes[kind])}
        return sh([str(BUILDER_COMMAND), *args], env=env, check=check)

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh(["docker", *args], env=self.env, check=check)

    # ------------------------------------------------------------------ projects
    def project(self, size: str) -> Project:
        """The fixture project of this size, generated, pushed and registered on first use."""
        if size in self.projects:
            return self.projects[size]
        started = time.perf_counter()
        spec = fixtures.SPECS[size]
        tree = fixtures.generate(spec, IMAGE_NAME, REGISTRY)
        path = self.root / "projects" / size
        fixtures.write(tree, path)
        repo = f"{OWNER}/{size}"
        init_bare(self.server.repo_dir(repo))
        env = self.env
        header = f"Authorization: Bearer {self.server.token}"
        for args in (
            ["init", "-q", "-b", "main"],
            ["config", "http.extraHeader", header],
            ["add", "-A"],
            ["commit", "-q", "-m", f"{size} fixture"],
            ["remote", "add", "origin", self.server.clone_url(repo)],
            ["push", "-q", "-u", "origin", "main"],
        ):
            sh(["git", *args], cwd=path, env=env)
        name = f"bench-{size}"
        clone_url = self.server.clone_url(repo)
        where = {
            "github": ["--owner", OWNER, "--repository", size, "--url", self.server.url],
            "git": ["--url", clone_url],
        }
        for kind in TYPES:
            self.builder(
                "code-repository", "register", name, "--type", kind, *where[kind],
                "--token", self.server.token, kind=kind,
            )
        project = Project(
            spec, path, tree.size, name, env, f"{CONVENTIONAL}:{size}", clone_url=clone_url
        )
        project.commits.append(project.head())
        self.projects[size] = project
        progress(
            f"bench: fixture {project.describe()} ready in {time.perf_counter() - started:.1f} s"
        )
        return project

    # ------------------------------------------------------------------ the conventional way
    def docker_build(self, project: Project) -> str:
        """`docker build` of the project's (conventional) Dockerfile; the image id."""
        done = self.docker("build", "-q", "-t", project.conventional, str(project.path))
        image = done.stdout.split()[-1]
        self.image_ids.add(image)
        return image

    def conventional_iteration(self, project: Project) -> str:
        """build, push, run: the conventional loop after a change; the program's output."""
        self.docker_build(project)
        self.docker("push", "-q", project.conventional)
        return self.docker("run", "--rm", "--network", "host", project.conventional).stdout

    # ------------------------------------------------------------------ cleanup
    @contextmanager
    def volume(self) -> Iterator[str]:
        name = f"builder-bench-{self.nonce}-{uuid.uuid4().hex[:6]}"
        self.docker("volume", "create", name)
        self.volumes.add(name)
        try:
            yield name
        finally:
            self.docker("volume", "rm", "-f", name, check=False)
            self.volumes.discard(name)

    def build_json(self, project: Project, kind: str = "github") -> dict[str, Any]:
        """`builder build --json`; notes the base image, which cleanup keeps."""
        done = self.builder("build", str(project.path), "--json", kind=kind)
        info: dict[str, Any] = json.loads(done.stdout)
        self.note_base(info)
        return info

    def note_base(self, info: dict[str, Any]) -> None:
        """A base image this run used (cleanup keeps it for the next run)."""
        if info.get("base_image"):
            self.bases.add(str(info["base_image"]))

    def cleanup(self) -> None:
        """Remove what this run made: images (not the base), cache entries, volumes."""
        from builder.container.entrypoint import Contract
        from builder.repositories.git_store import store_path
        from builder.repositories.types import public_spec
        from builder.state.store import Store

        keys: list[str] = []
        for kind in TYPES:
            store = Store(self.homes[kind])
            for project in self.projects.values():
                record = store.get_repository(project.repository)
                if record is None:
                    continue
                spec = public_spec(record)
                for commit in project.commits:
                    contract = Contract(Path("/app/code"), commit, spec, "", Path("/"), None,
                                        False)
                    keys.append(contract.cache_key)
                    keys.append(f"{contract.lineage_key}.newest")
                if kind == "git":  # the git type's object store
                    keys.append(store_path(Path("/"), project.clone_url).name)
        listing = self.docker(
            "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", check=False
        ).stdout.split()
        bases = [ref for ref in listing if ref.startswith(f"{REGISTRY}/{IMAGE_NAME}:base-")]
        base = next(iter(sorted(self.bases)), "")
        keys = list(dict.fromkeys(keys))
        if keys and base:
            # builder run's downloads went to the shared builder-cache volume: drop ours.
            self.docker(
                "run",
                "--rm",
                "-v",
                "builder-cache:/cache",
                "--entrypoint",
                "rm",
                base,
                "-rf",
                *(f"/cache/{key}" for key in keys),
                check=False,
            )
        # Kept for the next run: the base image, and the last conventional image of each size
        # (with the cached pip layer below it). Everything else this run made goes.
        kept = {
            self.docker("image", "inspect", "--format", "{{.Id}}", ref, check=False)
            .stdout.strip()
            .removeprefix("sha256:")[:12]
            for ref in listing
            if ref.startswith(CONVENTIONAL) and "<none>" not in ref
        }
        mine = [
            ref
            for ref in listing
            if ref.startswith((f"{REGISTRY}/{IMAGE_NAME}:code-", f"{REGISTRY}/{IMAGE_NAME}:tree-"))
        ]
        if self.bases:  # older bases, of earlier versions of builder
            mine += [ref for ref in bases if ref not in self.bases]
        old = [
            image
            for image in sorted(self.image_ids)
            if image.removeprefix("sha256:")[:12] not in kept
        ]
        for ref in [*mine, *old]:
            self.docker("image", "rm", ref, check=False)
        for name in list(self.volumes):
            self.docker("volume", "rm", "-f", name, check=False)


def standalone(
    run: Callable[[BenchContext, Sequence[str]], list[Result]],
    doc: str,
    sizes: Sequence[str],
    argv: Sequence[str] | None = None,
) -> int:
    """`python -m tests.bench.<scenario>`: run one scenario module and print its table."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default=",".join(sizes),
        help=f"fixture projects, comma separated (default: {','.join(sizes)})",
    )
    parser.add_argument("--reps", type=int, default=5, help="counted repetitions (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up runs of each side")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and images")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in fixtures.SPECS]
    if unknown or args.reps < 1 or args.warmup < 0:
        parser.error(f"--sizes takes {', '.join(fixtures.SPECS)}; --reps >= 1, --warmup >= 0")
    with BenchContext(reps=args.reps, warmup=args.warmup, keep=args.keep) as ctx:
        results = run(ctx, chosen)
    print(markdown_table(results))
    return 0
