"""The download cache (BUILDER_CACHE_DIR): one directory per tree, named by its cache key.

Nothing in it is taken on trust:

- an entry must be a real directory: a symlink (or anything else) at an entry's name is an
  error, never followed;
- when builder writes an entry it seals it (`<key>.seal`: a digest of every path, kind and
  content); with BUILDER_VERIFY_DOWNLOAD on, an entry is checked against its seal each time it
  is used, so content planted in the cache after the download is refused;
- staging directories that a killed download left behind (`.<key>.*.partial`,
  `.builder-git-*`) are removed by the next download, unless a live process still holds them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from builder.errors import BuilderError, IntegrityError, from_os_error
from builder.state.atomic import RANDOM_PART, STAGING_SUFFIX, atomic_write_text, clear_stale
from builder.state.locks import file_lock

SEAL_SUFFIX = ".seal"
GIT_WORK_PREFIX = ".builder-git-"
_HINT = "BUILDER_CACHE_DIR names the cache: point it at a writable directory"


def entry(cache_dir: Path, key: str) -> Path | None:
    """The entry for `key` if it is there (a real directory), None if it is absent."""
    path = cache_dir / key
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise _not_a_directory(cache_dir) from None
    except OSError as exc:
        raise from_os_error(exc, "cannot read the cache", _HINT) from None
    if stat.S_ISDIR(info.st_mode):
        return path
    kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a directory"
    raise BuilderError(
        f"cache entry {path} is {kind}: builder follows no links in its cache and made no "
        "such entry; remove it"
    )


@contextlib.contextmanager
def locked(cache_dir: Path, key: str) -> Iterator[None]:
    """The lock that makes one starter download an entry while the others wait."""
    try:
        if cache_dir.exists() and not cache_dir.is_dir():
            raise _not_a_directory(cache_dir)
        lock = file_lock(cache_dir / f".{key}.lock")
        lock.__enter__()
    except OSError as exc:
        raise from_os_error(exc, f"cannot use the cache {cache_dir}", _HINT) from None
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


# The names builder gives them: `.<key>.<random>.partial` (staged once more inside a
# download: `..<key>.<random>.partial.<random>.partial`) and `.builder-git-<random>`.
_LEFTOVER = re.compile(
    rf"^(\.{{1,3}}[0-9a-f]{{32}}(\.{RANDOM_PART}{re.escape(STAGING_SUFFIX)}){{1,3}}"
    rf"|{re.escape(GIT_WORK_PREFIX)}{RANDOM_PART})$"
)


def clear_leftovers(cache_dir: Path) -> list[str]:
    """Remove what killed downloads left in the cache (never what a live one holds)."""
    return clear_stale(cache_dir, lambda name: _LEFTOVER.match(name) is not None)


def seal(path: Path, digest: str | None = None) -> None:
    """Record what the entry at `path` holds, as it was written: `digest` (its `tree_digest`,
    when the download knows it from what it wrote), or the tree read back."""
    from builder.code.files import tree_digest

    record = {"entry": path.name, "digest": digest or tree_digest(path)}
    try:
        atomic_write_text(_seal_path(path), json.dumps(record) + "\n", mode=0o644)
    except OSError as exc:
        raise from_os_error(exc, f"cannot seal the cache entry {path}", _HINT) from None


def check_seal(path: Path) -> None:
    """Raise `IntegrityError` unless the entry holds exactly what was sealed."""
    from builder.code.files import tree_digest

    try:
        record = json.loads(_seal_path(path).read_text(encoding="utf-8"))
        sealed = str(record["digest"]) if record.get("entry") == path.name else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        sealed = None
    if sealed is None:
        raise IntegrityError(
            f"cache entry {path} has no seal from builder, so its content cannot be verified "
            "(BUILDER_VERIFY_DOWNLOAD is on): remove it, and builder downloads it again"
        )
    try:
        actual = tree_digest(path)
    except (OSError, BuilderError):
        actual = ""
    if actual != sealed:
        raise IntegrityError(
            f"cache entry {path} changed after builder wrote it (it does not match its seal; "
            "BUILDER_VERIFY_DOWNLOAD is on): remove it, and builder downloads it again"
        )


def _seal_path(path: Path) -> Path:
    return path.with_name(path.name + SEAL_SUFFIX)


def _not_a_directory(cache_dir: Path) -> BuilderError:
    return BuilderError(f"BUILDER_CACHE_DIR {cache_dir} is not a directory: point "
                        "BUILDER_CACHE_DIR at a directory (or remove the file)")
