"""Safe extraction: malicious, broken and ordinary archives, all generated here."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import random
import stat
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from builder.code.archives import (
    ExtractResult,
    Limits,
    _Tree,
    extract_tar,
    extract_zip,
)
from builder.errors import DownloadError, NotFoundError, UnsafeArchiveError

Member = tuple[tarfile.TarInfo, bytes | None]


def regular(name: str, data: bytes = b"data\n", mode: int = 0o644, mtime: int = 1_600_000_000
            ) -> Member:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, mtime
    return info, data


def directory(name: str, mode: int = 0o755) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    return info, None


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, target, 0o777
    return info, None


def hardlink(name: str, target: str) -> Member:
    return link(name, target, tarfile.LNKTYPE)


def special(name: str, kind: bytes) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = kind, 1, 3
    return info, None


def tar_bytes(*members: Member, compression: str = "gz", fmt: int = tarfile.PAX_FORMAT,
              pax_headers: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt, pax_headers=pax_headers) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buffer.getvalue()
    compressors: dict[str, Callable[[bytes], bytes]] = {
        "": lambda data: data,
        "gz": lambda data: gzip.compress(data, mtime=0),
        "bz2": bz2.compress,
        "xz": lzma.compress,
    }
    return compressors[compression](raw)


class OneWay:
    """A stream that cannot seek and returns at most `step` bytes a read, like a socket."""

    def __init__(self, data: bytes, step: int = 1 << 16) -> None:
        self._buffer = io.BytesIO(data)
        self._step = step

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self._step:
            size = self._step
        return self._buffer.read(size)


@dataclass
class Sandbox:
    """A parent directory holding the destination and an `outside` directory to attack."""

    root: Path
    destination: Path = field(init=False)

    def __post_init__(self) -> None:
        self.destination = self.root / "dest"
        self.destination.mkdir(parents=True)
        (self.root / "outside").mkdir()
        (self.root / "outside" / "secret.txt").write_text("secret\n")

    def outside_snapshot(self) -> set[tuple[str, int, int, int]]:
        found = set()
        for folder, dirs, files in os.walk(self.root):
            for name in dirs + files:
                path = Path(folder, name)
                if path == self.destination or self.destination in path.parents:
                    continue
                status = path.lstat()
                found.add((str(path), status.st_mode, status.st_size, status.st_mtime_ns))
        return found

    def extract(self, data: bytes, **options: Any) -> ExtractResult:
        return extract_tar(OneWay(data), self.destination, **options)

    def tree(self) -> dict[str, str]:
        """Everything below the destination: path -> "dir", "link:<target>" or the content."""
        found: dict[str, str] = {}
        for folder, dirs, files in os.walk(self.destination):
            for name in dirs + files:
                path = Path(folder, name)
                relative = path.relative_to(self.destination).as_posix()
                if path.is_symlink():
                    found[relative] = "link:" + os.readlink(path)
                elif path.is_dir():
                    found[relative] = "dir"
                else:
                    found[relative] = path.read_text()
        return found


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path / "sandbox")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# ---------------------------------------------------------------- malicious archives

S = "{sandbox}"  # replaced by the sandbox's absolute path

MALICIOUS: list[tuple[str, list[Member], str, dict[str, object]]] = [
    ("traversal", [regular("../escaped.txt")], "../escaped.txt", {}),
    ("traversal-nested", [regular("a/../../escaped.txt")], "a/../../escaped.txt", {}),
    ("traversal-harmless-looking", [regular("a/../b.txt")], "a/../b.txt", {}),
    ("traversal-into-outside", [regular("../outside/secret.txt", b"pwned")],
     "../outside/secret.txt", {}),
    ("traversal-after-strip", [regular("top/../../escaped.txt")], "top/../../escaped.txt",
     {"strip_components": 1}),
    ("absolute-path", [regular(f"{S}/outside/abs.txt")], "/outside/abs.txt", {}),
    ("absolute-dir", [directory(f"{S}/outside/newdir")], "/outside/newdir", {}),
    ("symlink-absolute-target", [link("l", f"{S}/outside")], "'l'", {}),
    ("symlink-dotdot-target", [link("l", "../..")], "'l'", {}),
    ("symlink-nested-dotdot", [directory("d"), link("d/l", "../../outside")], "'d/l'", {}),
    ("symlink-chain-escape",
     [directory("deep/dir"), link("deep/dir/up", "../.."), link("z", "deep/dir/up/..")],
     "'z'", {}),
    ("symlink-chain-through-later-link",
     [link("a", "b/.."), directory("deep/dir"), link("deep/dir/up", "../.."),
      link("b", "deep/dir/up")], "'a'", {}),
    ("symlink-via-link-to-link", [link("l1", "l2/x"), link("l2", "..")], "l2", {}),
    ("file-through-escaping-link",
     [link("l", f"{S}/outside"), regular("l/pwned.txt", b"pwned")], "l/pwned.txt", {}),
    ("file-through-relative-escaping-link",
     [link("l", "../outside"), regular("l/secret.txt", b"pwned")], "l/secret.txt", {}),
    ("file-through-in-tree-link",
     [directory("sub"), link("l", "sub"), regular("l/x.txt")], "l/x.txt", {}),
    ("dir-through-link", [link("l", "../outside"), directory("l/newdir")], "l/newdir", {}),
    ("link-then-deeper-member",
     [directory("d"), link("ld", "d"), regular("ld/deeper/file")], "ld/deeper/file", {}),
    ("file-replacing-link", [link("l", "../outside/secret.txt"), regular("l", b"pwned")],
     "'l'", {}),
    ("link-replacing-file", [regular("f"), link("f", "../outside/secret.txt")], "'f'", {}),
    ("hardlink-to-etc-passwd", [hardlink("h", "/etc/passwd")], "'h'", {}),
    ("hardlink-to-sandbox-file", [hardlink("h", f"{S}/outside/secret.txt")], "'h'", {}),
    ("hardlink-to-later-member", [hardlink("h", "later"), regular("later")], "'h'", {}),
    ("hardlink-to-dotdot", [hardlink("h", "..")], "'h'", {}),
    ("hardlink-to-outside", [hardlink("h", "../outside/secret.txt")], "'h'", {}),
    ("hardlink-to-symlink", [link("l", "target"), regular("target"), hardlink("h", "l")],
     "'h'", {}),
    ("hardlink-to-directory", [directory("d"), hardlink("h", "d")], "'h'", {}),
    ("hardlink-to-itself", [hardlink("h", "h")], "'h'", {}),
    ("hardlink-outside-subdirectory",
     [regular("other/secret"), hardlink("proj/h", "other/secret")], "'proj/h'",
     {"subdirectory": "proj"}),
    ("char-device", [special("dev/null", tarfile.CHRTYPE)], "dev/null", {}),
    ("block-device", [special("sda", tarfile.BLKTYPE)], "'sda'", {}),
    ("fifo", [special("pipe", tarfile.FIFOTYPE)], "'pipe'", {}),
    ("device-outside-subdirectory", [special("other/dev", tarfile.CHRTYPE)], "other/dev",
     {"subdirectory": "proj"}),
    ("duplicate-file", [regular("a", b"one"), regular("a", b"two")], "'a'", {}),
    ("dot-slash-collision", [regular("a/b"), regular("./a/b")], "./a/b", {}),
    ("double-slash-collision", [regular("a/b"), regular("a//b")], "a//b", {}),
    ("strip-collision", [regular("x/f"), regular("y/f")], "y/f", {"strip_components": 1}),
    ("file-then-dir", [regular("a"), directory("a")], "'a'", {}),
    ("dir-then-file", [directory("a"), regular("a")], "'a'", {}),
    ("file-then-child", [regular("a"), regular("a/b")], "a/b", {}),
    ("missing-top-directory", [regular("top/ok"), regular("loose.txt")], "loose.txt",
     {"strip_components": 1}),
    ("subdirectory-is-a-file", [regular("proj")], "'proj'", {"subdirectory": "proj"}),
    ("subdirectory-is-a-link", [link("proj", "../outside")], "'proj'",
     {"subdirectory": "proj"}),
    ("empty-symlink-target", [link("l", "")], "'l'", {}),
]


@pytest.mark.parametrize(("members", "needle", "options"),
                         [case[1:] for case in MALICIOUS], ids=[case[0] for case in MALICIOUS])
def test_malicious_archive_is_refused(sandbox: Sandbox, members: list[Member], needle: str,
                                      options: dict[str, object]) -> None:
    for info, _ in members:
        info.name = info.name.replace(S, str(sandbox.root))
        info.linkname = info.linkname.replace(S, str(sandbox.root))
    data = tar_bytes(*members)
    before = sandbox.outside_snapshot()
    with pytest.raises(UnsafeArchiveError) as caught:
        sandbox.extract(data, **options)
    assert needle in str(caught.value)
    assert sandbox.outside_snapshot() == before
    assert (sandbox.root / "outside" / "secret.txt").read_text() == "secret\n"


def test_at_least_25_malicious_cases() -> None:
    assert len(MALICIOUS) >= 25


def test_no_symlink_is_created_when_any_is_refused(sandbox: Sandbox) -> None:
    data = tar_bytes(regular("f"), link("ok", "f"), link("bad", "../outside"))
    with pytest.raises(UnsafeArchiveError, match="'bad'"):
        sandbox.extract(data)
    assert not (sandbox.destination / "ok").is_symlink()


# ---------------------------------------------------------------- limits

def test_huge_member_against_small_limit(sandbox: Sandbox) -> None:
    data = tar_bytes(regular("small"), regular("bomb", b"\0" * (8 << 20)))
    assert len(data) < 64 << 10
    with pytest.raises(UnsafeArchiveError, match="'bomb' is larger than the limit"):
        sandbox.extract(data, limits=Limits(max_member_bytes=1 << 20))


def test_total_size_limit(sandbox: Sandbox) -> None:
    data = tar_bytes(*(regular(f"f{index}", b"x" * 1000) for index in range(10)))
    with pytest.raises(UnsafeArchiveError, match=r"more than the limit of 5000 bytes.*'f5'"):
        sandbox.extract(data, limits=Limits(max_total_bytes=5000))


def test_hardlink_copies_count_against_the_total(sandbox: Sandbox) -> None:
    members = [regular("big", b"x" * 4000)] + [hardlink(f"h{i}", "big") for i in range(5)]
    with pytest.raises(UnsafeArchiveError, match="'h1'"):
        sandbox.extract(tar_bytes(*members), limits=Limits(max_total_bytes=10_000))


def test_too_many_members(sandbox: Sandbox) -> None:
    data = tar_bytes(*(regular(f"f{index}") for index in range(11)))
    with pytest.raises(UnsafeArchiveError, match=r"more than 10 members.*'f10'"):
        sandbox.extract(data, limits=Limits(max_members=10))


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME])
def test_huge_extended_header(sandbox: Sandbox, kind: bytes) -> None:
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = kind, 2 << 20
    data = tar_bytes((header, b"\0" * header.size), regular("a"), fmt=tarfile.USTAR_FORMAT)
    with pytest.raises(UnsafeArchiveError, match="extended header of 2097152 bytes"):
        sandbox.extract(data)


def test_bytes_are_counted_as_written_not_as_declared(tmp_path: Path) -> None:
    tree = _Tree(tmp_path, Limits(max_member_bytes=100))
    chunks = iter([b"x" * 60, b"x" * 60, b""])
    with pytest.raises(UnsafeArchiveError, match="'liar' is larger"):
        tree.add_file(("liar",), "liar", mode=0o644, size=1, mtime=0, read=lambda: next(chunks))


# ---------------------------------------------------------------- truncated and corrupt

def sample_archive(compression: str = "gz") -> bytes:
    noise = random.Random(3).randbytes(200_000)
    return tar_bytes(regular("a.txt"), regular("noise.bin", noise), regular("z.txt"),
                     compression=compression)


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_gzip_cut_anywhere(sandbox: Sandbox, fraction: float) -> None:
    data = sample_archive()
    with pytest.raises(DownloadError, match="archive is truncated or corrupt"):
        sandbox.extract(data[: int(len(data) * fraction)])


@pytest.mark.parametrize("cut", [1, 4, 8, 20])
def test_gzip_cut_in_its_trailer(sandbox: Sandbox, cut: int) -> None:
    data = sample_archive()
    with pytest.raises(DownloadError, match="truncated or corrupt"):
        sandbox.extract(data[:-cut])


@pytest.mark.parametrize("compression", ["bz2", "xz"])
def test_other_compressions_cut(sandbox: Sandbox, compression: str) -> None:
    data = sample_archive(compression)
    with pytest.raises(DownloadError, match="truncated or corrupt"):
        sandbox.extract(data[: len(data) // 2])


def plain_offsets() -> tuple[bytes, int, int]:
    """A plain tar of two members, the offset of the second header and of the end marker."""
    data = tar_bytes(regular("first", b"x" * 1000), regular("second", b"y" * 10),
                     compression="", fmt=tarfile.USTAR_FORMAT)
    second = 512 + 1024
    return data, second, second + 512 + 512


def test_plain_tar_cut_inside_member_data(sandbox: Sandbox) -> None:
    data, _, _ = plain_offsets()
    with pytest.raises(DownloadError, match=r"truncated or corrupt.*'first'"):
        sandbox.extract(data[:600])


@pytest.mark.parametrize("which", ["second-header", "end-marker", "mid-header"])
def test_plain_tar_cut_at_a_boundary(sandbox: Sandbox, which: str) -> None:
    data, second, end = plain_offsets()
    cut = {"second-header": second, "end-marker": end, "mid-header": second + 100}[which]
    with pytest.raises(DownloadError, match="truncated or corrupt"):
        sandbox.extract(data[:cut])


def test_plain_tar_with_a_damaged_header(sandbox: Sandbox) -> None:
    data, second, _ = plain_offsets()
    damaged = data[:second] + b"X" + data[second + 1:]
    with pytest.raises(DownloadError, match="truncated or corrupt"):
        sandbox.extract(damaged)


def test_gzip_with_flipped_bits(sandbox: Sandbox) -> None:
    data = bytearray(sample_archive())
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(DownloadError, match="truncated or corrupt"):
        sandbox.extract(bytes(data))


def test_gzip_with_wrong_checksum(sandbox: Sandbox) -> None:
    data = bytearray(sample_archive())
    data[-8] ^= 0x01
    with pytest.raises(DownloadError, match="truncated or corrupt"):
        sandbox.extract(bytes(data))


@pytest.mark.parametrize("data", [
    b"",
    b"\x1f\x8b\x08\x00garbage-after-a-gzip-magic" * 10,
    b"this is not a tar archive at all\n" * 100,
    random.Random(5).randbytes(4096),
    b"<html>404 Not Found</html>",
], ids=["empty", "corrupt-gzip", "text", "random", "html"])
def test_not_an_archive(sandbox: Sandbox, data: bytes) -> None:
    with pytest.raises(DownloadError, match="truncated or corrupt"):
        sandbox.extract(data)


def test_failing_stream_is_a_download_error(sandbox: Sandbox) -> None:
    class Broken(OneWay):
        def read(self, size: int = -1) -> bytes:
            if self._buffer.tell() > 1000:
                raise ConnectionResetError("connection reset by peer")
            return super().read(min(size, 500) if size > 0 else 500)

    with pytest.raises(DownloadError, match="connection reset"):
        extract_tar(Broken(sample_archive()), sandbox.destination)


def test_large_trailing_data_is_refused(sandbox: Sandbox) -> None:
    data = tar_bytes(regular("a"), compression="") + b"\0" * (2 << 20)
    with pytest.raises(DownloadError, match="after its end"):
        sandbox.extract(data)


# ---------------------------------------------------------------- ordinary archives

def test_regular_tree_with_links_modes_and_directories(sandbox: Sandbox) -> None:
    data = tar_bytes(
        directory("top"),
        directory("top/src"),
        regular("top/src/main.py", b"print()\n"),
        regular("top/run.sh", b"#!/bin/sh\n", mode=0o775),
        regular("top/private", b"p\n", mode=0o600),
        regular("top/owner-exec", b"o\n", mode=0o700),
        link("top/main", "src/main.py"),
        link("top/source", "src"),
        link("top/src/self", "."),
        link("top/src/up", ".."),
        link("top/dangling", "src/not-there"),
        directory("top/empty"),
        directory("top/empty/nested"),
    )
    result = sandbox.extract(data, strip_components=1)
    root = sandbox.destination
    assert result == ExtractResult(files=4, bytes=22, symlinks=5, directories=3)
    assert (root / "main").read_text() == "print()\n"
    assert (root / "source" / "main.py").read_text() == "print()\n"
    assert os.readlink(root / "src" / "up") == ".."
    assert (root / "empty" / "nested").is_dir()
    assert mode_of(root / "run.sh") == 0o755
    assert mode_of(root / "private") == 0o644
    assert mode_of(root / "owner-exec") == 0o755
    assert mode_of(root / "src" / "main.py") == 0o644
    assert mode_of(root / "src") == 0o755
    assert (root / "src" / "main.py").stat().st_mtime == 1_600_000_000
    assert (root / "dangling").is_symlink()


def test_special_bits_are_dropped(sandbox: Sandbox) -> None:
    data = tar_bytes(regular("suid", mode=0o4755), regular("sgid", mode=0o2644),
                     regular("sticky", mode=0o1777), directory("shared", mode=0o3777))
    sandbox.extract(data)
    root = sandbox.destination
    assert [mode_of(root / name) for name in ("suid", "sgid", "sticky", "shared")] == [
        0o755, 0o644, 0o755, 0o755,
    ]


def test_umask_does_not_change_modes(sandbox: Sandbox) -> None:
    previous = os.umask(0o077)
    try:
        sandbox.extract(tar_bytes(regular("d/x", mode=0o755), regular("d/y")))
    finally:
        os.umask(previous)
    root = sandbox.destination
    assert (mode_of(root / "d"), mode_of(root / "d/x"), mode_of(root / "d/y")) == (
        0o755, 0o755, 0o644,
    )


def test_unicode_and_case_distinct_names(sandbox: Sandbox) -> None:
    names = ["données/naïve.txt", "日本語/ファイル.py", "emoji-\U0001f600.md", "README", "readme"]
    sandbox.extract(tar_bytes(*(regular(name, name.encode()) for name in names)))
    for name in names:
        assert (sandbox.destination / name).read_text() == name


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_long_names(sandbox: Sandbox, fmt: int) -> None:
    name = "/".join(["a-rather-long-directory-name"] * 8) + "/" + "f" * 150
    target = "../" * 8 + "x" * 120
    data = tar_bytes(regular(name, b"long"), link(name + ".link", target), fmt=fmt)
    sandbox.extract(data)
    assert (sandbox.destination / name).read_text() == "long"
    assert os.readlink(sandbox.destination / (name + ".link")) == target


def git_global_header(commit: str) -> Member:
    """The `pax_global_header` member that `git archive` writes first, naming the commit."""
    record = f"comment={commit}\n"
    length = len(record) + 3
    payload = f"{length} {record}".encode()
    assert len(payload) == length
    info = tarfile.TarInfo("pax_global_header")
    info.type, info.size = tarfile.XGLTYPE, len(payload)
    return info, payload


def test_pax_global_header_is_not_a_file(sandbox: Sandbox) -> None:
    data = tar_bytes(git_global_header("e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"),
                     regular("o-r-abc1234/a.txt"), fmt=tarfile.USTAR_FORMAT)
    assert b"pax_global_header" in gzip.decompress(data)
    result = sandbox.extract(data, strip_components=1)
    assert sandbox.tree() == {"a.txt": "data\n"}
    assert result.files == 1


def test_hardlink_to_earlier_file_is_a_copy(sandbox: Sandbox) -> None:
    data = tar_bytes(regular("top/a.sh", b"echo\n", mode=0o755), hardlink("top/b.sh", "top/a.sh"))
    result = sandbox.extract(data, strip_components=1)
    root = sandbox.destination
    assert (root / "b.sh").read_text() == "echo\n"
    assert mode_of(root / "b.sh") == 0o755
    assert (root / "a.sh").stat().st_ino != (root / "b.sh").stat().st_ino
    assert result.files == 2
    assert result.bytes == 10


def test_repeated_and_late_directory_entries(sandbox: Sandbox) -> None:
    data = tar_bytes(regular("d/f"), directory("d"), directory("./d/"), directory("d/e"))
    result = sandbox.extract(data)
    assert sandbox.tree() == {"d": "dir", "d/f": "data\n", "d/e": "dir"}
    assert result.directories == 2


def test_root_entries_are_skipped(sandbox: Sandbox) -> None:
    sandbox.extract(tar_bytes(directory("./"), directory("top/"), regular("top/x")),
                    strip_components=1)
    assert sandbox.tree() == {"x": "data\n"}


def test_subdirectory_is_selected_and_stripped(sandbox: Sandbox) -> None:
    data = tar_bytes(
        directory("o-r-abc/"),
        regular("o-r-abc/README.md"),
        directory("o-r-abc/services/api"),
        regular("o-r-abc/services/api/builder.yaml", b"name: api\n"),
        link("o-r-abc/services/api/readme", "docs/index.md"),
        regular("o-r-abc/services/api/docs/index.md", b"doc\n"),
        regular("o-r-abc/services/api-other/x", b"no\n"),
        regular("o-r-abc/services/web/y", b"no\n"),
        link("o-r-abc/services/web/escape", "../../../.."),
    )
    result = sandbox.extract(data, strip_components=1, subdirectory="services/api/")
    assert sandbox.tree() == {
        "builder.yaml": "name: api\n",
        "readme": "link:docs/index.md",
        "docs": "dir",
        "docs/index.md": "doc\n",
    }
    assert result == ExtractResult(files=2, bytes=14, symlinks=1, directories=1)


def test_missing_subdirectory(sandbox: Sandbox) -> None:
    with pytest.raises(NotFoundError, match="nothing under 'proj'"):
        sandbox.extract(tar_bytes(regular("top/other/x")), strip_components=1,
                        subdirectory="proj")


def test_symlink_loop_points_nowhere_and_is_kept(sandbox: Sandbox) -> None:
    sandbox.extract(tar_bytes(link("a", "b"), link("b", "a/../../x")))
    assert os.readlink(sandbox.destination / "a") == "b"


@pytest.mark.parametrize("compression", ["", "gz", "bz2", "xz"])
def test_compressions_through_a_trickling_stream(sandbox: Sandbox, compression: str) -> None:
    data = tar_bytes(regular("top/a", b"a" * 5000), regular("top/b"), compression=compression)
    extract_tar(OneWay(data, step=7), sandbox.destination, strip_components=1)
    assert sandbox.tree() == {"a": "a" * 5000, "b": "data\n"}


def test_empty_archive(sandbox: Sandbox) -> None:
    assert sandbox.extract(tar_bytes()) == ExtractResult(0, 0, 0, 0)


def test_destination_must_be_an_empty_directory(sandbox: Sandbox) -> None:
    (sandbox.destination / "x").write_text("")
    with pytest.raises(ValueError, match="not empty"):
        sandbox.extract(tar_bytes(regular("a")))
    with pytest.raises(ValueError, match="relative"):
        extract_tar(io.BytesIO(b""), sandbox.root / "outside", subdirectory="../x")


# ---------------------------------------------------------------- zip

ZipMember = tuple[str, bytes, int]


def zip_bytes(*members: ZipMember) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 2, 3, 4, 6))
            info.create_system = 3
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(info, data)
    return buffer.getvalue()


def zfile(name: str, data: bytes = b"data\n", mode: int = 0o644) -> ZipMember:
    return name, data, stat.S_IFREG | mode


def zlink(name: str, target: str) -> ZipMember:
    return name, target.encode(), stat.S_IFLNK | 0o777


def test_zip_tree(sandbox: Sandbox) -> None:
    data = zip_bytes(("p-abc/", b"", stat.S_IFDIR | 0o755), zfile("p-abc/run.sh", mode=0o755),
                     zfile("p-abc/src/a.py"), zlink("p-abc/a", "src/a.py"),
                     ("p-abc/empty/", b"", stat.S_IFDIR | 0o700))
    result = extract_zip(io.BytesIO(data), sandbox.destination, strip_components=1)
    root = sandbox.destination
    assert sandbox.tree() == {"run.sh": "data\n", "src": "dir", "src/a.py": "data\n",
                              "a": "link:src/a.py", "empty": "dir"}
    assert mode_of(root / "run.sh") == 0o755
    assert mode_of(root / "empty") == 0o755
    assert result == ExtractResult(files=2, bytes=10, symlinks=1, directories=2)


@pytest.mark.parametrize(("members", "needle"), [
    ([zfile("../evil")], "../evil"),
    ([zfile("/abs/evil")], "/abs/evil"),
    ([zlink("l", "../outside")], "'l'"),
    ([zlink("l", "/etc"), zfile("l/passwd")], "l/passwd"),
    ([zfile("a"), zfile("a")], "'a'"),
    ([("dev", b"", stat.S_IFCHR | 0o644)], "'dev'"),
    ([("pipe", b"", stat.S_IFIFO | 0o644)], "'pipe'"),
], ids=["traversal", "absolute", "symlink-escape", "through-link", "duplicate", "device",
        "fifo"])
@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_malicious_zip(sandbox: Sandbox, members: list[ZipMember], needle: str) -> None:
    before = sandbox.outside_snapshot()
    with pytest.raises(UnsafeArchiveError) as caught:
        extract_zip(io.BytesIO(zip_bytes(*members)), sandbox.destination)
    assert needle in str(caught.value)
    assert sandbox.outside_snapshot() == before


def test_zip_bomb_member(sandbox: Sandbox) -> None:
    data = zip_bytes(zfile("bomb", b"\0" * (4 << 20)))
    with pytest.raises(UnsafeArchiveError, match="'bomb'"):
        extract_zip(io.BytesIO(data), sandbox.destination, limits=Limits(max_member_bytes=1000))


@pytest.mark.parametrize("damage", ["truncated", "crc"])
def test_broken_zip(sandbox: Sandbox, damage: str) -> None:
    data = bytearray(zip_bytes(zfile("a", random.Random(1).randbytes(5000))))
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[100] ^= 0xFF
    with pytest.raises(DownloadError, match="truncated or corrupt"):
        extract_zip(io.BytesIO(bytes(data)), sandbox.destination)


def test_zip_from_a_path(sandbox: Sandbox) -> None:
    path = sandbox.root / "a.zip"
    path.write_bytes(zip_bytes(zfile("x")))
    assert extract_zip(path, sandbox.destination).files == 1
