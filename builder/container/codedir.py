"""Whose code dir is it? builder fills only a code dir that it made itself or an empty one.

The mark is an extended attribute on the directory (`user.builder.code-dir`), so it travels
with the directory: a named volume mounted as the code dir keeps it from one container to
the next. Where the file system has no user attributes, a file beside the directory holds
the directory's device and inode instead. Anything else at the code dir (a user's volume
with their files, `/`, a file) is never changed: builder stops with one line instead.

This runs at every container start, so it uses `os` calls only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

MARK = "user.builder.code-dir"
MARK_VALUE = b"1"
ABSENT, EMPTY, OURS, FOREIGN = "absent", "empty", "ours", "foreign"


def state(path: str) -> str:
    """`absent`, `empty` (a directory with no entries), `ours` (marked) or `foreign`."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return ABSENT
    if not stat.S_ISDIR(info.st_mode):
        return FOREIGN
    if is_marked(path, info):
        return OURS
    with os.scandir(path) as entries:
        return FOREIGN if any(True for _ in entries) else EMPTY


def is_marked(path: str, info: os.stat_result | None = None) -> bool:
    try:
        return os.getxattr(path, MARK, follow_symlinks=False) == MARK_VALUE
    except OSError:
        pass
    info = info or os.lstat(path)
    try:
        with open(_sidecar(path), encoding="ascii") as handle:
            return handle.read().strip() == _identity(info)
    except (OSError, ValueError):
        return False


def mark(path: str) -> None:
    """Record that builder made (and may replace) the directory at `path`."""
    try:
        os.setxattr(path, MARK, MARK_VALUE, follow_symlinks=False)
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES):
            raise
    sidecar = _sidecar(path)
    temporary = f"{sidecar}.{os.getpid()}"
    try:
        with open(temporary, "w", encoding="ascii") as handle:
            handle.write(_identity(os.lstat(path)) + "\n")
        os.replace(temporary, sidecar)
    except OSError:
        # Unmarked, the directory is left alone next time, which loses nothing.
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def _sidecar(path: str) -> str:
    parent, name = os.path.split(os.path.normpath(path))
    return os.path.join(parent, f".{name}.builder-code-dir")


def _identity(info: os.stat_result) -> str:
    return f"{info.st_dev}:{info.st_ino}"

