"""Safe archive extraction: the one implementation behind every code download.

`extract_tar` reads a tar stream (plain, gzip, bzip2 or xz; an HTTP response body will do, as
nothing seeks) and writes each member itself, so it does not depend on `tarfile`'s extraction
filters, which Python 3.11.2 and older 3.10/3.11 builds lack. `extract_zip` does the same for
a zip file. Both run every member through the same checks:

- a name must be relative and free of `..`; `./a`, `a//b` and `a` name the same path, and a
  second member at a path already used is refused (directories may repeat). Names are
  compared exactly, so `README` and `readme` are two files, as on Linux;
- nothing is written through a symlink or a file: a member below a path that is a symlink or
  a file is refused. Symlinks are created last, after every target has been checked against
  all the others: a target must stay inside the destination when resolved from the link's
  own directory, following the archive's other links; absolute targets are outside;
- a hard link must name an earlier regular file of the extracted tree; it becomes a copy;
- devices, fifos and other member types are refused anywhere in the archive;
- files get mode 0o755 when any execute bit is set and 0o644 otherwise, directories 0o755:
  never setuid, setgid or sticky, never another owner. Files and links keep their mtime;
- `Limits` caps the member count, each member's size and the total, counting bytes as they
  are written, so a member that lies about its size is stopped too.

A stream that ends early or is damaged raises `DownloadError` ("archive is truncated or
corrupt: ..."): the tar must end with its end-of-archive block and a compressed stream must end
with its own end marker and checksum, which `tarfile`'s stream mode does not check.

The destination must be an empty directory that the caller made. On error, whatever was
already written stays there: callers extract into `builder.state.atomic.staged_directory`, which
removes it, so a partial tree never appears at the real destination.

An extraction works as `curl | tar -xz` does, several things at once: a thread reads and
decompresses the stream a few chunks ahead (`_ReadAhead`), and small files are created and
written by a few threads (`_Writers`), while the caller's thread parses and checks members
in order. Memory stays bounded (a few MiB) whatever the archive's size, and no thread
outlives the call: it waits for them, and a failure in one is raised in the caller's thread.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import lzma
import os
import queue
import stat
import tarfile
import threading
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, cast

from builder.errors import DownloadError, NotFoundError, UnsafeArchiveError

GiB = 1 << 30
_CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE
_WINDOW = 1 << 16
_MAX_TRAILER = 1 << 20
_MAX_SYMLINK_HOPS = 40
_MAX_LINK_TARGET = 4096
_MAX_HEADER_BYTES = 1 << 20
_AHEAD_CHUNK = 1 << 18
_AHEAD_CHUNKS = 8  # at most 2 MiB read ahead: the memory stays flat in the archive's size
_WRITERS = 4
_HANDED_OVER = 1 << 20  # files up to this size are written by the writer threads
_IN_FLIGHT = 8 << 20  # at most this many bytes wait for them
_HEADER_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                 tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

_CORRUPT: tuple[type[Exception], ...] = (
    tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError,
)
# zipfile raises NotImplementedError for a compression method it does not know.
_CORRUPT_OR_UNKNOWN: tuple[type[Exception], ...] = (*_CORRUPT, NotImplementedError)


class Readable(Protocol):
    """Anything with `read(size)`: a file, a pipe, an HTTP response body."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class Limits:
    """Upper bounds for one extraction."""

    max_total_bytes: int = 4 * GiB
    max_members: int = 500_000
    max_member_bytes: int = 2 * GiB


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class ExtractResult:
    """What an extraction wrote: regular files (hard links included), their bytes, symlinks
    and directories (explicit or implied by a member's path, the destination not counted)."""

    files: int
    bytes: int
    symlinks: int
    directories: int


#: What an extraction wrote, path by path (see `_Tree`): kind, and the file's sha256 (hex), the
#: symlink's target, or nothing for a directory.
Written = dict[str, tuple[str, "bytes | str"]]


