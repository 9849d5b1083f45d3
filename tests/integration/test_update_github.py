"""Updating a cached GitHub tree to a newer commit, against the loopback GitHub server.

Every updated tree is compared with a full download of the same commit (and `git archive`):
the update may only ever be a faster way to the same files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from builder.download import CachedTree, download
from builder.entrypoint import Contract, ensure_cached
from builder.errors import IntegrityError
from tests.infra.github_server import GitHubServer
from tests.infra.gitrepos import BareRepo, Executable, Symlink
from tests.integration.test_download_common import (
    archive_snapshot,
    assert_nothing_left,
    commit_rich,
    downloads_dir,
    snapshot,
)
from tests.integration.test_download_github import CODELOAD, github_repo

BLOBS = r"/git/blobs/"
TREES = r"/git/trees/"


@pytest.fixture
def first(github_server: GitHubServer, tmp_path: Path) -> tuple[GitHubServer, Any, CachedTree]:
    """The rich commit, downloaded in full: the cached tree later commits update from."""
    handle = github_server.create_repo("octo/proj")
    sha = commit_rich(handle)
    cached = download(github_repo(github_server), sha, tmp_path / "cache" / "first")
    github_server.reset_counts()
    return github_server, handle, CachedTree(sha, cached)


def _next_commit(handle: Any, files: dict[str, Any]) -> str:
    sha = str(handle.commit(files, "next"))
    handle.push()
    return sha


def test_a_one_line_change_fetches_one_blob_and_links_the_rest(first: Any, tmp_path: Path) -> None:
    server, handle, base = first
    sha = _next_commit(handle, {"app/main.py": "print('changed')\n"})
    logged: list[str] = []
    result = download(github_repo(server), sha, downloads_dir(tmp_path) / "code",
                      base=base, log=logged.append)
    assert snapshot(result) == archive_snapshot(handle.bare, sha)
    assert server.count(TREES) == 2 and server.count(BLOBS) == 1 and server.count(CODELOAD) == 0
    assert server.request_count == 3
    assert logged == [f"updated from {base.commit[:12]}: 1 changed file fetched"]
    unchanged = os.stat(result / "setup.cfg"), os.stat(base.path / "setup.cfg")
    assert unchanged[0].st_ino == unchanged[1].st_ino  # linked, not copied
    assert (base.path / "app" / "main.py").read_text() == "print('hello')\n"  # base untouched


def test_adds_deletes_symlinks_and_modes_match_a_full_download(first: Any,
                                                               tmp_path: Path) -> None:
    server, handle, base = first
    sha = _next_commit(handle, {
        "app/new/deep/file.py": "new\n",
        "other/x.txt": None,  # deleted: its directory goes with it
        "app/link_to_main": Symlink("bin/run.sh"),  # retargeted
        "app/main.py": Executable("print('hello')\n"),  # mode only
        "app/pkg/data/日本語.txt": "changed\n",
    })
    updated = download(github_repo(server), sha, downloads_dir(tmp_path) / "code", base=base)
    full = download(github_repo(server), sha, tmp_path / "full")
    assert snapshot(updated) == snapshot(full) == archive_snapshot(handle.bare, sha)
    assert not (updated / "other").exists()


def test_subdirectory_update_matches_its_full_download(github_server: GitHubServer,
                                                       tmp_path: Path) -> None:
    handle = github_server.create_repo("octo/sub")
    first_sha = commit_rich(handle)
    repo = github_repo(github_server, "octo/sub")
    cached = download(repo, first_sha, tmp_path / "first", "app")
    sha = _next_commit(handle, {"app/main.py": "print(2)\n", "other/x.txt": "outside\n"})
    github_server.reset_counts()
    updated = download(repo, sha, tmp_path / "updated", "app",
                       base=CachedTree(first_sha, cached))
    assert snapshot(updated) == archive_snapshot(handle.bare, sha, "app")
    assert github_server.count(BLOBS) == 1 and github_server.count(CODELOAD) == 0


def test_dockerignored_files_stay_out_and_a_changed_dockerignore_downloads_in_full(
    github_server: GitHubServer, tmp_path: Path
) -> None:
    handle = github_server.create_repo("octo/ignored")
    repo = github_repo(github_server, "octo/ignored")
    first_sha = _next_commit(handle, {".dockerignore": "docs\n", "docs/a.md": "a\n",
                                      "main.py": "1\n"})
    cached = download(repo, first_sha, tmp_path / "first")
    assert not (cached / "docs").exists()
    second = _next_commit(handle, {"docs/a.md": "b\n", "docs/new.md": "n\n", "main.py": "2\n"})
    github_server.reset_counts()
    updated = download(repo, second, tmp_path / "second", base=CachedTree(first_sha, cached))
    assert snapshot(updated) == snapshot(download(repo, second, tmp_path / "second-full"))
    assert sorted(snapshot(updated)) == [".dockerignore", "main.py"]
    third = _next_commit(handle, {".dockerignore": "*.tmp\n"})
    github_server.reset_counts()
    updated = download(repo, third, tmp_path / "third", base=CachedTree(second, updated))
    assert "docs/a.md" in snapshot(updated)
    assert github_server.count(CODELOAD) == 1 and github_server.count(BLOBS) == 0


def test_many_changes_download_in_full(first: Any, tmp_path: Path) -> None:
    server, handle, base = first
    sha = _next_commit(handle, {f"gen/f{i:03d}.txt": f"{i}\n" for i in range(100)})
    result = download(github_repo(server), sha, tmp_path / "code", base=base)
    assert snapshot(result) == archive_snapshot(handle.bare, sha)
    assert server.count(CODELOAD) == 1 and server.count(BLOBS) == 0


def test_a_blob_that_does_not_match_its_id_fails_and_leaves_nothing(
    first: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, handle, base = first
    sha = _next_commit(handle, {"app/main.py": "print('real')\n"})
    monkeypatch.setattr(BareRepo, "blob", lambda self, blob_sha: b"print('evil')\n")
    downloads = downloads_dir(tmp_path)
    with pytest.raises(IntegrityError, match="does not match id"):
        download(github_repo(server), sha, downloads / "code", base=base)
    assert_nothing_left(downloads)


def test_an_unusable_base_falls_back_to_the_archive(first: Any, tmp_path: Path) -> None:
    server, handle, base = first
    sha = _next_commit(handle, {"app/main.py": "print(3)\n"})
    gone = CachedTree("0" * 40, base.path)  # a commit the server does not have
    result = download(github_repo(server), sha, tmp_path / "code", base=gone)
    assert snapshot(result) == archive_snapshot(handle.bare, sha)
    assert server.count(CODELOAD) == 1


@pytest.mark.parametrize("failing", [TREES, BLOBS])
def test_a_failing_update_request_falls_back_to_the_archive_at_once(
    first: Any, tmp_path: Path, failing: str
) -> None:
    server, handle, base = first
    sha = _next_commit(handle, {"app/main.py": "print(5)\n"})
    server.fail_next(1, status=502, match=failing)
    result = download(github_repo(server), sha, tmp_path / "code", base=base)
    assert snapshot(result) == archive_snapshot(handle.bare, sha)
    assert server.count(failing) == 1 and server.count(CODELOAD) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "code"]


def test_the_entrypoint_cache_updates_from_the_newest_entry(first: Any, tmp_path: Path) -> None:
    server, handle, _base = first

    def contract(commit: str) -> Contract:
        repo = github_repo(server)
        return Contract.from_environment({
            "BUILDER_COMMIT": commit,
            "BUILDER_CODE_REPOSITORY": json.dumps(
                {"type": "github", "name": "gh", "config": dict(repo.config)}
            ),
            "BUILDER_CACHE_DIR": str(tmp_path / "cache"),
            "BUILDER_TOKEN": server.token,
        })

    one = ensure_cached(contract(handle.head))
    sha = _next_commit(handle, {"app/main.py": "print(4)\n"})
    server.reset_counts()
    logged: list[str] = []
    two = ensure_cached(contract(sha), log=logged.append)
    assert snapshot(two) == archive_snapshot(handle.bare, sha) and one != two
    assert server.count(CODELOAD) == 0 and server.count(BLOBS) == 1
    assert logged[-1] == f"updated from {handle.git('rev-parse', 'HEAD~1').strip()[:12]}: " \
                         "1 changed file fetched"
