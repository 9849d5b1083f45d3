"""The git type's incremental update: an object store in the cache, on the loopback git server.

Every updated tree is compared with a full fetch of the same commit (in a temporary
repository, no store) and with `git archive` on the server. What crosses the wire is counted
on the server: the objects in each pack that git-upload-pack sends.
"""

from __future__ import annotations

import json
import os
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest

from builder.code.download import CachedTree, download
from builder.container.entrypoint import Contract, ensure_cached
from builder.errors import DownloadError
from builder.repositories.git import GitCodeRepository
from builder.repositories.git_store import store_path
from tests.infra.git_server import GitServer
from tests.infra.gitrepos import Executable, Symlink
from tests.integration.code.test_download_common import (
    archive_snapshot,
    assert_nothing_left,
    commit_rich,
    downloads_dir,
    snapshot,
)
from tests.integration.repositories.test_download_git import git_repo

UPLOAD_PACK = r"/git-upload-pack$"


def cached_repo(server: GitServer, path: str, cache: Path) -> GitCodeRepository:
    repo = git_repo(server.clone_url(path), token=server.token)
    repo.download_cache = cache
    return repo


def next_commit(handle: Any, files: dict[str, Any]) -> str:
    sha = str(handle.commit(files, "next"))
    handle.push()
    return sha


def full_fetch(server: GitServer, path: str, sha: str, target: Path,
               subdirectory: str | None = None) -> dict[str, Any]:
    """The same commit fetched without a store, as a download without a cache does."""
    return snapshot(download(git_repo(server.clone_url(path), token=server.token), sha, target,
                             subdirectory))


@pytest.fixture
def first(git_server: GitServer, tmp_path: Path) -> tuple[Any, GitCodeRepository, CachedTree]:
    """The rich commit, downloaded in full into the cache: what later commits update from."""
    handle = git_server.create_repo("o/proj")
    sha = commit_rich(handle)
    repo = cached_repo(git_server, "o/proj", tmp_path / "cache")
    cached = download(repo, sha, tmp_path / "cache" / "first")
    assert snapshot(cached) == archive_snapshot(handle.bare, sha)
    git_server.reset_counts()
    return handle, repo, CachedTree(sha, cached)


def test_a_one_line_change_sends_only_the_changed_objects_and_links_the_rest(
        git_server: GitServer, first: Any, tmp_path: Path) -> None:
    handle, repo, base = first
    sha = next_commit(handle, {"app/main.py": "print('changed')\n"})
    logged: list[str] = []
    result = download(repo, sha, downloads_dir(tmp_path) / "code", base=base, log=logged.append)
    assert snapshot(result) == archive_snapshot(handle.bare, sha)
    # One pack: the commit, the two trees on the changed path (root, app) and the one blob.
    assert git_server.packs_sent == [4]
    assert git_server.count(UPLOAD_PACK) == 1
    assert logged == [f"updated from {base.commit[:12]}: 1 changed file fetched"]
    unchanged = os.stat(result / "setup.cfg"), os.stat(base.path / "setup.cfg")
    assert unchanged[0].st_ino == unchanged[1].st_ino  # linked, not copied
    assert (base.path / "app" / "main.py").read_text() == "print('hello')\n"  # base untouched
    assert snapshot(result) == full_fetch(git_server, "o/proj", sha, tmp_path / "full")


def test_every_updated_tree_equals_a_full_fetch(git_server: GitServer, first: Any,
                                                tmp_path: Path) -> None:
    handle, repo, base = first
    changes: list[dict[str, Any]] = [
        {"app/new/deep/file.py": "new\n", "other/x.txt": None},  # an add; a whole dir goes
        {"app/link_to_main": Symlink("bin/run.sh"), "app/main.py": Executable("print(1)\n")},
        {"app/pkg/data/日本語.txt": None, "app/pkg/data/renamed.txt": "japanese\n"},  # rename
        {f"gen/f{index:03d}.txt": f"{index}\n" for index in range(120)},  # many files
        {"app/binary.bin": bytes(range(255, -1, -1)) * 64, "README.md": "# two\n"},
    ]
    for number, files in enumerate(changes):
        sha = next_commit(handle, files)
        git_server.reset_counts()
        logged: list[str] = []
        updated = download(repo, sha, tmp_path / f"updated-{number}", base=base,
                           log=logged.append)
        assert logged and logged[0].startswith("updated from"), (number, logged)
        assert len(git_server.packs_sent) == 1, number  # one fetch, whatever the change
        full = full_fetch(git_server, "o/proj", sha, tmp_path / f"full-{number}")
        assert snapshot(updated) == full == archive_snapshot(handle.bare, sha), number
        base = CachedTree(sha, updated)


