"""Git blob ids and the comparison of an extracted tree with a commit's listing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from builder.code.gitobjects import blob_sha, tree_listing_matches


@pytest.mark.parametrize(("data", "sha"), [
    (b"", "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"),
    (b"hello\n", "ce013625030ba8dba906f756967f9e9ca394464a"),
    (b"hello world\n", "3b18e512dba79e4c8300dd08aeb37f8e728b8dad"),
    (b"test content\n", "d670460b4b4aece5915caf5c68d12f560a9fe3e4"),
])
def test_blob_sha_matches_git_hash_object(data: bytes, sha: str) -> None:
    assert blob_sha(data) == sha


def test_blob_sha256_of_empty_blob() -> None:
    expected = "473a0f4c3be8a93681a267e3b1e9a7dcda1185436fe141f7749120a303721813"
    assert blob_sha(b"", "sha256") == expected


def make_tree(root: Path) -> dict[str, tuple[str, str]]:
    (root / "src").mkdir()
    (root / "README.md").write_bytes(b"hello\n")
    (root / "src" / "run.sh").write_bytes(b"#!/bin/sh\n")
    (root / "src" / "run.sh").chmod(0o755)
    os.symlink("../README.md", root / "src" / "readme")
    return {
        "README.md": ("100644", blob_sha(b"hello\n")),
        "src/run.sh": ("100755", blob_sha(b"#!/bin/sh\n")),
        "src/readme": ("120000", blob_sha(b"../README.md")),
    }


def test_identical_tree_has_no_differences(tmp_path: Path) -> None:
    expected = make_tree(tmp_path)
    assert tree_listing_matches(tmp_path, expected) == []


def test_every_kind_of_difference_is_reported_sorted(tmp_path: Path) -> None:
    expected = make_tree(tmp_path)
    expected["gone.txt"] = ("100644", blob_sha(b"x"))
    (tmp_path / "README.md").write_bytes(b"changed\n")
    (tmp_path / "src" / "run.sh").chmod(0o644)
    (tmp_path / "src" / "new.py").write_bytes(b"")
    assert tree_listing_matches(tmp_path, expected) == [
        "content: README.md",
        "extra: src/new.py",
        "missing: gone.txt",
        "mode: src/run.sh: expected 100755, found 100644",
    ]


def test_symlink_target_and_type_changes(tmp_path: Path) -> None:
    expected = make_tree(tmp_path)
    (tmp_path / "src" / "readme").unlink()
    os.symlink("elsewhere", tmp_path / "src" / "readme")
    (tmp_path / "README.md").unlink()
    (tmp_path / "README.md").symlink_to("src/run.sh")
    assert tree_listing_matches(tmp_path, expected) == [
        "content: README.md",
        "content: src/readme",
        "mode: README.md: expected 100644, found 120000",
    ]


def test_directories_and_submodules_need_a_directory(tmp_path: Path) -> None:
    expected = make_tree(tmp_path)
    (tmp_path / "vendor" / "lib").mkdir(parents=True)
    expected["vendor/lib"] = ("160000", "0" * 40)
    expected["src"] = ("040000", "1" * 40)
    assert tree_listing_matches(tmp_path, expected) == []
    expected["absent"] = ("160000", "0" * 40)
    assert tree_listing_matches(tmp_path, expected) == ["missing: absent (expected a directory)"]


def test_empty_directories_are_not_extra(tmp_path: Path) -> None:
    expected = make_tree(tmp_path)
    (tmp_path / "empty").mkdir()
    assert tree_listing_matches(tmp_path, expected) == []


def test_sha256_listing(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"")
    sha = blob_sha(b"", "sha256")
    assert tree_listing_matches(tmp_path, {"a": ("100644", sha)}) == []
    assert tree_listing_matches(tmp_path, {"a": ("100644", "0" * 64)}) == ["content: a"]


def test_fast_on_a_thousand_files(tmp_path: Path) -> None:
    expected: dict[str, tuple[str, str]] = {}
    for index in range(1000):
        folder = tmp_path / f"d{index % 20}"
        folder.mkdir(exist_ok=True)
        data = f"file {index}\n".encode() * 50
        (folder / f"f{index}.py").write_bytes(data)
        expected[f"d{index % 20}/f{index}.py"] = ("100644", blob_sha(data))
    started = time.perf_counter()
    assert tree_listing_matches(tmp_path, expected) == []
    assert time.perf_counter() - started < 1.0
