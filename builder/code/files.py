"""The shipped file set (DESIGN principle 3) and its content hash.

In a git checkout the set is what git would ship from the project directory: tracked files
that exist plus untracked files that are not ignored (`git ls-files -co --exclude-standard`),
minus `.dockerignore` matches. Outside git it is every file under the project directory,
minus `.dockerignore` matches. Directories are implied by the files; empty ones do not ship.

Each file is described as git describes it: a mode ("100644", "100755", "120000" for a
symlink) and a blob id (of the content, or of a symlink's target). The content hash is
`treediff.tree_digest` of those entries, the same digest a commit's listing gets, so the same
files give the same hash inside git or outside it. It never covers mtimes, owners or absolute
paths, so touching a file or moving the project changes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from builder.code import treediff
from builder.code.gitobjects import blob_sha
from builder.code.treediff import EXECUTABLE, FILE, SYMLINK, Listing
from builder.errors import BuilderError, GitError

Kind = Literal["file", "exec", "symlink"]
CHUNK = 1 << 20
_MODES: dict[str, str] = {"file": FILE, "exec": EXECUTABLE, "symlink": SYMLINK}
# Hashing in threads pays off only when there is enough data to read (hashlib and file reads
# release the GIL for large buffers; for many tiny files the pool's overhead dominates).
_PARALLEL_MIN_BYTES = 32 << 20
_WORKERS = min(8, (os.cpu_count() or 1) + 2)


@dataclass(frozen=True)
class FileEntry:
    """One shipped file: posix path relative to the project, kind, git blob id."""

    path: str
    kind: Kind
    oid: str  # git's blob id of the content; for a symlink, of its target
    size: int
    target: str = ""  # symlink target, as stored in the link

    @property
    def git_mode(self) -> str:
        return _MODES[self.kind]


@dataclass(frozen=True)
class FileSet:
    root: Path
    entries: tuple[FileEntry, ...]
    digest: str

    @property
    def paths(self) -> list[str]:
        return [entry.path for entry in self.entries]

    @property
    def total_size(self) -> int:
        return sum(entry.size for entry in self.entries)

    @property
    def listing(self) -> Listing:
        return {entry.path: (entry.git_mode, entry.oid) for entry in self.entries}


def shipped_paths(project_dir: str | Path) -> list[str]:
    """The relative posix paths that ship from project_dir, sorted."""
    from builder.code.dockerignore import DockerIgnore
    from builder.code.git_questions import find_checkout

    root = Path(project_dir).resolve()
    candidates = git_paths(root) if find_checkout(root) is not None else _walk_paths(root)
    return sorted(DockerIgnore.load(root).filter(candidates))


def git_paths(root: Path) -> list[str]:
    """What git would ship from `root` (a checkout's directory), before `.dockerignore`."""
    from builder.code.gitcmd import split_z, start_git

    try:
        # Tracked files, including those of checked-out submodules (a download at the
        # commit has them too), and untracked files that are not ignored.
        tracked = start_git(["ls-files", "-c", "--recurse-submodules", "-z", "--", "."], root)
        untracked = start_git(["ls-files", "-o", "--exclude-standard", "-z", "--", "."], root)
        paths = split_z(tracked.result()) + split_z(untracked.result())
    except FileNotFoundError:
        raise GitError("git is not installed (it lists the files of a git checkout)") from None
    result = []
    for path in dict.fromkeys(paths):
        if path.endswith("/"):
            continue  # an untracked nested repository, which git does not ship
        try:
            mode = os.lstat(root / path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue  # tracked but deleted in the work tree
        if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
            result.append(path)
    return result


def _walk_paths(root: Path) -> list[str]:
    from builder.state.trees import walk

    result = []
    for folder in walk(root):
        for entry in folder.files:
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
                result.append(folder.prefix + entry.name)
    return result


def hash_file(path: str | os.PathLike[str], algorithm: str = "sha1") -> tuple[str, int]:
    """git's blob id and the size of a file's content, read in chunks."""
    with open(path, "rb", buffering=0) as handle:
        size = os.fstat(handle.fileno()).st_size
        digest = hashlib.new(algorithm, b"blob %d\0" % size)
        read = 0
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            read += len(chunk)
    if read != size:
        raise BuilderError(f"{path}: changed while it was being read; try again")
    return digest.hexdigest(), size


def entry_for(root: Path, path: str, algorithm: str = "sha1") -> FileEntry:
    """Describe one file; a file that vanished or is no longer a file is an error."""
    full = os.path.join(root, path)
    try:
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(full)
            raw = os.fsencode(target)
            return FileEntry(path, "symlink", blob_sha(raw, algorithm), 0, target)
        if not stat.S_ISREG(st.st_mode):
            raise BuilderError(f"{full}: not a regular file or symlink; cannot ship it")
        oid, size = hash_file(full, algorithm)
    except FileNotFoundError:
        raise BuilderError(f"{full}: disappeared while it was being read; try again") from None
    except PermissionError:
        raise BuilderError(f"{full}: permission denied; cannot ship it") from None
    kind: Kind = "exec" if st.st_mode & stat.S_IXUSR else "file"
    return FileEntry(path, kind, oid, size)


def hash_entries(entries: Iterable[FileEntry]) -> str:
    """The content hash of a file set (`treediff.tree_digest` of its entries)."""
    return treediff.tree_digest({entry.path: (entry.git_mode, entry.oid) for entry in entries})


def file_set(project_dir: str | Path, paths: Sequence[str] | None = None,
             algorithm: str = "sha1") -> FileSet:
    """The shipped file set of project_dir (or of the given paths) with its content hash."""
    root = Path(project_dir).resolve()
    names = sorted(shipped_paths(root) if paths is None else paths)
    entries = describe(root, names, algorithm)
    return FileSet(root, tuple(entries), hash_entries(entries))


def describe(root: Path, names: Sequence[str], algorithm: str = "sha1") -> list[FileEntry]:
    """`entry_for` each name, in threads when there is enough to read."""
    if len(names) > 64 and _WORKERS > 1 and _approx_size(root, names) >= _PARALLEL_MIN_BYTES:
        with ThreadPoolExecutor(_WORKERS) as pool:
            return list(pool.map(lambda name: entry_for(root, name, algorithm), names,
                                 chunksize=32))
    return [entry_for(root, name, algorithm) for name in names]


def _approx_size(root: Path, names: Sequence[str]) -> int:
    total = 0
    for name in names:
        with contextlib.suppress(OSError):
            total += os.lstat(os.path.join(root, name)).st_size
        if total >= _PARALLEL_MIN_BYTES:
            break
    return total


def tree_digest(root: str | Path) -> str:
    """A digest of everything below `root`: each entry's path, kind and content (a symlink's
    target), directories included, nothing followed. Anything but files, symlinks and
    directories is an error (a cache entry never holds one)."""
    from builder.state.trees import walk

    lines: list[bytes] = []
    for folder in walk(root):
        for entry in folder.directories:
            lines.append(b"dir %s\n" % _name(folder.prefix + entry.name))
        for entry in folder.files:
            mode = entry.stat(follow_symlinks=False).st_mode
            name = _name(folder.prefix + entry.name)
            if stat.S_ISLNK(mode):
                content = hashlib.sha256(os.fsencode(os.readlink(entry.path))).hexdigest()
                lines.append(b"symlink %s %s\n" % (name, content.encode()))
            elif stat.S_ISREG(mode):
                kind = b"exec" if mode & stat.S_IXUSR else b"file"
                lines.append(b"%s %s %s\n" % (kind, name, _content_digest(entry.path)))
            else:
                raise BuilderError(f"{entry.path}: not a file, directory or symlink")
    digest = hashlib.sha256(b"builder-tree-v1\n")
    for line in sorted(lines):
        digest.update(line)
    return digest.hexdigest()


def _content_digest(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        digest = hashlib.sha256()
        while chunk := os.read(fd, CHUNK):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest().encode()


def _name(path: str) -> bytes:
    encoded = path.encode("utf-8", "surrogateescape")
    return b"%d:%s" % (len(encoded), encoded)
