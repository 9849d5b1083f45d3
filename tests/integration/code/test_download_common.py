"""The shared download frame (builder.code.download) and helpers the per-type download tests use.

The helpers compare a downloaded tree with `git archive` of the same commit on the server's
bare repository: paths, kinds, executable bits, symlink targets and contents.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from builder.code.download import (
    NetworkReader,
    Submodule,
    apply_dockerignore,
    check_destination,
    download,
    empty_directories,
    normalize_subdirectory,
    parse_gitmodules,
    relative_listing,
    resolve_submodule_url,
    validate_commit,
    verify_tree,
)
from builder.code.gitobjects import blob_sha
from builder.errors import DownloadError, IntegrityError, UsageError
from builder.repositories.base import BaseCodeRepository
from tests.infra.gitrepos import Executable, Symlink

# ---------------------------------------------------------------------------- shared helpers

#: A commit with the shapes a download must get right.
RICH_FILES: dict[str, Any] = {
    "README.md": "# project\n",
    "setup.cfg": "[metadata]\nname = p\n",
    "app/main.py": "print('hello')\n",
    "app/bin/run.sh": Executable("#!/bin/sh\necho run\n"),
    "app/link_to_main": Symlink("main.py"),
    "app/dirlink": Symlink("pkg"),
    "app/pkg/__init__.py": "",
    "app/pkg/data/ünïcødé — file.txt": "unicode\n",
    "app/pkg/data/日本語.txt": "japanese\n",
    "app/space dir/file with spaces.txt": "spaces\n",
    "app/.hidden": "hidden\n",
    "app/empty_file": "",
    "app/binary.bin": bytes(range(256)) * 64,
    "app/keep/.gitkeep": "",
    "other/x.txt": "x\n",
}


def commit_rich(handle: Any) -> str:
    """Commit RICH_FILES plus an empty directory (which git does not track) and push."""
    (handle.work / "app" / "empty_dir").mkdir(parents=True, exist_ok=True)
    sha = str(handle.commit(RICH_FILES, "rich tree"))
    handle.push()
    return sha


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry below root: dir, link (target), or file (executable?, sha256)."""
    result: dict[str, tuple[Any, ...]] = {}
    for folder, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(folder, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        for name in dirnames + filenames:
            full = os.path.join(folder, name)
            info = os.lstat(full)
            path = prefix + name
            if stat.S_ISLNK(info.st_mode):
                result[path] = ("link", os.readlink(full))
            elif stat.S_ISDIR(info.st_mode):
                result[path] = ("dir",)
            else:
                data = Path(full).read_bytes()
                result[path] = ("file", bool(info.st_mode & 0o111),
                                hashlib.sha256(data).hexdigest())
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(folder, d))]
    return result


def archive_snapshot(bare: Path, sha: str, subdirectory: str = "") -> dict[str, tuple[Any, ...]]:
    """The same snapshot, of `git archive` of the commit (or its subdirectory's tree)."""
    treeish = f"{sha}:{subdirectory}" if subdirectory else sha
    data = subprocess.run(["git", "archive", "--format=tar", treeish], cwd=bare, check=True,
                          capture_output=True).stdout
    result: dict[str, tuple[Any, ...]] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive:
            path = member.name.rstrip("/")
            if member.isdir():
                result[path] = ("dir",)
            elif member.issym():
                result[path] = ("link", member.linkname)
            else:
                handle = archive.extractfile(member)
                assert handle is not None
                result[path] = ("file", bool(member.mode & 0o111),
                                hashlib.sha256(handle.read()).hexdigest())
    return result


def assert_nothing_left(parent: Path) -> None:
    """After a failed download: no destination and no temporary directory beside it."""
    assert sorted(p.name for p in parent.iterdir()) == []


def assert_no_secret(text: str, *secrets: str) -> None:
    import base64

    for secret in secrets:
        assert secret not in text
        for user in ("x-access-token", "oauth2", "test-user"):
            assert base64.b64encode(f"{user}:{secret}".encode()).decode() not in text


