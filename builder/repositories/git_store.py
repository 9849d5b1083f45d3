"""A git repository's objects, kept in the download cache, so a new commit fetches only what
changed.

The store is a bare partial clone (`remote.origin.promisor`, blobs fetched on demand) in the
cache directory that the entrypoint uses (the `builder-cache` volume in a container), one per
repository URL. Each commit is fetched once, at depth 1, and named by a ref
`refs/builder/commits/<sha>`. A later commit is fetched with that one as the only negotiation
tip, so the server sends the objects the earlier commit does not have: the new commit, the
trees that changed and, for a whole repository, the blobs that changed (git's smart protocol,
"have" lines). For a subdirectory the commit comes without blobs (`--filter=blob:none`) and
only the blobs below the subdirectory that the store lacks are fetched, by id, in one request.

Every object is checked by git as it arrives (its id is the hash of its content), so a tree
read from the store is the commit's tree. One process at a time uses a store (a file lock); a
download that finds it in use does not wait, it fetches without the store (`StoreBusy`). A
store is made in a staging directory (`.builder-git-*`, which a later start removes if this
one is killed) and renamed into place once git has set it up.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from builder.code.download import Listing, relative_listing
from builder.code.gitcmd import CatFile
from builder.code.gitsecrets import GitConfigFile
from builder.errors import BuilderError, DownloadError
from builder.state.atomic import held_directory, remove_tree
from builder.state.locks import file_lock

REF_PREFIX = "refs/builder/commits/"
GIT_WORK_PREFIX = ".builder-git-"  # staging, as `container.cache` knows it (a leftover if left)
_INIT_CONFIG = (
    ("core.repositoryformatversion", "1"),
    ("extensions.partialClone", "origin"),
    ("remote.origin.promisor", "true"),
    ("remote.origin.partialCloneFilter", "blob:none"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
)


class Runner(Protocol):
    """Runs git in one directory with the repository's credentials (`git_fetch._Git`)."""

    env: dict[str, str]
    cwd: Path
    credentials: GitConfigFile | None

    def run(self, args: Sequence[str], *, what: str, missing: str | None = None,
            stdin: bytes | None = None) -> bytes: ...

    def close(self) -> None: ...


class StoreBusy(DownloadError):
    """Another download uses the store: this one fetches without it."""


def store_path(cache_dir: Path, url: str) -> Path:
    """Where the store of the repository at `url` lives in a cache directory."""
    return cache_dir / f"git-{hashlib.sha256(url.encode()).hexdigest()[:32]}"


class ObjectStore:
    def __init__(self, path: Path, url: str) -> None:
        self.path = path
        self.url = url

    @contextlib.contextmanager
    def open(self, git_in: Callable[[Path], Runner], what: str) -> Iterator[OpenStore]:
        """The store, created if needed, held by this process for the `with` block
        (`git_in(folder)` makes the runner of git there). A store created here goes again if
        the block fails, so a first download that failed leaves nothing in the cache."""
        lock = self.path.with_name(f".{self.path.name}.lock")
        with file_lock(lock, blocking=False) as acquired:
            if not acquired:
                raise StoreBusy(f"{what}: another download uses the repository's store")
            created = not (self.path / "HEAD").is_file()
            if created:
                self._create(git_in, what)
            git = git_in(self.path)
            try:
                yield OpenStore(git, what)
            except BaseException:
                if created:
                    remove_tree(self.path)
                raise
            finally:
                git.close()

    def _create(self, git_in: Callable[[Path], Runner], what: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with held_directory(self.path.parent, GIT_WORK_PREFIX) as staging:
            git = git_in(staging)
            try:
                git.run(["init", "--quiet", "--bare", "."], what=what)
                git.run(["remote", "add", "--end-of-options", "origin", self.url], what=what)
                for key, value in _INIT_CONFIG:
                    git.run(["config", key, value], what=what)
            finally:
                git.close()
            remove_tree(self.path)  # what is there has no HEAD: not a store git made
            os.rename(staging, self.path)


class OpenStore:
    def __init__(self, git: Runner, what: str) -> None:
        self.git = git
        self.what = what

    def has_commit(self, sha: str) -> bool:
        """Whether the commit was fetched here before (its ref; no lazy fetch)."""
        try:
            self.git.run(["rev-parse", "--quiet", "--verify", f"{REF_PREFIX}{sha}"],
                         what=self.what)
        except BuilderError:
            return False
        return True

    def fetch_commit(self, sha: str, *, blobs: bool, have: str | None = None) -> None:
        """Fetch `sha` at depth 1 (with its blobs, or none); `have`: a commit of the store
        that the server may take as known, so that only what it lacks is sent."""
        if self.has_commit(sha):
            return
        args = ["fetch", "--quiet", "--no-tags", "--no-recurse-submodules",
                "--no-write-fetch-head", "--depth=1",
                "--no-filter" if blobs else "--filter=blob:none"]
        if have is not None:
            args.append(f"--negotiation-tip={REF_PREFIX}{have}")
        self.git.run([*args, "origin", f"+{sha}:{REF_PREFIX}{sha}"], what=self.what,
                     missing="commit")

    def listing(self, sha: str, subdirectory: str) -> Listing:
        """The commit's files below `subdirectory`: path -> (mode, blob id)."""
        args = ["ls-tree", "-r", "-z", "--full-tree", sha]
        out = self.git.run([*args, "--", subdirectory] if subdirectory else args,
                           what=self.what)
        triples = []
        for record in out.split(b"\0"):
            if record:
                meta, _, name = record.partition(b"\t")
                mode, _kind, oid = meta.decode("ascii").split()
                triples.append((name.decode("utf-8", "surrogateescape"), mode, oid))
        return relative_listing(triples, subdirectory)

    def fetch_missing(self, sha: str, blobs: Iterable[str]) -> int:
        """Fetch, in one request, those of `blobs` (of commit `sha`) that the store lacks;
        return how many."""
        wanted = set(blobs)
        out = self.git.run(["rev-list", "--objects", "--missing=print", "--no-object-names",
                            sha], what=self.what)
        missing = sorted({line[1:] for line in out.decode("ascii").split()
                          if line.startswith("?")} & wanted)
        if missing:
            self.git.run(["-c", "fetch.negotiationAlgorithm=noop", "fetch", "--quiet",
                          "--no-tags", "--no-recurse-submodules", "--no-write-fetch-head",
                          "--filter=blob:none", "--stdin", "origin"],
                         what=self.what, missing="a blob of the commit",
                         stdin="".join(f"{oid}\n" for oid in missing).encode())
        return len(missing)

    def blobs(self) -> CatFile:
        """A reader of the store's blobs (with the credentials, in case git must ask)."""
        credentials = self.git.credentials
        return CatFile(self.git.cwd, env=self.git.env,
                       pass_fds=credentials.fds if credentials is not None else ())