def test_a_subdirectory_fetches_its_changed_blobs_by_id(git_server: GitServer,
                                                        tmp_path: Path) -> None:
    handle = git_server.create_repo("o/mono")
    first_sha = commit_rich(handle)
    repo = cached_repo(git_server, "o/mono", tmp_path / "cache")
    cached = download(repo, first_sha, tmp_path / "cache" / "first", "app")
    git_server.reset_counts()
    sha = next_commit(handle, {"app/main.py": "print(2)\n", "other/x.txt": "outside\n",
                               "other/big.bin": os.urandom(50_000)})
    updated = download(repo, sha, tmp_path / "updated", "app",
                       base=CachedTree(first_sha, cached))
    assert snapshot(updated) == archive_snapshot(handle.bare, sha, "app")
    assert snapshot(updated) == full_fetch(git_server, "o/mono", sha, tmp_path / "full", "app")
    commit_pack, blob_pack, *full = git_server.packs_sent
    # The commit and its trees without blobs (git may add an old tree as a delta base), then
    # the one blob below the subdirectory that changed: nothing of other/ crosses the wire.
    assert commit_pack <= 1 + 2 * 2 and blob_pack == 1, git_server.packs_sent
    assert len(full) == 2  # the full fetch without a store, for the comparison


def test_a_changed_dockerignore_writes_the_whole_tree_from_the_store(
        git_server: GitServer, first: Any, tmp_path: Path) -> None:
    handle, repo, base = first
    sha = next_commit(handle, {".dockerignore": "other\n", "app/main.py": "print(3)\n"})
    logged: list[str] = []
    result = download(repo, sha, tmp_path / "code", base=base, log=logged.append)
    assert logged == []  # not an update: written in full, from the store
    assert "other/x.txt" not in snapshot(result)
    assert snapshot(result) == full_fetch(git_server, "o/proj", sha, tmp_path / "full")
    # Still only what the store lacked: the commit, two trees, two blobs.
    assert git_server.packs_sent[0] == 5


def test_a_base_that_is_not_in_the_store_downloads_in_full(git_server: GitServer,
                                                           tmp_path: Path) -> None:
    handle = git_server.create_repo("o/other")
    first_sha = commit_rich(handle)
    plain = download(git_repo(git_server.clone_url("o/other"), token=git_server.token),
                     first_sha, tmp_path / "plain")
    sha = next_commit(handle, {"app/main.py": "print(4)\n"})
    repo = cached_repo(git_server, "o/other", tmp_path / "cache")
    logged: list[str] = []
    result = download(repo, sha, tmp_path / "code", base=CachedTree(first_sha, plain),
                      log=logged.append)
    assert logged == [] and snapshot(result) == archive_snapshot(handle.bare, sha)


@pytest.mark.parametrize("fault", ["tampered", "missing"])
def test_a_tampered_or_missing_object_fails_and_leaves_nothing(
        git_server: GitServer, first: Any, tmp_path: Path, fault: str) -> None:
    handle, repo, base = first
    sha = next_commit(handle, {"app/main.py": "print('real')\n"})
    blob = subprocess.run(["git", "rev-parse", f"{sha}:app/main.py"], cwd=handle.bare,
                          check=True, capture_output=True, text=True).stdout.strip()
    loose = handle.bare / "objects" / blob[:2] / blob[2:]
    assert loose.is_file(), "the push left the new blob loose on the server"
    loose.chmod(0o644)
    if fault == "tampered":
        evil = b"print('evil')\n"
        loose.write_bytes(zlib.compress(b"blob %d\0" % len(evil) + evil))
    else:
        loose.unlink()
    downloads = downloads_dir(tmp_path)
    with pytest.raises(DownloadError):
        download(repo, sha, downloads / "code", base=base)
    assert_nothing_left(downloads)
    assert (base.path / "app" / "main.py").read_text() == "print('hello')\n"
    store = store_path(tmp_path / "cache", repo.url)
    found = subprocess.run(["git", "cat-file", "-e", blob], cwd=store,
                           env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
                           capture_output=True).returncode
    assert found != 0  # no object under the real blob's id: git keeps only what hashes right


def test_the_entrypoint_keeps_the_store_in_its_cache_and_the_token_out_of_it(
        git_server: GitServer, tmp_path: Path) -> None:
    handle = git_server.create_repo("o/entry")
    commit_rich(handle)
    cache = tmp_path / "entries"

    def contract(commit: str) -> Contract:
        spec = {"type": "git", "name": "r", "config": {"url": git_server.clone_url("o/entry")}}
        return Contract.from_environment({
            "BUILDER_COMMIT": commit, "BUILDER_CODE_REPOSITORY": json.dumps(spec),
            "BUILDER_CACHE_DIR": str(cache), "BUILDER_TOKEN": git_server.token,
        })

    one = ensure_cached(contract(handle.head))
    sha = next_commit(handle, {"app/main.py": "print(5)\n"})
    git_server.reset_counts()
    logged: list[str] = []
    two = ensure_cached(contract(sha), log=logged.append)
    assert snapshot(two) == archive_snapshot(handle.bare, sha) and one != two
    assert logged[-1].startswith("updated from") and git_server.packs_sent == [4]
    store = store_path(cache, git_server.clone_url("o/entry"))
    assert (store / "HEAD").is_file()
    for folder, _, files in os.walk(cache):
        for name in files:
            assert git_server.token.encode() not in Path(folder, name).read_bytes()
