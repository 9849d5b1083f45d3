"""Git LFS files: one behaviour for archives, verification and updates, on both servers.

builder ships what the service's archive holds: GitLab's holds the LFS content, GitHub's the
pointer unless the repository's "Include Git LFS objects in archives" setting is on. Verification
accepts either, content only when it is exactly what the pointer names. An update never fetches
a changed LFS file's pointer: it downloads the archive, so the tree of a commit never depends on
what was cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from builder.code.download import CachedTree, download
from builder.errors import IntegrityError
from builder.repositories.base import BaseCodeRepository
from tests.infra.httpbase import LoopbackServer
from tests.integration.code.test_download_common import assert_nothing_left, snapshot
from tests.integration.repositories.test_download_github import CODELOAD, github_repo
from tests.integration.repositories.test_download_gitlab import ARCHIVE, gitlab_repo

MODEL = b"\x89weights\x00" * 300
DATA = b"rows,of,data\n" * 50
ATTRIBUTES = "*.bin filter=lfs diff=lfs merge=lfs -text\n"


@dataclass(frozen=True)
class Forge:
    name: str
    archive: str
    pointer_reads: str  # the request that reads a pointer blob for verification

    def server(self, request: pytest.FixtureRequest) -> LoopbackServer:
        return request.getfixturevalue(f"{self.name}_server")  # type: ignore[no-any-return]

    def repo(self, server: Any, path: str) -> BaseCodeRepository:
        return github_repo(server, path) if self.name == "github" else gitlab_repo(server, path)


FORGES = {
    "github": Forge("github", CODELOAD, r"/git/blobs/"),
    "gitlab": Forge("gitlab", ARCHIVE, r"/repository/blobs/"),
}


Setup = tuple[Forge, Any, Any, BaseCodeRepository, bool]


def _repository(request: pytest.FixtureRequest, kind: str) -> Setup:
    """A repository with two LFS files; whether its archives hold their content."""
    forge = FORGES[kind.split("-")[0]]
    server = forge.server(request)
    handle = server.create_repo("grp/lfs")
    handle.commit({".gitattributes": ATTRIBUTES, "app/model.bin": server.add_lfs_object(MODEL),
                   "app/data.bin": server.add_lfs_object(DATA), "app/main.py": "print(1)\n"})
    handle.push()
    if kind == "github-lfs-setting":
        server.include_lfs_in_archives("grp/lfs")
    return forge, server, handle, forge.repo(server, "grp/lfs"), kind != "github"


@pytest.fixture(params=["github", "github-lfs-setting", "gitlab"])
def lfs(request: pytest.FixtureRequest) -> Setup:
    return _repository(request, request.param)


@pytest.fixture(params=["github-lfs-setting", "gitlab"])
def lfs_content(request: pytest.FixtureRequest) -> Setup:
    """Only the archives that hold LFS content."""
    return _repository(request, request.param)


def test_a_verified_download_ships_what_the_archive_holds(lfs: Any, tmp_path: Path) -> None:
    forge, server, handle, repo, holds_content = lfs
    server.reset_counts()
    result = download(repo, handle.head, tmp_path / "code", "app", verify=True)
    model = (result / "model.bin").read_bytes()
    if holds_content:
        assert model == MODEL and (result / "data.bin").read_bytes() == DATA
        assert server.count(forge.pointer_reads) == 2  # each pointer, to check the content
    else:
        assert model == server.add_lfs_object(MODEL)  # the pointer, as GitHub's archive has it
        assert server.count(forge.pointer_reads) == 0
    assert (result / "main.py").read_text() == "print(1)\n"


def test_content_that_is_not_what_the_pointer_names_fails_verification(
        lfs_content: Any, tmp_path: Path) -> None:
    _forge, server, handle, repo, _holds = lfs_content
    oid = next(oid for oid, content in server.lfs_objects.items() if content == MODEL)
    server.lfs_objects[oid] = MODEL[:-1] + b"!"  # same size, other content
    parent = tmp_path / "downloads"
    parent.mkdir()
    with pytest.raises(IntegrityError, match=r"content: model\.bin"):
        download(repo, handle.head, parent / "code", "app", verify=True)
    assert_nothing_left(parent)


def test_an_update_that_changes_an_lfs_file_downloads_the_archive(lfs: Any,
                                                                  tmp_path: Path) -> None:
    forge, server, handle, repo, _holds = lfs
    first = handle.head
    cached = download(repo, first, tmp_path / "first", verify=True)
    second = str(handle.commit({"app/model.bin": server.add_lfs_object(MODEL + b"v2")}))
    handle.push()
    server.reset_counts()
    updated = download(repo, second, tmp_path / "second", base=CachedTree(first, cached),
                       verify=True)
    assert server.count(forge.archive) == 1
    assert snapshot(updated) == snapshot(download(repo, second, tmp_path / "full"))


def test_an_update_beside_unchanged_lfs_files_equals_a_full_download(lfs: Any,
                                                                    tmp_path: Path) -> None:
    forge, server, handle, repo, holds_content = lfs
    first = handle.head
    cached = download(repo, first, tmp_path / "first")
    second = str(handle.commit({"app/main.py": "print(2)\n"}))
    handle.push()
    server.reset_counts()
    updated = download(repo, second, tmp_path / "second", base=CachedTree(first, cached),
                       verify=True)
    assert server.count(forge.archive) == 0  # an update: main.py fetched, the rest linked
    assert snapshot(updated) == snapshot(download(repo, second, tmp_path / "full"))
    assert ((updated / "app/model.bin").read_bytes() == MODEL) is holds_content
