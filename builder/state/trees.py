"""Walking and removing directory trees without recursion and without following links.

A tree can be deeper than Python's recursion limit (a hostile archive, a generated project),
so both work from an explicit stack. `remove_tree` works relative to open directory
descriptors and holds at most two of them, however deep the tree: it never follows a
symlink, so a link planted inside a tree never makes it delete anything outside.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Folder(NamedTuple):
    """One directory of a walk: its path, its posix path relative to the root ("" for the
    root, else ending in "/"), and its entries (symlinks to directories count as files)."""

    path: str
    prefix: str
    directories: list[os.DirEntry[str]]
    files: list[os.DirEntry[str]]


def walk(root: str | os.PathLike[str]) -> Iterator[Folder]:
    """Every directory below `root` (itself first), top down, never through a symlink."""
    pending = [(os.fspath(root), "")]
    while pending:
        folder, prefix = pending.pop()
        with os.scandir(folder) as scan:
            entries = list(scan)
        directories = [entry for entry in entries if entry.is_dir(follow_symlinks=False)]
        files = [entry for entry in entries if not entry.is_dir(follow_symlinks=False)]
        yield Folder(folder, prefix, directories, files)
        pending.extend((entry.path, prefix + entry.name + "/") for entry in reversed(directories))


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Remove a file, a symlink (not its target) or a directory tree, read-only entries
    included; a path that is already gone is fine."""
    target = Path(path)
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)
        return
    parent = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _remove_directory(parent, target.name)
    finally:
        os.close(parent)


class _Level(NamedTuple):
    name: str  # this directory's name in its parent
    identity: tuple[int, int]  # (st_dev, st_ino), to recognise it again through ".."
    subdirectories: list[str]  # still to remove


def _remove_directory(top: int, name: str) -> None:
    """Remove directory `name` of the directory open as `top`, depth first, iteratively."""
    try:
        fd = _open_directory(name, top)
    except FileNotFoundError:
        return
    levels = [_Level(name, _identity(fd), _clear_files(fd))]
    try:
        while True:
            level = levels[-1]
            if level.subdirectories:
                child = level.subdirectories.pop()
                try:
                    child_fd = _open_directory(child, fd)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    if exc.errno != errno.ENOTDIR:
                        raise
                    _unlink(fd, child)  # swapped for a file or a link meanwhile
                    continue
                os.close(fd)
                fd = child_fd
                levels.append(_Level(child, _identity(fd), _clear_files(fd)))
                continue
            levels.pop()
            if not levels:
                os.close(fd)
                fd = -1
                _rmdir(top, level.name)
                return
            parent_fd = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent_fd
            if _identity(fd) != levels[-1].identity:
                raise OSError(errno.ESTALE, "a directory was moved while it was being removed")
            _rmdir(fd, level.name)
    finally:
        if fd >= 0:
            os.close(fd)


def _open_directory(name: str, dir_fd: int) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except PermissionError:
        os.chmod(name, 0o700, dir_fd=dir_fd)  # a directory without read or search permission
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _identity(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


def _clear_files(fd: int) -> list[str]:
    """Unlink every non-directory in the directory open as `fd`; return its subdirectories."""
    subdirectories = []
    for name in os.listdir(fd):
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(info.st_mode):
            subdirectories.append(name)
        else:
            _unlink(fd, name)
    return subdirectories


def _unlink(fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=fd)
    except FileNotFoundError:
        pass
    except PermissionError:
        os.fchmod(fd, 0o700)  # a read-only directory (as an archive can make one)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=fd)


def _rmdir(fd: int, name: str) -> None:
    try:
        os.rmdir(name, dir_fd=fd)
    except FileNotFoundError:
        pass
    except PermissionError:
        os.fchmod(fd, 0o700)
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(name, dir_fd=fd)
