"""Facts about a local git checkout: commit, remotes, dirty files, and whether a remote has it.

Each fact is computed once per process and checkout. Git runs as subprocesses; the remote
check (`git ls-remote`) is started early so that it overlaps with the local checks.

Whether a branch contains the commit is answered from local history when it can be. A
shallow checkout (CI) whose HEAD is not a branch tip asks the hosting API (a `BranchQuery`,
for GitHub and GitLab), else fetches the last `BUILDER_DEEPEN_DEPTH` commits of the tips
into a scratch repository; the checkout itself is never changed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import ClassVar, NamedTuple

from builder.code.git_questions import CHANGES, REMOTES, find_checkout, heads, remote_urls
from builder.code.gitcmd import GitProcess, git_ok, run_git, split_z, start_git
from builder.errors import GitError
from builder.repositories.base import BaseCodeRepository, LocalRepositoryContext
from builder.repositories.urls import strip_credentials

DEFAULT_REMOTE_TIMEOUT = 10.0
MAX_ANCESTRY_CHECKS = 64
MAX_API_CHECKS = 16  # GitHub asks once per branch; GitLab answers for all in one request
DEFAULT_DEEPEN_DEPTH = 100
# Branch names a CI system tells its jobs about: asked first in a shallow checkout.
_CI_BRANCH_HINTS = (
    "GITHUB_BASE_REF",
    "GITHUB_HEAD_REF",
    "GITHUB_REF_NAME",
    "CI_MERGE_REQUEST_TARGET_BRANCH_NAME",
    "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME",
    "CI_COMMIT_BRANCH",
    "CI_DEFAULT_BRANCH",
)
_DEFAULT_BRANCHES = ("main", "master")
_MERGE_HINT = (
    "; it is a merge commit, as CI makes for a pull or merge request: check out the request's "
    "head commit instead to reuse the base image"
)

# (commit, [(branch, tip sha), ...]) -> (True: a branch contains it, False: none does,
# None: cannot tell; a short account of what was asked).
BranchQuery = Callable[[str, Sequence[tuple[str, str]]], tuple["bool | None", str]]


def remote_timeout() -> float:
    try:
        return float(os.environ.get("BUILDER_REMOTE_TIMEOUT", DEFAULT_REMOTE_TIMEOUT))
    except ValueError:
        return DEFAULT_REMOTE_TIMEOUT


def deepen_depth() -> int:
    """How many commits of each branch a shallow checkout fetches to check ancestry."""
    try:
        return max(1, int(os.environ.get("BUILDER_DEEPEN_DEPTH", DEFAULT_DEEPEN_DEPTH)))
    except ValueError:
        return DEFAULT_DEEPEN_DEPTH


class Remote(NamedTuple):
    name: str
    url: str  # as git would use it (insteadOf applied); may hold credentials

    @property
    def display_url(self) -> str:
        return strip_credentials(self.url)


class PushCheck(NamedTuple):
    """Whether a branch the remote has now contains the commit. `pushed` is None when unknown."""

    pushed: bool | None
    detail: str = ""


class Checkout:
    """A git work tree as seen from a project directory inside it."""

    _cache: ClassVar[dict[Path, Checkout | None]] = {}

    def __init__(self, root: Path, project_dir: Path, head: str | None) -> None:
        self.root = root
        self.project_dir = project_dir
        self.head = head  # the commit checked out; None in a repository with no commits
        self._push_checks: dict[str, PushCheck] = {}
        self._ls_remote: dict[str, GitProcess] = {}
        self._changes: GitProcess | None = None

    @classmethod
    def discover(cls, path: str | Path) -> Checkout | None:
        """The checkout that contains `path`, or None outside git. Cached per path."""
        project_dir = Path(path).resolve()
        if project_dir not in cls._cache:
            cls._cache[project_dir] = cls._find(project_dir)
        return cls._cache[project_dir]

    @classmethod
    def _find(cls, project_dir: Path) -> Checkout | None:
        found = find_checkout(project_dir)
        return None if found is None else cls(found[0], project_dir, found[1])

    @classmethod
    def forget(cls) -> None:
        cls._cache.clear()

    @property
    def subdirectory(self) -> str:
        rel = self.project_dir.relative_to(self.root).as_posix()
        return "" if rel == "." else rel

    @cached_property
    def remotes(self) -> list[Remote]:
        """Every remote URL (fetch and push), with `url.<base>.insteadOf` applied."""
        try:
            raw = run_git(REMOTES, self.project_dir)
        except GitError:
            return []
        return [Remote(name, url) for name, url in remote_urls(raw)]

    def cancel(self) -> None:
        """Stop the git processes started in the background; their answers are not needed."""
        pending = [*self._ls_remote.values(), *([self._changes] if self._changes else [])]
        for process in pending:
            process.kill()
        self._ls_remote.clear()
        self._changes = None

    def start_changes(self) -> None:
        """Start asking git what differs from the commit, in the background (idempotent)."""
        if self._changes is None and self.head is not None:
            self._changes = start_git(CHANGES, self.project_dir)

    @cached_property
    def shipped_changes(self) -> list[str]:
        """Paths (relative to the project dir) that git sees as changed or untracked there.

        Not yet filtered by `.dockerignore`; see `dirty_files`.
        """
        if self.head is None:
            return []
        self.start_changes()
        assert self._changes is not None
        changed: list[str] = []
        unsure: list[str] = []
        for entry in split_z(self._changes.result()):
            state, path = entry[:2], entry[3:]
            # Changed in the index and again in the work tree: the file may be back as it
            # is in the commit, which only a comparison with the commit can tell.
            both = state[0] not in " ?" and state[1] != " "
            (unsure if both else changed).append(path)
        if unsure:
            changed += split_z(
                run_git(
                    ["diff", "HEAD", "--name-only", "-z", "--no-renames", "--", *unsure],
                    self.root,
                    env={"GIT_LITERAL_PATHSPECS": "1"},
                )
            )
        prefix = f"{self.subdirectory}/" if self.subdirectory else ""
        return sorted({path[len(prefix) :] for path in changed if path.startswith(prefix)})

    @cached_property
    def dirty_files(self) -> list[str]:
        """Files that would ship and differ from the commit (DESIGN principle 3)."""
        from builder.code.dockerignore import DockerIgnore

        return DockerIgnore.load(self.project_dir).filter(self.shipped_changes)

    def start_push_check(self, remote: str) -> None:
        """Start `git ls-remote` for `remote` in the background (idempotent)."""
        if remote not in self._ls_remote and remote not in self._push_checks:
            self._ls_remote[remote] = start_git(heads(remote), self.root, timeout=remote_timeout())

    @cached_property
    def is_shallow(self) -> bool:
        """Whether the checkout's history is cut (a CI clone with a fetch depth)."""
        try:
            answer = run_git(["rev-parse", "--is-shallow-repository"], self.root)
        except GitError:
            return False
        return answer.decode().strip() == "true"

    def push_check(self, remote: Remote, ask: BranchQuery | None = None) -> PushCheck:
        """Ask the remote which branches it has now; is the commit on one of them?

        `ask` is the hosting API's answer to "does a branch contain this commit?", used only
        in a shallow checkout whose own history cannot tell.
        """
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
            check = self._contained(remote, _parse_heads(output), ask)
        self._push_checks[remote.name] = check
        return check

    def _contained(
        self, remote: Remote, tips: dict[str, str], ask: BranchQuery | None = None
    ) -> PushCheck:
        head = self.head
        assert head is not None
        if not tips:
            return self._not_on(remote)
        if head in tips.values():
            return PushCheck(True)
        # In a shallow checkout each "yes" below still holds; a "no" proves nothing.
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
        if self.is_shallow:
            return self._shallow_contained(remote, tips, ask)
        if missing:
            try:
                run_git(
                    [
                        "fetch",
                        "-q",
                        "--no-tags",
                        "--no-write-fetch-head",
                        "--end-of-options",
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
        return self._not_on(remote)

    def _not_on(self, remote: Remote, account: str = "") -> PushCheck:
        head = self.head
        assert head is not None
        hint = _MERGE_HINT if self._is_merge_commit() else ""
        return PushCheck(
            False,
            f"commit {head[:12]} is on no branch of remote {remote.name!r} "
            f"({remote.display_url}){f' ({account})' if account else ''}{hint}; "
            "push it to reuse the base image",
        )

    def _shallow_contained(
        self, remote: Remote, tips: dict[str, str], ask: BranchQuery | None
    ) -> PushCheck:
        """Ancestry without local history: the hosting API, else a bounded deepen."""
        head = self.head
        assert head is not None
        ordered = self._ordered_tips(remote, tips)
        tried: list[str] = []
        if ask is not None:
            answer, account = ask(head, ordered)
            if answer is True:
                return PushCheck(True)
            if answer is False:
                return self._not_on(remote, account)
            tried.append(account)
        found, account = self._deepen_contains(remote, ordered[:MAX_ANCESTRY_CHECKS])
        if found:
            return PushCheck(True)
        tried.append(account)
        hint = _MERGE_HINT if self._is_merge_commit() else ""
        return PushCheck(
            None,
            f"cannot tell whether a branch of remote {remote.name!r} ({remote.display_url}) "
            f"contains commit {head[:12]} in this shallow checkout: {'; '.join(tried)}{hint}",
        )

    def _ordered_tips(self, remote: Remote, tips: dict[str, str]) -> list[tuple[str, str]]:
        """The remote's branches, those most likely to hold the commit first."""
        hints = [os.environ.get(name, "") for name in _CI_BRANCH_HINTS]
        try:
            tracked = (
                run_git(
                    ["for-each-ref", "--format=%(refname)", f"refs/remotes/{remote.name}/"],
                    self.root,
                )
                .decode()
                .split()
            )
        except GitError:
            tracked = []
        prefix = f"refs/remotes/{remote.name}/"
        local = [ref[len(prefix) :] for ref in tracked]
        first = [b for b in (*hints, *local, *_DEFAULT_BRANCHES) if b in tips]
        names = list(dict.fromkeys([*first, *sorted(tips)]))
        return [(name, tips[name]) for name in names]

    def _is_merge_commit(self) -> bool:
        """From the commit object itself, which a shallow checkout has in full."""
        try:
            raw = run_git(["cat-file", "commit", "HEAD"], self.root)
        except GitError:
            return False
        header = raw.split(b"\n\n", 1)[0]
        return sum(line.startswith(b"parent ") for line in header.splitlines()) > 1

    def _deepen_contains(self, remote: Remote, tips: Sequence[tuple[str, str]]) -> tuple[bool, str]:
        """Fetch the last N commits of each tip (commits and trees only) into a scratch
        repository that borrows this checkout's objects, shallow list and configuration
        (remotes, credentials, URL rewrites), then check ancestry there.

        The checkout itself is never changed: `git fetch --depth` in it would also cut the
        history it already has.
        """
        import shutil
        import tempfile

        head = self.head
        assert head is not None
        if not tips:
            return False, "the remote has no branches"
        depth = deepen_depth()
        account = f"fetched the last {depth} commits of {len(tips)} branch(es)"
        scratch = Path(tempfile.mkdtemp(prefix="builder-deepen-"))
        try:
            git_dir = self._scratch_repository(scratch)
            fetch = ["fetch", "-q", "--no-tags", "--no-write-fetch-head", "--refmap="]
            run_git(
                [
                    *fetch,
                    "--recurse-submodules=no",
                    f"--depth={depth}",
                    "--filter=blob:none",
                    "--end-of-options",
                    remote.name,
                    *(f"refs/heads/{name}" for name, _ in tips),
                ],
                scratch,
                timeout=remote_timeout(),
                env={"GIT_DIR": str(git_dir)},
            )
            ancestry = ["--git-dir", str(git_dir), "merge-base", "--is-ancestor", head]
            found = any(git_ok([*ancestry, sha], scratch) for _, sha in tips)
        except GitError as exc:
            return False, f"could not fetch the branch tips to check ancestry: {exc}"
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if found:
            return True, account
        return False, f"{account}: none contains it (BUILDER_DEEPEN_DEPTH looks further back)"

    def _scratch_repository(self, scratch: Path) -> Path:
        names = ("objects", "shallow", "config")
        paths = run_git(["rev-parse", *(a for n in names for a in ("--git-path", n))], self.root)
        objects, shallow, config = (
            (self.root / line).resolve() for line in paths.decode().splitlines()
        )
        git_dir = scratch / "repo.git"
        run_git(["init", "-q", "--bare", str(git_dir)], scratch)
        (git_dir / "objects" / "info" / "alternates").write_text(f"{objects}\n")
        if shallow.is_file():
            import shutil

            shutil.copyfile(shallow, git_dir / "shallow")
        with open(git_dir / "config", "a") as handle:
            handle.write(f"[include]\n\tpath = {config}\n[core]\n\tbare = true\n")
        return git_dir

    def _partition_present(self, tips: dict[str, str]) -> tuple[list[str], list[str]]:
        branches = sorted(tips)
        query = "".join(f"{tips[b]}^{{commit}}\n" for b in branches).encode()
        answer = (
            run_git(["cat-file", "--batch-check"], self.root, stdin=query).decode().splitlines()
        )
        absent = {b for b, line in zip(branches, answer, strict=True) if line.endswith(" missing")}
        return [b for b in branches if b not in absent], [b for b in branches if b in absent]


def _parse_heads(output: str) -> dict[str, str]:
    from builder.code.gitobjects import is_object_id

    tips: dict[str, str] = {}
    for line in output.splitlines():
        sha, _, ref = line.partition("\t")
        sha = sha.strip()
        if ref.startswith("refs/heads/") and is_object_id(sha):
            tips[ref[len("refs/heads/") :]] = sha
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
        return self.checkout.push_check(self.remote, ask=self.branch_query())

    def branch_query(self) -> BranchQuery | None:
        """The hosting API's "does a branch contain this commit?" for a shallow checkout.

        A repository class brings it as a `branch_contains(commit, tips)` method (GitHub and
        GitLab do; a custom class may).
        """
        own = getattr(self.code_repository, "branch_contains", None)
        return own if callable(own) else None

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
