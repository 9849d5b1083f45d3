"""Updating a cached tree to a newer commit, against the loopback GitHub and GitLab servers.

Every updated tree is compared with a full download of the same commit (and `git archive`):
the update may only ever be a faster way to the same files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from builder.code.download import CachedTree, download
from builder.container.entrypoint import Contract, ensure_cached
from builder.errors import IntegrityError
from builder.repositories.base import BaseCodeRepository
from tests.infra.gitrepos import BareRepo, Executable, Symlink
from tests.infra.httpbase import LoopbackServer
from tests.integration.code.test_download_common import (
    archive_snapshot,
    assert_nothing_left,
    commit_rich,
    downloads_dir,
    snapshot,
)
from tests.integration.repositories.test_download_github import CODELOAD, github_repo
from tests.integration.repositories.test_download_gitlab import ARCHIVE, gitlab_repo


@dataclass(frozen=True)
class Kind:
    """What differs per repository type: its server, its repository, what it asks."""

    name: str
    changes: str  # the request that tells what changed
    blob: str  # the request per changed file
    archive: str  # the full download's archive request
    changes_per_update: int

    def server(self, request: pytest.FixtureRequest) -> LoopbackServer:
        return request.getfixturevalue(f"{self.name}_server")  # type: ignore[no-any-return]

    def repo(self, server: Any, path: str) -> BaseCodeRepository:
        if self.name == "github":
            return github_repo(server, path)
        return gitlab_repo(server, path)


KINDS = {
    "github": Kind("github", r"/git/trees/", r"/git/blobs/", CODELOAD, 2),
    "gitlab": Kind("gitlab", r"/repository/compare", r"/repository/files/", ARCHIVE, 1),
}


@pytest.fixture(params=sorted(KINDS))
def kind(request: pytest.FixtureRequest) -> Kind:
    return KINDS[request.param]


@pytest.fixture
def first(kind: Kind, request: pytest.FixtureRequest,
          tmp_path: Path) -> tuple[Any, Any, CachedTree, BaseCodeRepository]:
    """The rich commit, downloaded in full: the cached tree later commits update from."""
    server = kind.server(request)
    name = f"octo/{kind.name}-{tmp_path.name}"[:60]
    handle = server.create_repo(name)
    sha = commit_rich(handle)
    repo = kind.repo(server, name)
    cached = download(repo, sha, tmp_path / "cache" / "first")
    server.reset_counts()
    return server, handle, CachedTree(sha, cached), repo


def _next_commit(handle: Any, files: dict[str, Any]) -> str:
    sha = str(handle.commit(files, "next"))
    handle.push()
    return sha


def _fresh(kind: Kind, request: pytest.FixtureRequest, label: str) -> tuple[Any, Any, Any]:
    server = kind.server(request)
    name = f"octo/{kind.name}-{label}-{request.node.name}"[:60].replace("[", "-").rstrip("]")
    return server, server.create_repo(name), kind.repo(server, name)


def test_a_one_line_change_fetches_one_file_and_links_the_rest(kind: Kind, first: Any,
                                                               tmp_path: Path) -> None:
    server, handle, base, repo = first
    sha = _next_commit(handle, {"app/main.py": "print('changed')\n"})
    logged: list[str] = []
    result = download(repo, sha, downloads_dir(tmp_path) / "code", base=base, log=logged.append)
    assert snapshot(result) == archive_snapshot(handle.bare, sha)
    assert server.count(kind.changes) == kind.changes_per_update
    assert server.count(kind.blob) == 1 and server.count(kind.archive) == 0
    assert server.request_count == kind.changes_per_update + 1
    assert logged == [f"updated from {base.commit[:12]}: 1 changed file fetched"]
    unchanged = os.stat(result / "setup.cfg"), os.stat(base.path / "setup.cfg")
    assert unchanged[0].st_ino == unchanged[1].st_ino  # linked, not copied
    assert (base.path / "app" / "main.py").read_text() == "print('hello')\n"  # base untouched


def test_adds_deletes_symlinks_and_modes_match_a_full_download(first: Any,
                                                               tmp_path: Path) -> None:
    _server, handle, base, repo = first
    sha = _next_commit(handle, {
        "app/new/deep/file.py": "new\n",
        "other/x.txt": None,  # deleted: its directory goes with it
        "app/link_to_main": Symlink("bin/run.sh"),  # retargeted
        "app/main.py": Executable("print('hello')\n"),  # mode only
        "app/pkg/data/日本語.txt": "changed\n",
    })
    updated = download(repo, sha, downloads_dir(tmp_path) / "code", base=base)
    full = download(repo, sha, tmp_path / "full")
    assert snapshot(updated) == snapshot(full) == archive_snapshot(handle.bare, sha)
    assert not (updated / "other").exists()


def test_subdirectory_update_matches_its_full_download(kind: Kind, request: pytest.FixtureRequest,
                                                       tmp_path: Path) -> None:
    server, handle, repo = _fresh(kind, request, "sub")
    first_sha = commit_rich(handle)
    cached = download(repo, first_sha, tmp_path / "first", "app")
    sha = _next_commit(handle, {"app/main.py": "print(2)\n", "other/x.txt": "outside\n"})
    server.reset_counts()
    updated = download(repo, sha, tmp_path / "updated", "app", base=CachedTree(first_sha, cached))
    assert snapshot(updated) == archive_snapshot(handle.bare, sha, "app")
    assert server.count(kind.blob) == 1 and server.count(kind.archive) == 0


def test_dockerignored_files_stay_out_and_a_changed_dockerignore_downloads_in_full(
    kind: Kind, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server, handle, repo = _fresh(kind, request, "ign")
    first_sha = _next_commit(handle, {".dockerignore": "docs\n", "docs/a.md": "a\n",
                                      "main.py": "1\n"})
    cached = download(repo, first_sha, tmp_path / "first")
    assert not (cached / "docs").exists()
    second = _next_commit(handle, {"docs/a.md": "b\n", "docs/new.md": "n\n", "main.py": "2\n"})
    server.reset_counts()
    updated = download(repo, second, tmp_path / "second", base=CachedTree(first_sha, cached))
    assert server.count(kind.archive) == 0
    assert snapshot(updated) == snapshot(download(repo, second, tmp_path / "second-full"))
    assert sorted(snapshot(updated)) == [".dockerignore", "main.py"]
    third = _next_commit(handle, {".dockerignore": "*.tmp\n"})
    server.reset_counts()
    updated = download(repo, third, tmp_path / "third", base=CachedTree(second, updated))
    assert "docs/a.md" in snapshot(updated)
    assert server.count(kind.archive) == 1 and server.count(kind.blob) == 0


def test_many_changes_download_in_full(kind: Kind, first: Any, tmp_path: Path) -> None:
    server, handle, base, repo = first
    sha = _next_commit(handle, {f"gen/f{i:03d}.txt": f"{i}\n" for i in range(100)})
    result = download(repo, sha, tmp_path / "code", base=base)
    assert snapshot(result) == archive_snapshot(handle.bare, sha)
    assert server.count(kind.archive) == 1 and server.count(kind.blob) == 0


def test_a_file_that_does_not_match_its_blob_id_fails_and_leaves_nothing(
    first: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _server, handle, base, repo = first
    sha = _next_commit(handle, {"app/main.py": "print('real')\n"})
    monkeypatch.setattr(BareRepo, "blob", lambda self, blob_sha: b"print('evil')\n")
    downloads = downloads_dir(tmp_path)
    with pytest.raises(IntegrityError, match="does not match id"):
        download(repo, sha, downloads / "code", base=base)
    assert_nothing_left(downloads)


def test_an_unusable_base_falls_back_to_the_archive(kind: Kind, first: Any,
                                                    tmp_path: Path) -> None:
    server, handle, base, repo = first
    sha = _next_commit(handle, {"app/main.py": "print(3)\n"})
    gone = CachedTree("0" * 40, base.path)  # a commit the server does not have
    result = download(repo, sha, tmp_path / "code", base=gone)
    assert snapshot(result) == archive_snapshot(handle.bare, sha)
    assert server.count(kind.archive) == 1


@pytest.mark.parametrize("failing", ["changes", "blob"])
def test_a_failing_update_request_falls_back_to_the_archive_at_once(
    kind: Kind, first: Any, tmp_path: Path, failing: str
) -> None:
    server, handle, base, repo = first
    sha = _next_commit(handle, {"app/main.py": "print(5)\n"})
    pattern = getattr(kind, failing)
    server.fail_next(1, status=502, match=pattern)
    logged: list[str] = []
    result = download(repo, sha, tmp_path / "code", base=base, log=logged.append)
    assert snapshot(result) == archive_snapshot(handle.bare, sha)
    # the slower start says why: the update's failure, then the full download
    assert len(logged) == 1 and logged[0].startswith(f"no update from {base.commit[:12]} ("), logged
    assert "HTTP 502" in logged[0] and logged[0].endswith("): downloading in full"), logged
    # one try each: github's two listings go out at once, so both are asked once
    asked = kind.changes_per_update if failing == "changes" else 1
    assert server.count(pattern) == asked and server.count(kind.archive) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "code"]


def test_the_entrypoint_cache_updates_from_the_newest_entry(kind: Kind, first: Any,
                                                            tmp_path: Path) -> None:
    server, handle, _base, repo = first

    def contract(commit: str) -> Contract:
        return Contract.from_environment({
            "BUILDER_COMMIT": commit,
            "BUILDER_CODE_REPOSITORY": json.dumps(
                {"type": kind.name, "name": "r", "config": dict(repo.config)}
            ),
            "BUILDER_CACHE_DIR": str(tmp_path / "entries"),
            "BUILDER_TOKEN": server.token,
        })

    one = ensure_cached(contract(handle.head))
    sha = _next_commit(handle, {"app/main.py": "print(4)\n"})
    server.reset_counts()
    logged: list[str] = []
    two = ensure_cached(contract(sha), log=logged.append)
    assert snapshot(two) == archive_snapshot(handle.bare, sha) and one != two
    assert server.count(kind.archive) == 0 and server.count(kind.blob) == 1
    previous = handle.git("rev-parse", "HEAD~1").strip()
    assert logged[-1] == f"updated from {previous[:12]}: 1 changed file fetched"


def test_a_gitlab_compare_that_timed_out_downloads_in_full(
    gitlab_server: Any, request: pytest.FixtureRequest, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    _server, handle, repo = _fresh(KINDS["gitlab"], request, "timeout")
    first_sha = commit_rich(handle)
    cached = download(repo, first_sha, tmp_path / "first")
    sha = _next_commit(handle, {"app/main.py": "print(6)\n"})
    monkeypatch.setattr(gitlab_server, "compare_times_out", True)
    gitlab_server.reset_counts()
    result = download(repo, sha, tmp_path / "code", base=CachedTree(first_sha, cached))
    assert snapshot(result) == archive_snapshot(handle.bare, sha)
    assert gitlab_server.count(r"/repository/compare") == 1
    assert gitlab_server.count(ARCHIVE) == 1 and gitlab_server.count(r"/repository/files/") == 0


def test_an_update_across_diverged_histories_gives_the_new_commit_s_tree(
    kind: Kind, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The cached commit is on a branch the new one does not contain: the change is tree to
    tree (GitLab's `straight=True`), not from the merge base, or the branch's own edits stay."""
    server, handle, repo = _fresh(kind, request, "diverged")
    fork = commit_rich(handle)
    on_branch = str(handle.commit({"app/main.py": "print('branch')\n",
                                   "app/branch_only.py": "b\n"}, "branch work",
                                  branch="feature"))
    handle.push("feature")
    handle.checkout("main")
    assert handle.head == fork
    on_main = _next_commit(handle, {"README.md": "# main moved on\n"})
    cached = download(repo, on_branch, tmp_path / "branch")
    server.reset_counts()
    updated = download(repo, on_main, tmp_path / "main", base=CachedTree(on_branch, cached))
    assert snapshot(updated) == archive_snapshot(handle.bare, on_main)
    assert (updated / "app" / "main.py").read_text() == "print('hello')\n"
    assert not (updated / "app" / "branch_only.py").exists()
    assert server.count(kind.archive) == 0  # an update, not a full download


