"""Deterministic tar build contexts.

Entries are written in path order, parents before children, with a fixed mtime, uid and
gid 0, no user or group names, and normalised modes (0644, 0755 for executables and
directories). The same inputs therefore give the same bytes, and the engine's COPY gives
the same layer content.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from builder.errors import BuilderError

if TYPE_CHECKING:  # tarfile and tempfile load when a tar is written, not on every run's path
    import tarfile

# 1980-01-01T00:00:00Z: the earliest time a zip file can hold; any constant would do.
FIXED_MTIME = 315532800
# Directories that must keep their usual mode when a context lays files out from `/`.
STICKY_DIRECTORIES = ("tmp", "var/tmp", "dev/shm")
SPOOL_BYTES = 64 << 20
WHITEOUT_PREFIX = ".wh."


class Readable(Protocol):
    def read(self, size: int = -1) -> bytes: ...


#: Opens a member's content: (its size, a stream of exactly that many bytes).
Opener = Callable[[], tuple[int, Readable]]


@dataclass(frozen=True)
class _Member:
    name: str
    kind: str  # "dir", "bytes", "file", "stream", "symlink"
    mode: int
    data: bytes = b""
    source: str = ""
    oid: str = ""  # expected git blob id of source, checked while it is copied
    target: str = ""
    opener: Opener | None = None


class ContextBuilder:
    """Collects entries, then writes them as a deterministic tar."""

    def __init__(self) -> None:
        self._members: dict[str, _Member] = {}

    def add_bytes(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._add(_Member(_clean(name), "bytes", _file_mode(mode), data=data))

    def add_file(self, name: str, source: str | os.PathLike[str], *, executable: bool = False,
                 oid: str = "") -> None:
        """Add a file's content; if `oid` (its git blob id) is given, the content must still
        have it when it is copied."""
        mode = 0o755 if executable else 0o644
        self._add(_Member(_clean(name), "file", mode, source=os.fspath(source), oid=oid))

    def add_stream(self, name: str, opener: Opener, *, executable: bool = False) -> None:
        """Add content that `opener` gives when the tar is written (e.g. a git blob)."""
        self._add(_Member(_clean(name), "stream", 0o755 if executable else 0o644,
                          opener=opener))

    def add_whiteout(self, name: str) -> None:
        """Hide `name` of the layers below (OCI image spec: a `.wh.<name>` entry)."""
        parent, _, base = _clean(name).rpartition("/")
        self.add_bytes(f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else WHITEOUT_PREFIX + base,
                       b"")

    def add_directory(self, name: str, mode: int = 0o755) -> None:
        self._add(_Member(_clean(name), "dir", mode & 0o7777))

    def add_symlink(self, name: str, target: str) -> None:
        self._add(_Member(_clean(name), "symlink", 0o777, target=target))

    def add_rooted(self, prefix: str, absolute: str) -> str:
        """Declare `prefix` + the ancestors of an absolute path; return the entry prefix.

        Files added under the result are copied by `COPY ["<prefix>/", "/"]` to `absolute`
        (with an empty prefix, the tar is a layer whose root is `/`). Every ancestor is then
        in the layer with fixed metadata (0755, or 1777 for /tmp).
        """
        parts = [p for p in absolute.split("/") if p]
        base = [prefix] if prefix else []
        for index in range(1, len(parts) + 1):
            path = "/".join(parts[:index])
            name = "/".join([*base, path])
            if name not in self._members:
                mode = 0o1777 if path in STICKY_DIRECTORIES else 0o755
                self.add_directory(name, mode)
        return "/".join([*base, *parts])

    def add_tree(self, prefix: str, directory: Path) -> None:
        """Add every regular file under directory (no symlinks, no __pycache__)."""
        for path in sorted(directory.rglob("*")):
            rel = path.relative_to(directory)
            if "__pycache__" in rel.parts or not path.is_file() or path.is_symlink():
                continue
            executable = bool(path.stat().st_mode & stat.S_IXUSR)
            self.add_file(f"{prefix}/{rel.as_posix()}", path, executable=executable)

    def _add(self, member: _Member) -> None:
        if member.name in self._members:
            raise ValueError(f"build context entry {member.name!r} added twice")
        self._members[member.name] = member

    @property
    def names(self) -> list[str]:
        return sorted(self._members)

    def write(self, fileobj: IO[bytes]) -> None:
        members = dict(self._members)
        for name in list(members):
            parent = name.rpartition("/")[0]
            while parent and parent not in members:
                members[parent] = _Member(parent, "dir", 0o755)
                parent = parent.rpartition("/")[0]
        for name, member in members.items():
            if member.kind == "dir":
                continue
            parent = name.rpartition("/")[0]
            while parent:
                if members[parent].kind != "dir":
                    raise ValueError(f"build context entry {parent!r} is a file and a directory")
                parent = parent.rpartition("/")[0]
        import tarfile

        with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT,
                          encoding="utf-8", errors="surrogateescape") as tar:
            for name in sorted(members, key=_sort_key):
                _write_member(tar, members[name])

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        self.write(buffer)
        return buffer.getvalue()

    def to_file(self) -> IO[bytes]:
        """The tar in a spooled temporary file, rewound; the caller closes it."""
        return self.to_layer()[0]

    def to_layer(self) -> tuple[IO[bytes], str]:
        """The tar in a spooled temporary file, rewound, and its sha256 (`sha256:<hex>`, an
        image layer's diff id); the caller closes the file."""
        import tempfile

        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        try:
            writer = _HashingWriter(spool)  # type: ignore[arg-type]
            self.write(writer)  # type: ignore[arg-type]
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        return spool, "sha256:" + writer.digest.hexdigest()  # type: ignore[return-value]


def context_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sort_key(name: str) -> tuple[str, ...]:
    return tuple(name.split("/"))


def _clean(name: str) -> str:
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"invalid build context entry name {name!r}")
    return "/".join(parts)


