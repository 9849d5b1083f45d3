"""Custom repository classes (--source module.Class) go through the same download frame."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from builder.code.download import download
from builder.errors import DownloadError, IntegrityError
from builder.repositories.base import BaseCodeRepository
from builder.repositories.types import instantiate
from builder.state.store import RepositoryRecord
from tests.infra.git_server import GitServer
from tests.integration.code.test_download_common import (
    archive_snapshot,
    assert_no_secret,
    assert_nothing_left,
    commit_rich,
    downloads_dir,
    snapshot,
)

MODULE = textwrap.dedent('''
    """A user's code repository: reads commits straight from a bare repository."""

    import io
    import subprocess
    import tarfile

    from builder.repositories.base import BaseCodeRepository


    class ArchiveRepository(BaseCodeRepository):
        def login(self):
            pass

        def _archive(self, commit, sub):
            treeish = f"{commit}:{sub}" if sub else commit
            return subprocess.run(["git", "archive", "--format=tar", treeish],
                                  cwd=self.config["bare"], check=True,
                                  capture_output=True).stdout

        def download_files(self, commit, directory, repo_sub_directory):
            data = self._archive(commit, repo_sub_directory)
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                for member in tar:
                    tar.extract(member, directory, set_attrs=True,
                                **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))

        def get_local_context(self, path):
            return None


    class FlakyRepository(ArchiveRepository):
        """Writes part of the tree, then loses its connection."""

        def download_files(self, commit, directory, repo_sub_directory):
            super().download_files(commit, directory, repo_sub_directory)
            raise ConnectionError(f"lost the server while using token {self.token}")


    class ListedRepository(ArchiveRepository):
        """Also lists the commit's tree, so that verify_download can check the download."""

        def tree_listing(self, commit, subdirectory):
            treeish = f"{commit}:{subdirectory}" if subdirectory else commit
            out = subprocess.run(["git", "ls-tree", "-r", "-z", treeish],
                                 cwd=self.config["bare"], check=True,
                                 capture_output=True).stdout
            listing = {}
            for record in out.split(b"\\0"):
                if record:
                    meta, _, name = record.partition(b"\\t")
                    mode, _kind, sha = meta.decode().split()
                    listing[name.decode()] = (mode, self.config.get("fake_sha") or sha)
            return listing
''')


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    return downloads_dir(tmp_path)


@pytest.fixture
def user_module(tmp_path: Path) -> Iterator[Path]:
    project = tmp_path / "project"
    project.mkdir()
    (project / "my_repos.py").write_text(MODULE)
    yield project
    sys.modules.pop("my_repos", None)


@pytest.fixture
def rich(git_server: GitServer) -> tuple[Any, str]:
    handle = git_server.create_repo("o/proj")
    return handle, commit_rich(handle)


def custom(project: Path, cls: str, token: str | None = "custom-token-42",
           **config: Any) -> BaseCodeRepository:
    record = RepositoryRecord(id="c1", name="mine", type="custom",
                              config={"source": f"my_repos.{cls}", **config}, token=token)
    return instantiate(record, project_dir=project)


def test_custom_class_gets_the_exact_tree(user_module: Path, rich: Any, downloads: Path) -> None:
    handle, sha = rich
    repo = custom(user_module, "ArchiveRepository", bare=str(handle.bare))
    result = download(repo, sha, downloads / "code", "app")
    assert snapshot(result) == archive_snapshot(handle.bare, sha, "app")
    assert sorted(p.name for p in downloads.iterdir()) == ["code"]


def test_custom_class_output_is_dockerignored(user_module: Path, git_server: GitServer,
                                              downloads: Path) -> None:
    handle = git_server.create_repo("o/ignored")
    sha = handle.commit({".dockerignore": "*.pyc\nsecrets/\n", "main.py": "m", "x.pyc": "c",
                         "secrets/key": "k"})
    handle.push()
    repo = custom(user_module, "ArchiveRepository", bare=str(handle.bare))
    result = download(repo, sha, downloads / "code")
    assert sorted(snapshot(result)) == [".dockerignore", "main.py"]


def test_failing_custom_class_leaves_nothing_and_no_token(user_module: Path, rich: Any,
                                                          downloads: Path) -> None:
    handle, sha = rich
    repo = custom(user_module, "FlakyRepository", bare=str(handle.bare))
    with pytest.raises(DownloadError) as caught:
        download(repo, sha, downloads / "code")
    message = str(caught.value)
    assert "code repository 'mine': download_files failed: ConnectionError" in message
    assert_no_secret(message, "custom-token-42")
    assert_nothing_left(downloads)


def test_custom_verify_uses_its_tree_listing(user_module: Path, rich: Any,
                                             downloads: Path) -> None:
    handle, sha = rich
    good = custom(user_module, "ListedRepository", bare=str(handle.bare))
    download(good, sha, downloads / "code", "app", verify=True)
    bad = custom(user_module, "ListedRepository", bare=str(handle.bare), fake_sha="0" * 40)
    with pytest.raises(IntegrityError, match="does not match the commit"):
        download(bad, sha, downloads / "other", "app", verify=True)
    assert sorted(p.name for p in downloads.iterdir()) == ["code"]


def test_custom_verify_without_listing_is_an_error(user_module: Path, rich: Any,
                                                   downloads: Path) -> None:
    handle, sha = rich
    repo = custom(user_module, "ArchiveRepository", bare=str(handle.bare))
    with pytest.raises(DownloadError, match="tree_listing"):
        download(repo, sha, downloads / "code", verify=True)
    assert_nothing_left(downloads)


def test_entrypoint_downloads_a_custom_repository_through_the_frame(
        user_module: Path, rich: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from builder.container.entrypoint import Contract, prepare

    handle, sha = rich
    monkeypatch.chdir(user_module)
    env = {
        "BUILDER_COMMIT": sha,
        "BUILDER_CODE_REPOSITORY": json.dumps({"type": "custom", "name": "mine", "config": {
            "source": "my_repos.ArchiveRepository", "bare": str(handle.bare)}}),
        "BUILDER_SUBDIRECTORY": "app",
        "BUILDER_CODE_DIR": str(tmp_path / "code"),
        "BUILDER_CACHE_DIR": str(tmp_path / "cache"),
        "BUILDER_TOKEN": "custom-token-42",
    }
    code_dir = prepare(Contract.from_environment(env))
    assert snapshot(code_dir) == archive_snapshot(handle.bare, sha, "app")