def extract_tar(stream: Readable, destination: Path, *, strip_components: int = 0,
                subdirectory: str = "", limits: Limits = DEFAULT_LIMITS,
                mirror: Path | None = None, written: Written | None = None) -> ExtractResult:
    """Extract a tar stream into the empty directory `destination`.

    `strip_components` leading path components are dropped from every member, which must
    have them (GitHub's `owner-repo-sha/` folder). Then, when `subdirectory` is set, only the
    members below it are kept, with it dropped; `NotFoundError` when the archive has none.
    With `mirror` (another empty directory), the same tree is written there too, from the
    same data. `written`, if given, receives every entry written with its content's digest,
    so that the tree need not be read back to be described (`builder.code.files`).
    """
    layout = _Layout(strip_components, subdirectory)
    tree = _Tree(Path(destination), limits, writers=_WRITERS, mirror=mirror, written=written)
    ahead: _ReadAhead | None = None
    try:
        ahead = _ReadAhead(_decompressed(_Source(stream)))
        data = _TarStream(cast(BinaryIO, ahead))
        with tarfile.open(fileobj=cast(BinaryIO, data), mode="r|",
                          tarinfo=_BoundedTarInfo) as archive:
            while (member := archive.next()) is not None:
                tree.count_member(member.name)
                _add_tar_member(tree, layout, archive, member)
                archive.members.clear()  # type: ignore[attr-defined]  # tarfile keeps them all
            data.require_end_marker(archive.offset)
        data.drain()
        return _finish(tree, layout)
    except _CORRUPT as exc:
        raise _corrupt(exc) from exc
    finally:
        tree.close()
        if ahead is not None:
            ahead.close()


def extract_zip(archive: Path | BinaryIO, destination: Path, *, strip_components: int = 0,
                subdirectory: str = "", limits: Limits = DEFAULT_LIMITS) -> ExtractResult:
    """Extract a zip file (a path or a seekable binary file) like `extract_tar`."""
    layout = _Layout(strip_components, subdirectory)
    tree = _Tree(Path(destination), limits, writers=_WRITERS)
    try:
        with zipfile.ZipFile(archive) as bundle:
            for info in bundle.infolist():
                tree.count_member(info.filename)
                _add_zip_member(tree, layout, bundle, info)
        return _finish(tree, layout)
    except _CORRUPT_OR_UNKNOWN as exc:
        raise _corrupt(exc) from exc
    finally:
        tree.close()


class TreeWriter:
    """Write a tree member by member from a listing, not an archive, with the same checks.

    For the incremental update of a cached tree: new files arrive as data, unchanged ones come
    from the previous tree of the same repository. That tree is a cache entry, which is never
    written to once made, so its files are hard-linked (copied across file systems).
    """

    def __init__(self, destination: Path, limits: Limits = DEFAULT_LIMITS) -> None:
        self._tree = _Tree(Path(destination), limits)
        self._layout = _Layout(0, "")

    def _place(self, name: str) -> tuple[str, ...]:
        self._tree.count_member(name)
        parts = self._layout.place(name, is_dir=False)
        if not parts:
            raise UnsafeArchiveError(f"tree entry {name!r} has no name")
        return parts

    def file(self, name: str, mode: int, data: bytes) -> None:
        chunks = iter((data, b""))
        self._tree.add_file(self._place(name), name, mode=mode, size=len(data),
                            mtime=time.time(), read=lambda: next(chunks))

    def symlink(self, name: str, target: str) -> None:
        self._tree.add_symlink(self._place(name), name, target, time.time())

    def existing(self, name: str, source: Path) -> None:
        """The regular file or symlink at `source` (a cache entry), linked or copied."""
        parts = self._place(name)
        info = os.lstat(source)
        if stat.S_ISLNK(info.st_mode):
            self._tree.add_symlink(parts, name, os.readlink(source), info.st_mtime)
        elif stat.S_ISREG(info.st_mode):
            self._tree.add_existing(parts, name, source, info)
        else:
            raise UnsafeArchiveError(f"{source} is neither a file nor a symlink")

    def finish(self) -> ExtractResult:
        return self._tree.finish()


def _corrupt(exc: BaseException, name: str | None = None) -> DownloadError:
    where = f" (at member {name!r})" if name is not None else ""
    reason = str(exc) or type(exc).__name__
    return DownloadError(f"archive is truncated or corrupt{where}: {reason}")


def _finish(tree: _Tree, layout: _Layout) -> ExtractResult:
    if layout.subdirectory and not layout.matched:
        raise NotFoundError(f"the archive has nothing under {layout.subdirectory!r}")
    return tree.finish()