def downloads_dir(tmp_path: Path) -> Path:
    """An empty parent directory for destinations, so leftovers are easy to see."""
    parent = tmp_path / "downloads"
    parent.mkdir()
    return parent


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    return downloads_dir(tmp_path)


# ---------------------------------------------------------------------------- a custom class


class _LocalRepository(BaseCodeRepository):
    """Copies a local tree: a custom class without atomicity of its own."""

    source: Path = Path("/nonexistent")
    fail_after: int | None = None
    listing: dict[str, tuple[str, str]] | None = None

    def login(self) -> None:
        pass

    def download_files(self, commit: str, directory: str, repo_sub_directory: str | None) -> None:
        root = self.source / (repo_sub_directory or "")
        written = 0
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            target = Path(directory) / rel
            if path.is_dir() and not path.is_symlink():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if self.fail_after is not None and written >= self.fail_after:
                raise RuntimeError(f"network gone, token={self.token}")
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.is_symlink():
                os.symlink(os.readlink(path), target)
            else:
                target.write_bytes(path.read_bytes())
                target.chmod(path.stat().st_mode & 0o777)
            written += 1

    def get_local_context(self, path: str) -> None:
        return None


def _local_repo(source: Path, **attributes: Any) -> _LocalRepository:
    repo = _LocalRepository("id", "local", {"token": "sekrit-token-123"})
    repo.source = source
    for key, value in attributes.items():
        setattr(repo, key, value)
    return repo


def _write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


SHA = "0123456789abcdef0123456789abcdef01234567"


# ---------------------------------------------------------------------------- arguments


def test_validate_commit_accepts_hashes_only() -> None:
    assert validate_commit("ABCDEF1") == "abcdef1"
    assert validate_commit(SHA) == SHA
    for bad in ("", "main", "-rf", "abc", "g" * 40, "a" * 65, "HEAD~1"):
        with pytest.raises(UsageError):
            validate_commit(bad)


def test_normalize_subdirectory() -> None:
    assert normalize_subdirectory(None) == ""
    assert normalize_subdirectory("") == ""
    assert normalize_subdirectory("./a//b/") == "a/b"
    for bad in ("/abs", "a/../b", "..", "a/\0"):
        with pytest.raises(UsageError):
            normalize_subdirectory(bad)


