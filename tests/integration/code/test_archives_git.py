"""Round trip through real `git archive`: extract and compare with `git ls-tree -r`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from builder.code.archives import extract_tar
from builder.code.gitobjects import tree_listing_matches

PREFIX = "o-r-abc1234/"
LONG_NAME = "/".join(["deeply-nested-directory-name"] * 5) + "/" + "n" * 120 + ".txt"


def git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    environment = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return subprocess.run(["git", "-C", str(repo), *args], input=stdin, env=environment,
                          check=True, capture_output=True).stdout


def ls_tree(repo: Path, treeish: str) -> dict[str, tuple[str, str]]:
    listing: dict[str, tuple[str, str]] = {}
    for record in git(repo, "ls-tree", "-r", "-z", treeish).split(b"\0"):
        if record:
            meta, path = record.split(b"\t", 1)
            mode, _, sha = meta.decode().split()
            listing[os.fsdecode(path)] = (mode, sha)
    return listing


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    git(root, "init", "-q", "-b", "main")
    files = {
        "README.md": b"# demo\n",
        "empty.txt": b"",
        "with space.txt": b"spaced\n",
        "données/naïve.py": "print('é')\n".encode(),
        "app/main.py": b"print('hello')\n",
        "app/run.sh": b"#!/bin/sh\necho run\n",
        "app/data/blob.bin": bytes(range(256)) * 64,
        "shared/lib.py": b"X = 1\n",
        LONG_NAME: b"long\n",
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "app/run.sh").chmod(0o755)
    os.symlink("main.py", root / "app/main-link.py")
    os.symlink("data", root / "app/data-link")
    os.symlink("../README.md", root / "app/readme")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


def archive_stream(repo: Path, *options: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["git", "-C", str(repo), "archive", *options, f"--prefix={PREFIX}", "HEAD"],
        stdout=subprocess.PIPE, env={**os.environ, "GIT_CONFIG_GLOBAL": os.devnull},
    )


@pytest.mark.parametrize("options", [("--format=tar.gz",), ("--format=tar",)],
                         ids=["tar.gz", "tar"])
def test_git_archive_round_trip(repo: Path, tmp_path: Path, options: tuple[str, ...]) -> None:
    destination = tmp_path / "code"
    destination.mkdir()
    with archive_stream(repo, *options) as process:
        assert process.stdout is not None
        result = extract_tar(process.stdout, destination, strip_components=1)
    assert process.returncode == 0
    expected = ls_tree(repo, "HEAD")
    assert tree_listing_matches(destination, expected) == []
    assert result.files + result.symlinks == len(expected)
    assert result.symlinks == 3
    assert not (destination / "pax_global_header").exists()
    assert (destination / "app/data-link/blob.bin").read_bytes() == bytes(range(256)) * 64


def test_git_archive_subdirectory(repo: Path, tmp_path: Path) -> None:
    destination = tmp_path / "code"
    destination.mkdir()
    data = git(repo, "archive", "--format=tar.gz", f"--prefix={PREFIX}", "HEAD")
    with (tmp_path / "a.tar.gz").open("wb") as handle:
        handle.write(data)
    with (tmp_path / "a.tar.gz").open("rb") as handle:
        extract_tar(handle, destination, strip_components=1, subdirectory="app/data")
    assert tree_listing_matches(destination, ls_tree(repo, "HEAD:app/data")) == []


def test_listing_comparison_notices_a_changed_tree(repo: Path, tmp_path: Path) -> None:
    destination = tmp_path / "code"
    destination.mkdir()
    with archive_stream(repo, "--format=tar.gz") as process:
        assert process.stdout is not None
        extract_tar(process.stdout, destination, strip_components=1)
    (destination / "app/run.sh").chmod(0o644)
    (destination / "README.md").write_text("changed\n")
    (destination / "extra.txt").write_text("")
    (destination / "empty.txt").unlink()
    assert tree_listing_matches(destination, ls_tree(repo, "HEAD")) == [
        "content: README.md",
        "extra: extra.txt",
        "missing: empty.txt",
        "mode: app/run.sh: expected 100755, found 100644",
    ]