class _Source:
    """The raw stream; bytes peeked at come first, and a failed read is a corrupt archive."""

    def __init__(self, raw: Readable) -> None:
        self._raw = raw
        self._pending = b""
        while len(self._pending) < 6:
            chunk = self._read_raw(6 - len(self._pending))
            if not chunk:
                break
            self._pending += chunk
        self.head = self._pending

    def _read_raw(self, size: int) -> bytes:
        try:
            return self._raw.read(size) or b""
        except _CORRUPT:
            raise
        except Exception as exc:
            raise _corrupt(exc) from exc

    def read(self, size: int = -1) -> bytes:
        if not self._pending:
            return self._read_raw(size)
        if size < 0:
            data, self._pending = self._pending + self._read_raw(-1), b""
            return data
        data, self._pending = self._pending[:size], self._pending[size:]
        return data


def _decompressed(source: _Source) -> BinaryIO:
    """A reader of the uncompressed bytes, by the stream's magic number."""
    raw = cast(BinaryIO, source)
    if source.head.startswith(b"\x1f\x8b"):
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb"))
    if source.head.startswith(b"BZh"):
        return cast(BinaryIO, bz2.BZ2File(raw, mode="rb"))
    if source.head.startswith(b"\xfd7zXZ\x00"):
        return cast(BinaryIO, lzma.LZMAFile(raw, mode="rb"))
    return raw