def test_destination_must_be_absent_or_empty(tmp_path: Path) -> None:
    assert check_destination(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    assert check_destination(tmp_path / "empty") == tmp_path / "empty"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(UsageError, match="full is not empty"):
        check_destination(tmp_path / "full")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        check_destination(tmp_path / "file")
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    with pytest.raises(UsageError, match="not a directory"):
        check_destination(tmp_path / "link")


# ---------------------------------------------------------------------------- the frame


def test_custom_download_is_staged_and_filtered(tmp_path: Path, downloads: Path) -> None:
    source = tmp_path / "source"
    _write_tree(source, {"a.py": "a", "tests/t.py": "t", "tests/keep.py": "k", "logs/x.log": "l",
                         ".dockerignore": "tests\n!tests/keep.py\nlogs\n*.md\n", "R.md": "r"})
    result = download(_local_repo(source), SHA, downloads / "code")
    assert sorted(snapshot(result)) == [".dockerignore", "a.py", "tests", "tests/keep.py"]
    assert sorted(p.name for p in downloads.iterdir()) == ["code"]


def test_empty_destination_is_replaced(tmp_path: Path, downloads: Path) -> None:
    source = tmp_path / "source"
    _write_tree(source, {"a.py": "a"})
    (downloads / "code").mkdir()
    download(_local_repo(source), SHA, downloads / "code")
    assert (downloads / "code" / "a.py").read_text() == "a"


def test_non_empty_destination_is_refused_and_kept(tmp_path: Path, downloads: Path) -> None:
    source = tmp_path / "source"
    _write_tree(source, {"a.py": "a"})
    (downloads / "code").mkdir()
    (downloads / "code" / "mine").write_text("keep me")
    with pytest.raises(UsageError, match="code is not empty"):
        download(_local_repo(source), SHA, downloads / "code")
    assert (downloads / "code" / "mine").read_text() == "keep me"
    assert sorted(p.name for p in downloads.iterdir()) == ["code"]


def test_failing_custom_download_leaves_nothing_and_no_token(tmp_path: Path,
                                                             downloads: Path) -> None:
    source = tmp_path / "source"
    _write_tree(source, {f"f{i}.py": str(i) for i in range(5)})
    with pytest.raises(DownloadError) as caught:
        download(_local_repo(source, fail_after=3), SHA, downloads / "code")
    assert "download_files failed: RuntimeError: network gone" in str(caught.value)
    assert_no_secret(str(caught.value), "sekrit-token-123")
    assert_nothing_left(downloads)


def test_builder_errors_of_custom_classes_are_redacted(tmp_path: Path, downloads: Path) -> None:
    class Loud(_LocalRepository):
        def download_files(self, commit: str, directory: str, sub: str | None) -> None:
            (Path(directory) / "partial.py").write_text("x")
            raise DownloadError(f"server said no to {self.token}\nsecond line")

    repo = Loud("id", "loud", {"token": "sekrit-token-123"})
    with pytest.raises(DownloadError) as caught:
        download(repo, SHA, downloads / "code")
    assert str(caught.value) == "server said no to *** second line"
    assert_nothing_left(downloads)


def test_verify_custom_with_tree_listing(tmp_path: Path, downloads: Path) -> None:
    source = tmp_path / "source"
    _write_tree(source, {"a.py": "a", "d/b.py": "b"})
    listing = {"a.py": ("100644", blob_sha(b"a")), "d/b.py": ("100644", blob_sha(b"b"))}

    class Listed(_LocalRepository):
        def tree_listing(self, commit: str, subdirectory: str | None) -> dict[str, Any]:
            return listing

    repo = Listed("id", "listed", {})
    repo.source = source
    download(repo, SHA, downloads / "ok", verify=True)
    listing["a.py"] = ("100644", blob_sha(b"other"))
    with pytest.raises(IntegrityError, match=r"content: a\.py"):
        download(repo, SHA, downloads / "bad", verify=True)
    assert not (downloads / "bad").exists()


def test_verify_custom_without_tree_listing_is_loud(tmp_path: Path, downloads: Path) -> None:
    source = tmp_path / "source"
    _write_tree(source, {"a.py": "a"})
    repo = _local_repo(source)
    repo.verify_download = True  # type: ignore[attr-defined]
    with pytest.raises(DownloadError, match="has no tree_listing"):
        download(repo, SHA, downloads / "code")
    assert_nothing_left(downloads)


def test_empty_submodule_in_shipped_gitmodules_fails(tmp_path: Path, downloads: Path) -> None:
    source = tmp_path / "source"
    _write_tree(source, {"a.py": "a", ".gitmodules":
                         '[submodule "lib"]\n\tpath = libs/lib\n\turl = https://x.test/lib.git\n'})
    (source / "libs" / "lib").mkdir(parents=True)
    with pytest.raises(DownloadError, match=r"submodule 'libs/lib'.*arrived empty"):
        download(_local_repo(source), SHA, downloads / "code")
    assert_nothing_left(downloads)
    (source / "libs" / "lib" / "x.py").write_text("x")
    download(_local_repo(source), SHA, downloads / "code")


# ---------------------------------------------------------------------------- helpers


def test_apply_dockerignore_matches_docker_semantics(tmp_path: Path) -> None:
    _write_tree(tmp_path, {
        ".dockerignore": "# comment\n**/__pycache__\n*.log\ndocs/\n!docs/keep.md\nbuild\n",
        "a.py": "a", "x.log": "l", "sub/y.log": "l", "sub/__pycache__/m.pyc": "c",
        "docs/keep.md": "k", "docs/drop.md": "d", "build/out/z": "z", "src/ok.py": "o",
    })
    (tmp_path / "was_empty").mkdir()
    (tmp_path / "link.log").symlink_to("a.py")
    apply_dockerignore(tmp_path)
    assert sorted(snapshot(tmp_path)) == [".dockerignore", "a.py", "docs", "docs/keep.md",
                                          "src", "src/ok.py", "sub", "sub/y.log", "was_empty"]


def test_apply_dockerignore_without_file_changes_nothing(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"a.py": "a"})
    assert apply_dockerignore(tmp_path) == 0


