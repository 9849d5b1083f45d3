"""The shipped file set and its content hash, on real git checkouts."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from builder.code.files import file_set, shipped_paths
from builder.repositories.git_context import Checkout
from tests.gitworld import git


@pytest.fixture(autouse=True)
def _fresh_checkout_cache():
    Checkout.forget()
    yield
    Checkout.forget()


def write(root: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def repo(tmp_path: Path, files: dict[str, str], name: str = "repo") -> Path:
    root = tmp_path / name
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


def test_tracked_and_untracked_not_ignored_minus_dockerignore(tmp_path):
    root = repo(
        tmp_path,
        {
            "main.py": "x",
            "lib/util.py": "y",
            ".gitignore": "*.log\nbuild/\n",
            ".dockerignore": "docs\n*.md\n!KEEP.md\n",
            "docs/a.txt": "d",
            "README.md": "r",
            "KEEP.md": "k",
            "gone.py": "g",
        },
    )
    write(
        root,
        {
            "new.py": "n",
            "debug.log": "l",
            "build/out.o": "o",
            "docs/new.txt": "d2",
            "notes.md": "m",
        },
    )
    (root / "gone.py").unlink()
    assert shipped_paths(root) == sorted(
        [
            ".dockerignore",
            ".gitignore",
            "KEEP.md",
            "lib/util.py",
            "main.py",
            "new.py",
        ]
    )


def test_subdirectory_project_ships_only_its_files_relative_to_it(tmp_path):
    root = repo(
        tmp_path,
        {
            "top.py": "t",
            "app/main.py": "m",
            "app/pkg/a.py": "a",
            "app/.dockerignore": "pkg/skip*\n",
            "app/pkg/skip_me.py": "s",
            "other/b.py": "b",
        },
    )
    write(root, {"app/untracked.py": "u", "other/untracked.py": "u"})
    assert shipped_paths(root / "app") == [".dockerignore", "main.py", "pkg/a.py", "untracked.py"]


def test_outside_git_every_file_minus_dockerignore(tmp_path):
    root = tmp_path / "plain"
    write(root, {"a.py": "a", "sub/b.py": "b", "cache/x.pyc": "c", ".dockerignore": "cache\n"})
    os.symlink("a.py", root / "alias.py")
    (root / "empty").mkdir()
    assert shipped_paths(root) == [".dockerignore", "a.py", "alias.py", "sub/b.py"]


def test_nested_repository_and_symlinks(tmp_path):
    root = repo(tmp_path, {"a.py": "a"})
    nested = root / "vendor"
    nested.mkdir()
    git(nested, "init", "-q")
    write(nested, {"v.py": "v"})
    os.symlink("a.py", root / "alias.py")
    os.symlink("missing-target", root / "dangling")
    paths = shipped_paths(root)
    assert paths == ["a.py", "alias.py", "dangling"]
    entries = {e.path: e for e in file_set(root).entries}
    assert entries["alias.py"].kind == "symlink" and entries["alias.py"].target == "a.py"
    assert entries["dangling"].target == "missing-target"


def test_odd_file_names(tmp_path):
    root = repo(tmp_path, {"with space.py": "s", "ünïcode.py": "u", "tab\tname.txt": "t"})
    assert shipped_paths(root) == sorted(["tab\tname.txt", "with space.py", "ünïcode.py"])
    assert file_set(root).digest


def test_hash_is_about_content_not_place_or_time(tmp_path):
    files = {"main.py": "print(1)\n", "pkg/a.py": "a\n", "run.sh": "#!/bin/sh\n"}
    first = repo(tmp_path, files, name="first")
    os.chmod(first / "run.sh", 0o755)
    second = tmp_path / "elsewhere" / "clone"
    second.parent.mkdir()
    git(tmp_path, "clone", "-q", str(first), str(second))
    os.chmod(second / "run.sh", 0o755)
    digest = file_set(first).digest
    assert file_set(second).digest == digest
    for path in second.rglob("*"):
        if ".git" not in path.parts:
            os.utime(path, (1_000_000, 1_000_000))
    Checkout.forget()
    assert file_set(second).digest == digest
    os.chmod(second / "run.sh", 0o644)
    assert file_set(second).digest != digest
    os.chmod(second / "run.sh", 0o755)
    (second / "pkg" / "a.py").write_text("b\n")
    assert file_set(second).digest != digest
    (second / "pkg" / "a.py").write_text("a\n")
    assert file_set(second).digest == digest
    (second / "ignored.log").write_text("x")
    (second / ".git" / "info" / "exclude").write_text("*.log\n")
    assert file_set(second).digest == digest


def test_renaming_a_file_changes_the_hash(tmp_path):
    root = repo(tmp_path, {"a.py": "same\n"})
    digest = file_set(root).digest
    shutil.move(root / "a.py", root / "b.py")
    assert file_set(root).digest != digest


def test_five_thousand_files_are_fast(tmp_path):
    root = tmp_path / "big"
    for index in range(5000):
        path = root / f"pkg{index % 50}" / f"mod{index}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"VALUE = {index}\n" + "# padding\n" * 50)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "many")
    started = time.perf_counter()
    result = file_set(root)
    elapsed = time.perf_counter() - started
    assert len(result.entries) == 5000
    assert elapsed < 3.0, f"hashing 5,000 files took {elapsed:.2f} s"


def test_checked_out_submodules_ship_their_files_as_a_download_would(tmp_path):
    library = repo(tmp_path, {"lib.py": "L", "nested/deep.py": "D"}, name="library")
    root = repo(tmp_path, {"main.py": "m"})
    git(
        root,
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        str(library),
        "vendor/lib",
    )
    git(root, "commit", "-q", "-m", "add submodule")
    assert shipped_paths(root) == [
        ".gitmodules",
        "main.py",
        "vendor/lib/lib.py",
        "vendor/lib/nested/deep.py",
    ]