class _ReadAhead:
    """Reads its source in a thread of its own, a few chunks ahead of the consumer.

    The network, the decompression (zlib lets go of the GIL) and the writing of files (system
    calls, which let go of it too) then overlap, as the processes of `curl | tar -xz` do. At
    most `_AHEAD_CHUNKS` chunks wait. A failure in the thread is raised to the consumer, as it
    was raised there, at the read where its data would have been.
    """

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(_AHEAD_CHUNKS)
        self._stop = threading.Event()
        self._view = memoryview(b"")
        self._failure: BaseException | None = None
        self._ended = False
        self._thread = threading.Thread(target=self._run, name="builder-read-ahead",
                                         daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self._source.read(_AHEAD_CHUNK)
                self._put(chunk)
                if not chunk:
                    return
        except BaseException as exc:  # raised again in the consumer's thread
            self._put(exc)

    def _put(self, item: bytes | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _next(self) -> bool:
        """Take the next chunk; False at the end. Raises the reader's failure."""
        if self._failure is not None:
            raise self._failure
        if self._ended:
            return False
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._failure = item
            raise item
        if not item:
            self._ended = True
            return False
        self._view = memoryview(item)
        return True

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        wanted = size if size >= 0 else -1
        while wanted != 0:
            if not self._view and not self._next():
                break
            take = len(self._view) if wanted < 0 else min(wanted, len(self._view))
            parts.append(bytes(self._view[:take]))
            self._view = self._view[take:]
            if wanted > 0:
                wanted -= take
        return b"".join(parts)

    def close(self) -> None:
        """Stop the thread (its source's owner closes the connection under it, if need be)."""
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._thread.join(timeout=0.2)


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses a huge long-name or pax header, which `tarfile` would read into memory whole."""

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _HEADER_TYPES and self.size > _MAX_HEADER_BYTES:
            raise UnsafeArchiveError(
                f"archive has an extended header of {self.size} bytes "
                f"(more than {_MAX_HEADER_BYTES}) at byte {self.offset}"
            )
        member: tarfile.TarInfo = super()._proc_member(archive)  # type: ignore[misc]
        return member


class _TarStream:
    """Uncompressed tar bytes for `tarfile`, keeping the latest ones for the end-marker check.

    `tarfile` ends its iteration without an error when the data stops at a header boundary or
    a header is damaged, so the caller checks that an all-zero block sits where it stopped.
    """

    def __init__(self, data: BinaryIO) -> None:
        self._data = data
        self._position = 0
        self._recent = bytearray()

    def read(self, size: int = -1) -> bytes:
        chunk = self._data.read(size)
        self._position += len(chunk)
        self._recent += chunk
        if len(self._recent) > 2 * _WINDOW:
            del self._recent[:-_WINDOW]
        return chunk

    def require_end_marker(self, offset: int) -> None:
        while self._position < offset + _BLOCK and self.read(_BLOCK):
            pass
        start = offset - (self._position - len(self._recent))
        block = bytes(self._recent[start:start + _BLOCK]) if start >= 0 else b""
        if len(block) < _BLOCK or block.count(0) != _BLOCK:
            raise DownloadError(
                f"archive is truncated or corrupt: no valid member or end-of-archive block "
                f"at byte {offset}"
            )

    def drain(self) -> None:
        """Read to the end, so that a compressed stream's end marker and checksum are checked."""
        trailing = 0
        while chunk := self._data.read(1 << 16):
            trailing += len(chunk)
            if trailing > _MAX_TRAILER:
                raise DownloadError(
                    "archive is truncated or corrupt: more than 1 MiB of data after its end"
                )


class _Layout:
    """Maps member names to paths below the destination (strip_components, subdirectory)."""

    def __init__(self, strip_components: int, subdirectory: str) -> None:
        if strip_components < 0:
            raise ValueError("strip_components must not be negative")
        parts = tuple(part for part in subdirectory.split("/") if part not in ("", "."))
        if subdirectory.startswith("/") or ".." in parts:
            raise ValueError(f"subdirectory must be a relative path: {subdirectory!r}")
        self._strip = strip_components
        self._subdirectory = parts
        self.subdirectory = "/".join(parts)
        self.matched = False

    def place(self, name: str, *, is_dir: bool) -> tuple[str, ...] | None:
        """The member's path parts below the destination; None for a member to skip."""
        if name.startswith("/"):
            raise UnsafeArchiveError(f"archive member {name!r} has an absolute path")
        if "\0" in name:
            raise UnsafeArchiveError(f"archive member {name!r} has a NUL character in its name")
        parts = [part for part in name.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise UnsafeArchiveError(f"archive member {name!r} has a '..' component")
        if len(parts) <= self._strip and not is_dir:
            raise UnsafeArchiveError(
                f"archive member {name!r} is not inside the archive's top "
                f"{self._strip} director{'y' if self._strip == 1 else 'ies'}"
            )
        depth = self._strip + len(self._subdirectory)
        if tuple(parts[self._strip:depth]) != self._subdirectory or len(parts) < depth:
            return None
        self.matched = True
        if len(parts) == depth:
            if not is_dir:
                raise UnsafeArchiveError(
                    f"archive member {name!r} is where the extracted directory should be"
                )
            return None
        return tuple(parts[depth:])


def _file_mode(mode: int) -> int:
    return 0o755 if mode & 0o111 else 0o644


class _Tree:
    """The extracted tree: writes members after checking them against what it wrote before.

    Every path it creates is recorded with its kind, so the checks never look at the file
    system, and the file system holds exactly what is recorded (the destination starts empty).
    """

    def __init__(self, root: Path, limits: Limits, writers: int = 0,
                 mirror: Path | None = None, written: Written | None = None) -> None:
        for destination in (root, mirror) if mirror is not None else (root,):
            if not destination.is_dir():
                raise ValueError(f"extraction destination is not a directory: {destination}")
            if any(destination.iterdir()):
                raise ValueError(f"extraction destination is not empty: {destination}")
        self._root = str(root)
        # A mirror receives the same tree, written from the same data (no second read).
        self._roots = (self._root, str(mirror)) if mirror is not None else (self._root,)
        self._limits = limits
        self._writers = _Writers(writers) if writers > 0 else None
        self._written = written
        self._kinds: dict[str, str] = {}
        self._symlinks: dict[str, tuple[str, str, float]] = {}
        self._members = 0
        self._files = 0
        self._bytes = 0
        self._directories = 0

    def count_member(self, name: str) -> None:
        self._members += 1
        if self._members > self._limits.max_members:
            raise UnsafeArchiveError(
                f"archive has more than {self._limits.max_members} members (at {name!r})"
            )

    def add_directory(self, parts: tuple[str, ...], name: str) -> None:
        path = self._claim(parts, name, "directory")
        if path not in self._kinds:
            self._mkdir(path, name)

    def add_file(self, parts: tuple[str, ...], name: str, *, mode: int, size: int,
                 mtime: float, read: Callable[[], bytes]) -> None:
        """Write a regular file; `read` returns its data a chunk at a time, b"" at the end."""
        path = self._claim(parts, name, "file")
        self._check_size(name, size)
        kind = "exec" if _file_mode(mode) & 0o100 else "file"
        if self._writers is not None and size <= _HANDED_OVER:
            chunks: list[bytes] = []
            self._copy(name, read, chunks.append)
            data = b"".join(chunks)
            written = self._written
            # The writer thread hashes it: here, each hash would hand the GIL over and wait
            # to get it back from the writers, once per file.
            note = (None if written is None else
                    lambda digest: written.__setitem__(path, (kind, digest)))
            for index, full in enumerate(self._fulls(path)):
                self._writers.submit(full, name, data, _file_mode(mode), mtime,
                                     note if index == 0 else None)
            self._kinds[path] = "file"
            self._files += 1
            return
        digest = hashlib.sha256() if self._written is not None else None
        with self._writing(name), contextlib.ExitStack() as stack:
            outs = [stack.enter_context(open(os.open(full, _OPEN_NEW, 0o600), "wb"))
                    for full in self._fulls(path)]
            sinks = [out.write for out in outs] + ([digest.update] if digest else [])
            self._copy(name, read, lambda chunk: [sink(chunk) for sink in sinks])
            for out in outs:
                os.fchmod(out.fileno(), _file_mode(mode))
        for full in self._fulls(path):
            self._set_mtime(full, mtime)
        if self._written is not None and digest is not None:
            self._written[path] = (kind, digest.hexdigest().encode())
        self._kinds[path] = "file"
        self._files += 1

    def add_existing(self, parts: tuple[str, ...], name: str, source: Path,
                     info: os.stat_result) -> None:
        """A regular file from outside the tree that nobody writes to: a hard link to it."""
        path = self._claim(parts, name, "file")
        self._check_size(name, info.st_size)
        full = self._full(path)
        try:
            os.link(source, full, follow_symlinks=False)
        except OSError:
            with open(source, "rb") as data:
                self.add_file(parts, name, mode=info.st_mode, size=info.st_size,
                              mtime=info.st_mtime, read=lambda: data.read(_CHUNK))
            return
        self._bytes += info.st_size
        self._kinds[path] = "file"
        self._files += 1

    def add_hardlink(self, parts: tuple[str, ...], name: str,
                     target_parts: tuple[str, ...], target_name: str) -> None:
        target = "/".join(target_parts)
        if self._writers is not None:
            self._writers.wait()  # the target must be written before it is read
        if self._kinds.get(target) != "file":
            raise UnsafeArchiveError(
                f"hard link {name!r} points to {target_name!r}, "
                f"which is not an earlier regular file of the extracted tree"
            )
        with self._writing(name), open(
            os.open(self._full(target), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb"
        ) as source:
            status = os.fstat(source.fileno())
            self.add_file(parts, name, mode=status.st_mode, size=status.st_size,
                          mtime=status.st_mtime, read=lambda: source.read(_CHUNK))

    def add_symlink(self, parts: tuple[str, ...], name: str, target: str, mtime: float) -> None:
        path = self._claim(parts, name, "symlink")
        if not target or "\0" in target or len(target) > _MAX_LINK_TARGET:
            raise UnsafeArchiveError(f"symlink {name!r} has an invalid target {target!r}")
        self._kinds[path] = "symlink"
        self._symlinks[path] = (target, name, mtime)
        if self._written is not None:
            self._written[path] = ("symlink", target)

    def finish(self) -> ExtractResult:
        """Wait for the files, check every symlink against the whole tree, then create them."""
        if self._writers is not None:
            self._writers.wait()
        for path, (target, name, _) in self._symlinks.items():
            if self._escapes(path, target):
                raise UnsafeArchiveError(
                    f"symlink {name!r} -> {target!r} points outside the extracted tree"
                )
        for path, (target, name, mtime) in self._symlinks.items():
            for full in self._fulls(path):
                with self._writing(name):
                    os.symlink(target, full)
                self._set_mtime(full, mtime)
        return ExtractResult(files=self._files, bytes=self._bytes,
                             symlinks=len(self._symlinks), directories=self._directories)

    def _claim(self, parts: tuple[str, ...], name: str, kind: str) -> str:
        """Check that `parts` is a free path below directories only; create missing parents."""
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            existing = self._kinds.get(parent)
            if existing is None:
                self._mkdir(parent, name)
            elif existing != "directory":
                raise UnsafeArchiveError(
                    f"archive member {name!r} would be written through the {existing} {parent!r}"
                )
        path = "/".join(parts)
        existing = self._kinds.get(path)
        if existing is not None and not existing == kind == "directory":
            raise UnsafeArchiveError(
                f"archive member {name!r} collides with an earlier {existing} at {path!r}"
            )
        return path

    def _mkdir(self, path: str, name: str) -> None:
        for full in self._fulls(path):
            with self._writing(name):
                os.mkdir(full, 0o755)
                os.chmod(full, 0o755)
        self._kinds[path] = "directory"
        if self._written is not None:
            self._written[path] = ("dir", b"")
        self._directories += 1

    def _check_size(self, name: str, size: int) -> None:
        if size > self._limits.max_member_bytes:
            raise self._too_large(name)
        if self._bytes + size > self._limits.max_total_bytes:
            raise self._too_large_in_total(name)

    def close(self) -> None:
        """Stop the writer threads once they are done: nothing is written after this."""
        if self._writers is not None:
            self._writers.close()

    def _copy(self, name: str, read: Callable[[], bytes], out: Callable[[bytes], object]) -> None:
        """Pass the data of `read` to `out` a chunk at a time, within the limits."""
        written = 0
        while chunk := read():
            written += len(chunk)
            self._bytes += len(chunk)
            if written > self._limits.max_member_bytes:
                raise self._too_large(name)
            if self._bytes > self._limits.max_total_bytes:
                raise self._too_large_in_total(name)
            out(chunk)

    def _too_large(self, name: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(
            f"archive member {name!r} is larger than the limit of "
            f"{self._limits.max_member_bytes} bytes"
        )

    def _too_large_in_total(self, name: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(
            f"archive unpacks to more than the limit of {self._limits.max_total_bytes} bytes "
            f"(at {name!r})"
        )

    def _escapes(self, path: str, target: str) -> bool:
        """Whether `target`, read from the directory of the link at `path`, leaves the tree.

        The archive's own links are followed; a chain that never ends (a loop) resolves to
        nothing, so it cannot point outside.
        """
        if target.startswith("/"):
            return True
        stack = path.split("/")[:-1]
        pending = deque(target.split("/"))
        hops = 0
        while pending:
            part = pending.popleft()
            if part in ("", "."):
                continue
            if part == "..":
                if not stack:
                    return True
                stack.pop()
                continue
            stack.append(part)
            link = self._symlinks.get("/".join(stack))
            if link is None:
                continue
            hops += 1
            if hops > _MAX_SYMLINK_HOPS:
                return False
            if link[0].startswith("/"):
                return True
            stack.pop()
            pending.extendleft(reversed(link[0].split("/")))
        return False

    def _full(self, path: str) -> str:
        return os.path.join(self._root, path)

    def _fulls(self, path: str) -> list[str]:
        """The path in the destination and in its mirror, if any."""
        return [os.path.join(root, path) for root in self._roots]

    @staticmethod
    @contextlib.contextmanager
    def _writing(name: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise DownloadError(
                f"cannot write archive member {name!r}: {exc.strerror or exc}"
            ) from exc

    @staticmethod
    def _set_mtime(full: str, mtime: float) -> None:
        with contextlib.suppress(OSError, OverflowError, ValueError):
            os.utime(full, (mtime, mtime), follow_symlinks=False)


_Job = tuple[str, str, bytes, int, float, "Callable[[bytes], object] | None"]


class _Writers:
    """Threads that write the small files of an extraction, while it reads on.

    Creating a file can cost far more than writing it: on this project's test VM, 300 to
    600 microseconds of kernel time on ext4, where Docker keeps its volumes. The archive is
    read in order, one member after another; only the creation and writing of each small file
    is handed over, so several happen at once. The extraction waits for them before it reads
    a file back (a hard link), before it makes symlinks, and before it returns; the first
    failure is raised there, or at the next file handed over. At most `_IN_FLIGHT` bytes wait.
    """

    def __init__(self, count: int) -> None:
        self._count = count
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._pending = 0
        self._waiting_bytes = 0
        self._error: BaseException | None = None
        self._threads: list[threading.Thread] = []

    def submit(self, full: str, name: str, data: bytes, mode: int, mtime: float,
               note: Callable[[bytes], object] | None = None) -> None:
        """Have `data` written to `full`; `note`, if given, gets its sha256 (hex) once
        written."""
        with self._cond:
            while self._waiting_bytes and self._waiting_bytes + len(data) > _IN_FLIGHT:
                self._cond.wait()
            self._raise_error()
            self._pending += 1
            self._waiting_bytes += len(data)
        if len(self._threads) < self._count:
            thread = threading.Thread(target=self._run, name="builder-writer", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._queue.put((full, name, data, mode, mtime, note))

    def wait(self) -> None:
        """Until every file handed over is written; raises the first failure."""
        with self._cond:
            while self._pending:
                self._cond.wait()
            self._raise_error()

    def close(self) -> None:
        with self._cond:
            while self._pending:
                self._cond.wait()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            full, name, data, mode, mtime, note = item
            try:
                with self._cond:
                    failed = self._error is not None
                if not failed:  # after a failure the extraction stops: write nothing more
                    _write_new(full, name, data, mode, mtime)
                    if note is not None:
                        note(hashlib.sha256(data).hexdigest().encode())
            except BaseException as exc:  # raised again in the extraction's thread
                with self._cond:
                    self._error = self._error or exc
            finally:
                with self._cond:
                    self._pending -= 1
                    self._waiting_bytes -= len(data)
                    self._cond.notify_all()


def _write_new(full: str, name: str, data: bytes, mode: int, mtime: float) -> None:
    """Create the file `full` (it must not exist) with `data`, `mode` and `mtime`."""
    try:
        fd = os.open(full, _OPEN_NEW, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
            with contextlib.suppress(OSError, OverflowError, ValueError):
                os.utime(fd, (mtime, mtime))
        finally:
            os.close(fd)
    except OSError as exc:
        raise DownloadError(f"cannot write archive member {name!r}: {exc.strerror or exc}") from exc


def _reader(data: BinaryIO, name: str) -> Callable[[], bytes]:
    """A chunk reader of member data whose failures report a corrupt archive."""

    def read() -> bytes:
        try:
            return data.read(_CHUNK)
        except _CORRUPT_OR_UNKNOWN as exc:
            raise _corrupt(exc, name) from exc

    return read


def _refuse_type(name: str, description: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"archive member {name!r} is a {description}, which is not allowed")


def _add_tar_member(tree: _Tree, layout: _Layout, archive: tarfile.TarFile,
                    member: tarfile.TarInfo) -> None:
    name = member.name
    if member.ischr() or member.isblk():
        raise _refuse_type(name, "device")
    if member.isfifo():
        raise _refuse_type(name, "fifo")
    if not (member.isdir() or member.isreg() or member.issym() or member.islnk()):
        raise _refuse_type(name, f"member of tar type {member.type!r}")
    parts = layout.place(name, is_dir=member.isdir())
    if parts is None:
        return
    if member.isdir():
        tree.add_directory(parts, name)
    elif member.issym():
        tree.add_symlink(parts, name, member.linkname, member.mtime)
    elif member.islnk():
        tree.add_hardlink(parts, name, _hardlink_target(layout, member), member.linkname)
    else:
        data = archive.extractfile(member)
        if data is None:
            raise _refuse_type(name, f"member of tar type {member.type!r}")
        tree.add_file(parts, name, mode=member.mode, size=member.size, mtime=member.mtime,
                      read=_reader(cast(BinaryIO, data), name))


def _hardlink_target(layout: _Layout, member: tarfile.TarInfo) -> tuple[str, ...]:
    try:
        target = layout.place(member.linkname, is_dir=False)
    except UnsafeArchiveError as exc:
        raise UnsafeArchiveError(f"hard link {member.name!r}: {exc}") from None
    if target is None:
        raise UnsafeArchiveError(
            f"hard link {member.name!r} points to {member.linkname!r}, "
            f"outside the extracted tree"
        )
    return target


def _add_zip_member(tree: _Tree, layout: _Layout, bundle: zipfile.ZipFile,
                    info: zipfile.ZipInfo) -> None:
    name = info.filename
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    is_dir = info.is_dir() or kind == stat.S_IFDIR
    if not is_dir and kind not in (0, stat.S_IFREG, stat.S_IFLNK):
        raise _refuse_type(name, "device, fifo or socket")
    if info.flag_bits & 0x1:
        raise DownloadError(f"archive member {name!r} is encrypted")
    parts = layout.place(name, is_dir=is_dir)
    if parts is None:
        return
    if is_dir:
        tree.add_directory(parts, name)
        return
    mtime = time.mktime((*info.date_time, 0, 0, -1))
    with bundle.open(info) as data:
        if kind == stat.S_IFLNK:
            target = data.read(_MAX_LINK_TARGET + 1).decode("utf-8", errors="surrogateescape")
            tree.add_symlink(parts, name, target, mtime)
        else:
            tree.add_file(parts, name, mode=mode, size=info.file_size, mtime=mtime,
                          read=_reader(cast(BinaryIO, data), name))
