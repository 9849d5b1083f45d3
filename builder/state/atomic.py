"""Atomic file and directory writes: write beside the target, then rename into place."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from builder.state.trees import remove_tree

__all__ = [
    "atomic_write_bytes", "atomic_write_text", "clear_stale", "held_directory", "is_held",
    "remove_tree", "staged_directory",
]


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` so that readers see the old file or the new one, never a mix."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)


@contextlib.contextmanager
def staged_directory(destination: Path) -> Iterator[Path]:
    """Yield an empty temporary directory beside `destination`; rename it there on success.

    On any error the temporary directory is removed and `destination` is left untouched,
    so a partial tree never appears at the destination. The destination must be absent
    (or an empty directory) when the rename happens; anything else there is an error, never
    taken for a finished tree. While it is being filled the staging directory is locked, so
    `clear_stale` removes it only once its writer is gone (killed mid-way).
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with held_directory(destination.parent, f".{destination.name}.", STAGING_SUFFIX) as staging:
        yield staging
        try:
            os.rename(staging, destination)
        except OSError as exc:
            from builder.errors import BuilderError

            raise BuilderError(
                f"cannot put {destination} in place: {exc.strerror or exc} "
                "(something else is there now; nothing was replaced)"
            ) from None


STAGING_SUFFIX = ".partial"
#: What `tempfile.mkdtemp` puts between a held directory's prefix and suffix.
RANDOM_PART = "[a-z0-9_]{8}"


@contextlib.contextmanager
def held_directory(parent: Path, prefix: str, suffix: str = "") -> Iterator[Path]:
    """A new private directory in `parent`, locked while the block runs, then removed.

    The lock (flock on the directory itself) tells `clear_stale` that a live process still
    uses it; a directory whose lock is free was left by a process that was killed.
    """
    import fcntl
    import tempfile

    while True:
        path = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=parent))
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink > 0:
            break
        os.close(fd)  # a cleaner took it for stale before the lock was on it: make another
    try:
        yield path
    finally:
        try:
            remove_tree(path)  # gone already when it was renamed into place
        finally:
            os.close(fd)


def is_held(path: Path) -> bool:
    """Whether a live process holds the directory `held_directory` made at `path` (False
    once it is gone)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # releases the lock if we took it
    return False


def clear_stale(parent: Path, is_candidate: Callable[[str], bool]) -> list[str]:
    """Remove the directories in `parent` that `held_directory` made (as `is_candidate`
    tells by name) and whose process is gone; return their names. Best effort: a failure
    leaves the directory for a later try, and a directory a live process holds is never
    touched."""
    import fcntl
    import stat

    removed: list[str] = []
    try:
        names = [name for name in os.listdir(parent) if is_candidate(name)]
    except OSError:
        return removed
    for name in names:
        path = Path(parent, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue  # gone, a symlink, or not a directory: not one of ours
        try:
            if not stat.S_ISDIR(os.fstat(fd).st_mode) or os.fstat(fd).st_uid != os.geteuid():
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live process holds it
            with contextlib.suppress(OSError):
                remove_tree(path)
                removed.append(name)
        finally:
            os.close(fd)
    return removed
