"""Git object ids computed without git, to check an extracted tree against a commit."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

_READ_CHUNK = 1 << 20
_FILE, _EXECUTABLE, _SYMLINK = "100644", "100755", "120000"
_DIRECTORY_MODES = ("040000", "40000", "160000")


def is_object_id(value: object) -> bool:
    """A full object id (40 or 64 lower-case hex digits): what git itself prints, never a path
    or something git could read as an option."""
    return (isinstance(value, str) and len(value) in (40, 64)
            and all(c in "0123456789abcdef" for c in value))


def blob_sha(data: bytes, algorithm: str = "sha1") -> str:
    """Git's blob id for `data`: the hash of `blob <length>\\0` followed by the data."""
    digest = hashlib.new(algorithm, b"blob %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()


def tree_listing_matches(directory: Path, expected: dict[str, tuple[str, str]]) -> list[str]:
    """Compare the files below `directory` with a commit's listing; return the differences.

    `expected` maps posix paths to `(mode, blob id)` as `git ls-tree -r` prints them:
    "100644", "100755" or "120000" (a symlink, whose blob is its target). Tree ("040000") and
    submodule ("160000") entries only need a directory there. Blob ids of 64 hex digits are
    taken as a SHA-256 repository's. The result is sorted, one line per difference: missing,
    extra (files and symlinks only), mode, content.
    """
    actual = _listing(Path(directory))
    differences: list[str] = []
    for path, (mode, sha) in expected.items():
        if mode in _DIRECTORY_MODES:
            if not (Path(directory) / path).is_dir() or path in actual:
                differences.append(f"missing: {path} (expected a directory)")
            continue
        found = actual.get(path)
        if found is None:
            differences.append(f"missing: {path}")
            continue
        found_mode, full = found
        if found_mode != mode:
            differences.append(f"mode: {path}: expected {mode}, found {found_mode}")
        if found_mode != "other" and _object_id(full, found_mode, len(sha)) != sha:
            differences.append(f"content: {path}")
    differences.extend(f"extra: {path}" for path in actual if path not in expected)
    return sorted(differences)


def _listing(root: Path) -> dict[str, tuple[str, str]]:
    """Every non-directory below `root`: posix path -> (git mode or "other", full path)."""
    found: dict[str, tuple[str, str]] = {}
    pending = [("", str(root))]
    while pending:
        prefix, folder = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                relative = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    pending.append((relative + "/", entry.path))
                else:
                    found[relative] = (_mode(entry.stat(follow_symlinks=False).st_mode),
                                       entry.path)
    return found


def _mode(st_mode: int) -> str:
    if stat.S_ISLNK(st_mode):
        return _SYMLINK
    if stat.S_ISREG(st_mode):
        return _EXECUTABLE if st_mode & stat.S_IXUSR else _FILE
    return "other"


def _object_id(full: str, mode: str, hex_length: int) -> str:
    algorithm = "sha256" if hex_length == 64 else "sha1"
    if mode == _SYMLINK:
        return blob_sha(os.fsencode(os.readlink(full)), algorithm)
    with open(full, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        digest = hashlib.new(algorithm, b"blob %d\0" % size)
        while chunk := handle.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
