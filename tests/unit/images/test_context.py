"""Build contexts are deterministic tars: sorted, fixed mtime and owners, normalised modes."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from builder.code.files import entry_for, hash_entries
from builder.errors import BuilderError
from builder.images.context import FIXED_MTIME, ContextBuilder


def make_tree(root: Path) -> None:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "a.py").write_text("print('a')\n")
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "sub" / "data.bin").write_bytes(bytes(range(256)) * 100)
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "run.sh", 0o700)
    os.chmod(root / "a.py", 0o600)
    os.symlink("pkg/__init__.py", root / "link")


def context_for(root: Path, order: list[str]) -> ContextBuilder:
    context = ContextBuilder()
    context.add_bytes("Dockerfile", b"FROM x\nCOPY code/ /app/\n")
    for rel in order:
        entry = entry_for(root, rel)
        if entry.kind == "symlink":
            context.add_symlink(f"code/{rel}", entry.target)
        else:
            context.add_file(f"code/{rel}", root / rel, executable=entry.kind == "exec",
                             oid=entry.oid)
    return context


FILES = ["a.py", "link", "pkg/__init__.py", "pkg/sub/data.bin", "run.sh"]


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


def test_same_inputs_give_the_same_bytes_whatever_the_order_and_mtimes(tmp_path):
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    make_tree(first)
    make_tree(second)
    for path in second.rglob("*"):
        os.utime(path, (1_600_000_000, 1_600_000_000), follow_symlinks=False)
    a = context_for(first, FILES).to_bytes()
    b = context_for(second, list(reversed(FILES))).to_bytes()
    assert a == b
    with context_for(first, FILES).to_file() as spooled:
        assert spooled.read() == a


def test_entries_are_sorted_with_parents_first_and_normalised(tmp_path):
    make_tree(tmp_path)
    infos = members(context_for(tmp_path, FILES).to_bytes())
    names = [info.name for info in infos]
    assert names == ["Dockerfile", "code", "code/a.py", "code/link", "code/pkg",
                     "code/pkg/__init__.py", "code/pkg/sub", "code/pkg/sub/data.bin",
                     "code/run.sh"]
    for info in infos:
        assert info.mtime == FIXED_MTIME
        assert (info.uid, info.gid, info.uname, info.gname) == (0, 0, "", "")
    by_name = {info.name: info for info in infos}
    assert by_name["code"].isdir() and by_name["code"].mode == 0o755
    assert by_name["code/a.py"].mode == 0o644  # was 0600
    assert by_name["code/run.sh"].mode == 0o755  # was 0700
    assert by_name["code/link"].issym() and by_name["code/link"].linkname == "pkg/__init__.py"
    assert by_name["code/pkg/sub/data.bin"].size == 25600


def test_content_is_copied_exactly(tmp_path):
    make_tree(tmp_path)
    data = context_for(tmp_path, FILES).to_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        extracted = tar.extractfile("code/pkg/sub/data.bin")
        assert extracted is not None
        assert extracted.read() == (tmp_path / "pkg" / "sub" / "data.bin").read_bytes()


def test_a_file_that_changed_after_hashing_is_refused(tmp_path):
    make_tree(tmp_path)
    context = context_for(tmp_path, FILES)
    (tmp_path / "a.py").write_text("print('b')\n")  # same size, other content
    with pytest.raises(BuilderError, match="changed while"):
        context.to_bytes()


def test_a_file_that_grew_or_vanished_is_refused(tmp_path):
    make_tree(tmp_path)
    context = context_for(tmp_path, FILES)
    (tmp_path / "pkg" / "sub" / "data.bin").unlink()
    with pytest.raises(BuilderError, match="disappeared"):
        context.to_bytes()


def test_names_are_checked(tmp_path):
    context = ContextBuilder()
    context.add_bytes("a/b", b"")
    with pytest.raises(ValueError, match="twice"):
        context.add_bytes("./a//b", b"")
    with pytest.raises(ValueError):
        context.add_bytes("../escape", b"")
    context.add_bytes("a/b/c", b"")
    with pytest.raises(ValueError, match="file and a directory"):
        context.to_bytes()


def test_hash_covers_paths_kinds_and_content_but_not_mtimes(tmp_path):
    make_tree(tmp_path)
    entries = [entry_for(tmp_path, rel) for rel in FILES]
    digest = hash_entries(entries)
    assert hash_entries(reversed(entries)) == digest
    os.utime(tmp_path / "a.py", (1, 1))
    assert hash_entries(entry_for(tmp_path, rel) for rel in FILES) == digest
    os.chmod(tmp_path / "a.py", 0o755)
    assert hash_entries(entry_for(tmp_path, rel) for rel in FILES) != digest
    os.chmod(tmp_path / "a.py", 0o644)
    (tmp_path / "link").unlink()
    os.symlink("a.py", tmp_path / "link")
    assert hash_entries(entry_for(tmp_path, rel) for rel in FILES) != digest


def test_rooted_layout_declares_every_ancestor_with_fixed_metadata():
    context = ContextBuilder()
    target = context.add_rooted("code", "/tmp/app/code")
    assert target == "code/tmp/app/code"
    context.add_bytes(f"{target}/main.py", b"print(1)\n")
    infos = {info.name: info for info in members(context.to_bytes())}
    assert infos["code/tmp"].mode == 0o1777  # /tmp keeps its sticky, world-writable mode
    assert infos["code/tmp/app"].mode == 0o755 and infos["code/tmp/app/code"].isdir()
    assert all(info.mtime == FIXED_MTIME for info in infos.values())
