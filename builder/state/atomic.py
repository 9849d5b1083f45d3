"""Atomic file and directory writes: write beside the target, then rename into place."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


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
    so a partial tree never appears at the destination. If `destination` appears meanwhile
    (another process won the race), the staged copy is discarded and theirs is kept.
    """
    import tempfile

    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent)
    )
    try:
        yield staging
        try:
            os.rename(staging, destination)
        except OSError:
            if not destination.is_dir():
                raise
            remove_tree(staging)
    except BaseException:
        remove_tree(staging)
        raise


def remove_tree(path: Path) -> None:
    """Remove a directory tree, including read-only entries, ignoring one that is gone."""

    def _onerror(func, p, exc_info):  # type: ignore[no-untyped-def]
        with contextlib.suppress(OSError):
            os.chmod(p, 0o700)
            func(p)

    if path.is_symlink() or path.is_file():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    import shutil

    shutil.rmtree(path, onerror=_onerror)