def test_a_container_start_that_updates_from_github_does_not_import_pygithub(
    github_server: Any, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The entrypoint's update reads two listings and a blob as plain REST GETs: PyGithub's
    import (about 0.13 s) would be most of a small update's time."""
    server, handle, repo = _fresh(KINDS["github"], request, "imports")
    first_sha = commit_rich(handle)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BUILDER_")},
           "BUILDER_CACHE_DIR": str(tmp_path / "cache"), "BUILDER_TOKEN": server.token,
           "BUILDER_CODE_REPOSITORY": json.dumps({"type": "github", "name": "r",
                                                  "config": dict(repo.config)})}

    def start(commit: str, code: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "builder", "entrypoint", "--", "cat", "app/main.py"],
            env={**env, "BUILDER_COMMIT": commit, "BUILDER_CODE_DIR": str(tmp_path / code),
                 "PYTHONPROFILEIMPORTTIME": "1"},
            capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done

    start(first_sha, "one")
    sha = _next_commit(handle, {"app/main.py": "print('updated')\n"})
    server.reset_counts()
    done = start(sha, "two")
    assert done.stdout == "print('updated')\n"
    assert server.count(CODELOAD) == 0 and server.count(r"/git/blobs/") == 1  # an update
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "builder.repositories.github_api" in imported  # the profile did run
    assert not {name for name in imported if name.split(".")[0] == "github"}
