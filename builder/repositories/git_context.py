"""Facts about a local git checkout: commit, remotes, dirty files, and whether a remote has it.

Each fact is computed once per process and checkout. Git runs as subprocesses; the remote
check (`git ls-remote`) is started early so that it overlaps with the local checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar

from builder.errors import GitError
from builder.gitcmd import GitProcess, git_ok, run_git, split_z, start_git
from builder.repositories.base import BaseCodeRepository, LocalRepositoryContext
from builder.repositories.urls import strip_credentials

DEFAULT_REMOTE_TIMEOUT = 10.0
MAX_ANCESTRY_CHECKS = 64


def remote_timeout() -> float:
    try:
        return float(os.environ.get("BUILDER_REMOTE_TIMEOUT", DEFAULT_REMOTE_TIMEOUT))
    except ValueError:
        return DEFAULT_REMOTE_TIMEOUT


@dataclass(frozen=True)
class Remote:
    name: str
    url: str  # as git would use it (insteadOf applied); may hold credentials

    @property
    def display_url(self) -> str:
        return strip_credentials(self.url)


@dataclass(frozen=True)
class PushCheck:
    """Whether a branch the remote has now contains the commit. `pushed` is None when unknown."""

    pushed: bool | None
    detail: str = ""


class Checkout:
    """A git work tree as seen from a project directory inside it."""

    _cache: ClassVar[dict[Path, Checkout | None]] = {}

    def __init__(self, root: Path, project_dir: Path) -> None:
        self.root = root
        self.project_dir = project_dir
        self._push_checks: dict[str, PushCheck] = {}
        self._ls_remote: dict[str, GitProcess] = {}

    @classmethod
    def discover(cls, path: str | Path) -> Checkout | None:
        """The checkout that contains `path`, or None outside git. Cached per path."""
        project_dir = Path(path).resolve()
        if project_dir not in cls._cache:
            try:
                top = run_git(["rev-parse", "--show-toplevel"], project_dir).decode().strip()
            except (GitError, FileNotFoundError, NotADirectoryError):
                cls._cache[project_dir] = None
            else:
                cls._cache[project_dir] = cls(Path(top).resolve(), project_dir)
        return cls._cache[project_dir]

    @classmethod
    def forget(cls) -> None:
        cls._cache.clear()

    @property
    def subdirectory(self) -> str:
        rel = self.project_dir.relative_to(self.root).as_posix()
        return "" if rel == "." else rel

    @cached_property
    def head(self) -> str | None:
        """The commit checked out; None in a repository with no commits."""
        try:
            return (
                run_git(["rev-parse", "-q", "--verify", "HEAD^{commit}"], self.root)
                .decode()
                .strip()
            )
        except GitError:
            return None

    @cached_property
    def remotes(self) -> list[Remote]:
        """Every remote URL (fetch and push), with `url.<base>.insteadOf` applied."""
        try:
            raw = run_git(
                [
                    "config",
                    "-z",
                    "--get-regexp",
                    r"^(remote\..*\.(url|pushurl)|url\..*\.insteadof)$",
                ],
                self.root,
            )
        except GitError:
            return []
        rewrites: list[tuple[str, str]] = []
        entries: list[tuple[str, str]] = []
        for item in split_z(raw):
            key, _, value = item.partition("\n")
            section, _, rest = key.partition(".")
            if section == "url":
                base = rest.rsplit(".", 1)[0]
                rewrites.append((value, base))
            else:
                entries.append((rest.rsplit(".", 1)[0], value))
        rewrites.sort(key=lambda pair: len(pair[0]), reverse=True)
        result: list[Remote] = []
        for name, url in entries:
            for prefix, base in rewrites:
                if url.startswith(prefix):
                    url = base + url[len(prefix) :]
                    break
            remote = Remote(name, url)
            if remote not in result:
                result.append(remote)
        return result

    @cached_property
    def shipped_changes(self) -> list[str]:
        """Paths (relative to the project dir) that git sees as changed or untracked there.

        Not yet filtered by `.dockerignore`; see `dirty_files`.
        """
        if self.head is None:
            return []
        diff = start_git(
            ["diff", "HEAD", "--name-only", "-z", "--no-renames", "--relative", "--", "."],
            self.project_dir,
        )
        untracked = start_git(
            ["ls-files", "-o", "--exclude-standard", "-z", "--", "."], self.project_dir
        )
        changed = split_z(diff.result()) + split_z(untracked.result())
        return sorted(set(changed))

    @cached_property
    def dirty_files(self) -> list[str]:
        """Files that would ship and differ from the commit (DESIGN principle 3)."""
        from builder.dockerignore import DockerIgnore

        return DockerIgnore.load(self.project_dir).filter(self.shipped_changes)

    def start_push_check(self, remote: str) -> None:
        """Start `git ls-remote` for `remote` in the background (idempotent)."""
        if remote not in self._ls_remote and remote not in self._push_checks:
            self._ls_remote[remote] = start_git(
                ["ls-remote", "--heads", remote], self.root, timeout=remote_timeout()
            )

    def push_check(self, remote: Remote) -> PushCheck:
        """Ask the remote which branches it has now; is the commit on one of them?"""
        if remote.name in self._push_checks:
            return self._push_checks[remote.name]
        self.start_push_check(remote.name)
        process = self._ls_remote.pop(remote.name)
        try:
            output = process.result().decode("utf-8", "replace")
        except GitError as exc:
            check = PushCheck(
                None, f"cannot reach remote {remote.name!r} ({remote.display_url}): {exc}"
            )
        else:
            check = self._contained(remote, _parse_heads(output))
        self._push_checks[remote.name] = check
        return check

    def _contained(self, remote: Remote, tips: dict[str, str]) -> PushCheck:
        head = self.head
        assert head is not None
        not_on = PushCheck(
            False,
            f"commit {head[:12]} is on no branch of remote {remote.name!r} "
            f"({remote.display_url}); push it to reuse the base image",
        )
        if not tips:
            return not_on
        if head in tips.values():
            return PushCheck(True)
        tracked = (
            run_git(
                [
                    "for-each-ref",
                    "--contains",
                    head,
                    "--format=%(objectname)",
                    f"refs/remotes/{remote.name}/",
                ],
                self.root,
            )
            .decode()
            .split()
        )
        if set(tracked) & set(tips.values()):
            return PushCheck(True)
        present, missing = self._partition_present(tips)
        if any(
            git_ok(["merge-base", "--is-ancestor", head, tips[b]], self.root)
            for b in present[:MAX_ANCESTRY_CHECKS]
        ):
            return PushCheck(True)
        if missing:
            try:
                run_git(
                    [
                        "fetch",
                        "-q",
                        "--no-tags",
                        "--no-write-fetch-head",
                        remote.name,
                        *(f"refs/heads/{b}" for b in missing[:MAX_ANCESTRY_CHECKS]),
                    ],
                    self.root,
                    timeout=remote_timeout(),
                )
            except GitError as exc:
                return PushCheck(
                    None,
                    f"cannot fetch the branch tips of remote {remote.name!r} "
                    f"({remote.display_url}) to check ancestry: {exc}",
                )
            if any(
                git_ok(["merge-base", "--is-ancestor", head, tips[b]], self.root)
                for b in missing[:MAX_ANCESTRY_CHECKS]
            ):
                return PushCheck(True)
        return not_on

    def _partition_present(self, tips: dict[str, str]) -> tuple[list[str], list[str]]:
        branches = sorted(tips)
        query = "".join(f"{tips[b]}^{{commit}}\n" for b in branches).encode()
        answer = (
            run_git(["cat-file", "--batch-check"], self.root, stdin=query).decode().splitlines()
        )
        absent = {b for b, line in zip(branches, answer, strict=True) if line.endswith(" missing")}
        return [b for b in branches if b not in absent], [b for b in branches if b in absent]


def _parse_heads(output: str) -> dict[str, str]:
    tips: dict[str, str] = {}
    for line in output.splitlines():
        sha, _, ref = line.partition("\t")
        if ref.startswith("refs/heads/") and sha:
            tips[ref[len("refs/heads/") :]] = sha.strip()
    return tips


class GitLocalContext(LocalRepositoryContext):
    """The context of a built-in repository type: a checkout and the remote that matched."""

    def __init__(
        self, code_repository: BaseCodeRepository, checkout: Checkout, remote: Remote
    ) -> None:
        super().__init__(code_repository)
        self.checkout = checkout
        self.remote = remote

    @property
    def root(self) -> str:
        return str(self.checkout.root)

    @property
    def subdirectory(self) -> str:
        return self.checkout.subdirectory

    @property
    def dirty_files(self) -> list[str]:
        return self.checkout.dirty_files

    @property
    def is_dirty(self) -> bool:
        return bool(self.checkout.dirty_files)

    @property
    def push_state(self) -> PushCheck:
        return self.checkout.push_check(self.remote)

    @property
    def has_local_changes(self) -> bool:
        return self.is_dirty or self.push_state.pushed is not True

    @property
    def current_commit(self) -> str:
        head = self.checkout.head
        if head is None:
            raise GitError(f"{self.root}: the repository has no commits")
        return head

    def start_checks(self) -> None:
        self.checkout.start_push_check(self.remote.name)
