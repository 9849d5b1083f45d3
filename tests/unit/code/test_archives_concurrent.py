"""The extractor's threads: the read-ahead of the (decompressed) stream and the writers of
small files. The tree must come out exactly as one thread would write it, every failure
must surface in the caller's thread, and no thread may outlive the extraction."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest

from builder.code import archives
from builder.code.archives import extract_tar
from builder.errors import DownloadError, UnsafeArchiveError
from tests.unit.code.test_archives import OneWay, hardlink, link, mode_of, regular, tar_bytes

MANY = 300


def many_files() -> bytes:
    members = [regular(f"top/d{n % 7}/f{n}.py", f"print({n})\n".encode() * (n % 50 + 1),
                       mode=0o755 if n % 3 == 0 else 0o644, mtime=1_500_000_000 + n)
               for n in range(MANY)]
    big = regular("top/big.bin", os.urandom(3 * archives._HANDED_OVER), mtime=1_400_000_000)
    return tar_bytes(*members, big, hardlink("top/copy.py", "top/d3/f10.py"),
                     link("top/latest", "d1/f1.py"))


def test_many_small_files_come_out_exactly(tmp_path: Path) -> None:
    before = threading.active_count()
    result = extract_tar(OneWay(many_files()), tmp_path, strip_components=1)
    assert (result.files, result.symlinks) == (MANY + 2, 1)
    for n in range(MANY):
        path = tmp_path / f"d{n % 7}" / f"f{n}.py"
        assert path.read_bytes() == f"print({n})\n".encode() * (n % 50 + 1)
        assert mode_of(path) == (0o755 if n % 3 == 0 else 0o644)
        assert path.stat().st_mtime == 1_500_000_000 + n
    assert (tmp_path / "copy.py").read_bytes() == (tmp_path / "d3" / "f10.py").read_bytes()
    assert (tmp_path / "big.bin").stat().st_size == 3 * archives._HANDED_OVER
    assert os.readlink(tmp_path / "latest") == "d1/f1.py"
    assert threading.active_count() == before


def test_a_writer_failure_is_raised_and_stops_the_extraction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def full_disk(path: str, flags: int, mode: int = 0o777) -> int:
        if path.endswith("f150.py"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_open(path, flags, mode)

    monkeypatch.setattr(archives.os, "open", full_disk)
    before = threading.active_count()
    with pytest.raises(DownloadError, match=r"cannot write archive member 'top/d3/f150.py': "
                                            r"No space left on device"):
        extract_tar(OneWay(many_files()), tmp_path, strip_components=1)
    assert threading.active_count() == before
    written = {path.name for path in tmp_path.rglob("*.py")}
    assert "f150.py" not in written and "f299.py" not in written


def test_a_refused_member_after_handed_over_files_leaves_no_writer_running(
    tmp_path: Path,
) -> None:
    members = [regular(f"top/f{n}.py", b"x\n") for n in range(50)]
    data = tar_bytes(*members, regular("/etc/evil", b"x"))
    before = threading.active_count()
    with pytest.raises(UnsafeArchiveError, match="absolute path"):
        extract_tar(OneWay(data), tmp_path, strip_components=1)
    assert threading.active_count() == before
    assert len(list(tmp_path.iterdir())) == 50  # all written before the refusal returned


class Broken:
    """A stream that fails after `good` bytes, as a connection that breaks."""

    def __init__(self, data: bytes, good: int) -> None:
        self._data, self._good, self._at = data, good, 0

    def read(self, size: int = -1) -> bytes:
        if self._at >= self._good:
            raise OSError("the connection broke off")
        size = min(size if size >= 0 else 1 << 16, self._good - self._at, 1 << 16)
        chunk = self._data[self._at:self._at + size]
        self._at += len(chunk)
        return chunk


def test_a_stream_failure_in_the_read_ahead_reaches_the_caller(tmp_path: Path) -> None:
    data = many_files()
    before = threading.active_count()
    with pytest.raises(DownloadError, match="archive is truncated or corrupt"):
        extract_tar(Broken(data, len(data) // 2), tmp_path, strip_components=1)
    assert threading.active_count() == before


def test_the_read_ahead_holds_a_bounded_amount(tmp_path: Path) -> None:
    """A consumer that stops early: the thread has read no more than its window."""
    served = {"bytes": 0}
    data = tar_bytes(*(regular(f"top/f{n}", os.urandom(100_000)) for n in range(400)),
                     compression="")

    class Counting(OneWay):
        def read(self, size: int = -1) -> bytes:
            chunk = super().read(size)
            served["bytes"] += len(chunk)
            return chunk

    ahead = archives._ReadAhead(Counting(data))  # type: ignore[arg-type]
    assert len(ahead.read(1000)) == 1000
    deadline = time.monotonic() + 10
    while not ahead._queue.full():  # the thread has run as far ahead as it may
        assert time.monotonic() < deadline, "the read-ahead never filled its window"
        threading.Event().wait(0.01)
    window = (archives._AHEAD_CHUNKS + 2) * archives._AHEAD_CHUNK
    assert served["bytes"] <= window < len(data)
    ahead.close()
    assert not ahead._thread.is_alive()
