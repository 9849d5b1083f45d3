"""Git LFS pointer files: recognising one, and checking content against the one it names.

A file tracked by Git LFS is stored in git as a small pointer blob (the spec's "version" line,
then `oid sha256:<hex>` and `size <bytes>`, at most 1024 bytes). Archives may hold either the
pointer (GitHub's default) or the content it names (GitLab's default, and GitHub's when the
repository's "Include Git LFS objects in archives" setting is on). builder ships what the
archive holds; verification accepts either, the content only when its sha256 and size are the
ones the pointer names (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

MAX_POINTER_BYTES = 1024
_VERSION = b"version https://git-lfs.github.com/spec/v1\n"
_OID = re.compile(rb"^oid sha256:([0-9a-f]{64})$", re.MULTILINE)
_SIZE = re.compile(rb"^size (\d+)$", re.MULTILINE)


@dataclass(frozen=True)
class Pointer:
    oid: str  # sha256 of the content, hex
    size: int


def parse_pointer(data: bytes) -> Pointer | None:
    """The pointer `data` is, or None when it is not one."""
    if len(data) > MAX_POINTER_BYTES or not data.startswith(_VERSION):
        return None
    oid, size = _OID.search(data), _SIZE.search(data)
    if oid is None or size is None:
        return None
    return Pointer(oid.group(1).decode(), int(size.group(1)))


def pointer_text(content: bytes) -> bytes:
    """The pointer git-lfs writes for `content` (for tests and fixtures)."""
    digest = hashlib.sha256(content).hexdigest()
    return _VERSION + f"oid sha256:{digest}\nsize {len(content)}\n".encode()


def content_matches(path: Path, pointer: Pointer) -> bool:
    """Whether the regular file at `path` holds exactly the content `pointer` names."""
    try:
        if path.is_symlink() or path.stat().st_size != pointer.size:
            return False
        digest = hashlib.sha256()
        with open(path, "rb") as data:
            while chunk := data.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return False
    return digest.hexdigest() == pointer.oid