def test_parse_gitmodules() -> None:
    text = (
        "# comment\n"
        '[submodule "lib"]\n\tpath = libs/lib\n\turl = ../lib.git\n'
        '[submodule "quoted name"]\n\tpath = "with space"  ; trailing comment\n'
        "\turl = https://example.test/a.git\n"
        '[submodule "incomplete"]\n\tpath = x\n'
        '[core]\n\tbare = false\n'
    )
    assert parse_gitmodules(text) == [Submodule("libs/lib", "../lib.git"),
                                      Submodule("with space", "https://example.test/a.git")]


def test_resolve_submodule_url() -> None:
    base = "https://h.test/o/super.git"
    assert resolve_submodule_url("../lib.git", base) == "https://h.test/o/lib.git"
    assert resolve_submodule_url("../../x/lib", base) == "https://h.test/x/lib"
    assert resolve_submodule_url("./nested", base) == "https://h.test/o/super.git/nested"
    assert resolve_submodule_url("git@h.test:o/a.git", base) == "git@h.test:o/a.git"
    with pytest.raises(DownloadError):
        resolve_submodule_url("../../../../x", base)


def test_empty_directories(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "f").write_text("f")
    assert empty_directories(tmp_path) == ["a/b"]


def test_relative_listing_and_verify_tree(tmp_path: Path) -> None:
    entries = [("app/a.py", "100644", blob_sha(b"a")), ("app/d", "040000", "0" * 40),
               ("app/lib", "160000", "1" * 40), ("other.py", "100644", blob_sha(b"o"))]
    listing = relative_listing(entries, "app")
    assert listing == {"a.py": ("100644", blob_sha(b"a")), "lib": ("160000", "1" * 40)}
    (tmp_path / "a.py").write_text("a")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "sub.py").write_text("submodule file")  # not in the listing: fine
    verify_tree(tmp_path, listing, what="t")
    (tmp_path / "extra.py").write_text("e")
    with pytest.raises(IntegrityError, match=r"extra: extra\.py"):
        verify_tree(tmp_path, listing, what="t")


def test_network_reader_reports_failure_without_urls() -> None:
    def chunks() -> Iterator[bytes]:
        yield b"abc"
        raise ConnectionResetError(
            "HTTPConnectionPool(host='h', port=1): /x?token=SECRETQUERY reset by peer")

    reader = NetworkReader(chunks())
    assert reader.read(2) == b"ab"
    with pytest.raises(OSError):
        reader.read(10)
    assert reader.failure == "connection reset"
    assert "SECRETQUERY" not in (reader.failure or "")


def test_concurrent_downloads_to_distinct_destinations(tmp_path: Path, downloads: Path) -> None:
    source = tmp_path / "source"
    _write_tree(source, {f"d{i}/f{j}.py": f"{i}{j}" for i in range(5) for j in range(5)})
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            download(_local_repo(source), SHA, downloads / f"code{index}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(p.name for p in downloads.iterdir()) == [f"code{i}" for i in range(6)]


def add_gitlink(handle: Any, path: str, sha: str, url: str) -> str:
    """Commit a submodule at `path` pinned to `sha` (no clone needed), with its .gitmodules."""
    (handle.work / path).mkdir(parents=True, exist_ok=True)
    handle.git("update-index", "--add", "--cacheinfo", f"160000,{sha},{path}")
    name = path.rsplit("/", 1)[-1]
    gitmodules = f'[submodule "{name}"]\n\tpath = {path}\n\turl = {url}\n'
    commit = str(handle.commit({".gitmodules": gitmodules, "app/main.py": "print(1)\n"},
                               "add submodule"))
    handle.push()
    return commit


def two_commits(handle: Any) -> tuple[str, str]:
    """A library with two commits; the first is not a branch tip any more."""
    first = str(handle.commit({"lib.py": "VERSION = 1\n", "bin/tool": Executable("#!/bin/sh\n")},
                              "v1"))
    second = str(handle.commit({"lib.py": "VERSION = 2\n"}, "v2"))
    handle.push()
    return first, second