def _file_mode(mode: int) -> int:
    return 0o755 if mode & 0o111 else 0o644


def _info(member: _Member, kind: bytes, size: int = 0) -> tarfile.TarInfo:
    import tarfile

    info = tarfile.TarInfo(member.name)
    info.type = kind
    info.mode = member.mode
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.size = size
    return info


def _write_member(tar: tarfile.TarFile, member: _Member) -> None:
    import tarfile

    if member.kind == "dir":
        tar.addfile(_info(member, tarfile.DIRTYPE))
    elif member.kind == "symlink":
        info = _info(member, tarfile.SYMTYPE)
        info.linkname = member.target
        tar.addfile(info)
    elif member.kind == "bytes":
        tar.addfile(_info(member, tarfile.REGTYPE, len(member.data)), io.BytesIO(member.data))
    elif member.kind == "stream":
        assert member.opener is not None
        size, stream = member.opener()
        tar.addfile(_info(member, tarfile.REGTYPE, size), stream)
    else:
        _write_file(tar, member)


def _write_file(tar: tarfile.TarFile, member: _Member) -> None:
    import tarfile

    try:
        handle = open(member.source, "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise BuilderError(f"{member.source}: disappeared before it was sent; try again") from None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        reader = _HashingReader(handle, size, len(member.oid)) if member.oid else handle
        try:
            tar.addfile(_info(member, tarfile.REGTYPE, size), reader)
        except tarfile.ReadError:
            raise BuilderError(f"{member.source}: changed while it was sent; try again") from None
        if handle.read(1):
            raise BuilderError(f"{member.source}: changed while it was being sent; try again")
    if isinstance(reader, _HashingReader) and reader.hexdigest() != member.oid:
        raise BuilderError(f"{member.source}: changed while it was being sent; try again")


class _HashingWriter:
    """A file wrapper that hashes what is written through it."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self._handle.write(data)


class _HashingReader:
    """A file wrapper that computes the git blob id of what tarfile reads through it."""

    def __init__(self, handle: IO[bytes], size: int, oid_length: int) -> None:
        self._handle = handle
        algorithm = "sha256" if oid_length == 64 else "sha1"
        self._digest = hashlib.new(algorithm, b"blob %d\0" % size)

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._digest.update(data)
        return data

    def hexdigest(self) -> str:
        return self._digest.hexdigest()
