"""A download that fills a mirror (the container's code dir on a cold start) in the same pass.

The mirror must end exactly as the cache entry (the `.dockerignore` applied to both), or be
marked incomplete so that the caller copies the entry instead: after an update from a cached
tree, a submodule's second archive, or a type that does not download one archive (git).
What the extraction noted of each entry must describe the tree exactly as reading it back
does (`tree_digest`, the cache entry's seal).
"""

from __future__ import annotations

from pathlib import Path

from builder.code.download import CachedTree, Mirror, download
from builder.code.files import tree_digest
from builder.container import cache
from builder.container.entrypoint import Contract, prepare
from tests.infra.git_server import GitServer
from tests.infra.github_server import GitHubServer
from tests.infra.gitlab_server import GitLabServer
from tests.integration.code.test_download_common import (
    add_gitlink,
    archive_snapshot,
    commit_rich,
    snapshot,
    two_commits,
)
from tests.integration.repositories.test_download_git import git_repo
from tests.integration.repositories.test_download_github import github_repo
from tests.integration.repositories.test_download_gitlab import gitlab_repo


def mirror_in(tmp_path: Path) -> Mirror:
    (tmp_path / "mirror").mkdir()
    return Mirror(tmp_path / "mirror")


def test_an_archive_download_fills_the_mirror_exactly(github_server: GitHubServer,
                                                       tmp_path: Path) -> None:
    handle = github_server.create_repo("octo/proj")
    sha = handle.commit({"app/.dockerignore": "*.log\n**/*.log\n", "app/debug.log": "x\n",
                         "app/logs/a.log": "x\n", "app/main.py": "print(1)\n"}, "ignore")
    handle.push()
    sha = commit_rich(handle)
    mirror = mirror_in(tmp_path)
    result = download(github_repo(github_server), sha, tmp_path / "cache", "app", mirror=mirror)
    assert mirror.complete
    assert snapshot(mirror.path) == snapshot(result)
    assert not (mirror.path / "debug.log").exists()  # the .dockerignore went for both
    assert not (mirror.path / "logs").exists()  # and so did the directory it emptied
    expected = archive_snapshot(handle.bare, sha, "app")
    for gone in ("debug.log", "logs", "logs/a.log"):
        expected.pop(gone)
    assert snapshot(result) == expected
    assert mirror.tree_digest() == tree_digest(result) == tree_digest(mirror.path)


def test_without_a_directory_the_mirror_still_describes_the_tree(github_server: GitHubServer,
                                                                  tmp_path: Path) -> None:
    handle = github_server.create_repo("octo/proj")
    sha = commit_rich(handle)
    mirror = Mirror()
    result = download(github_repo(github_server), sha, tmp_path / "cache", mirror=mirror)
    assert mirror.complete and mirror.tree_digest() == tree_digest(result)


def test_a_retried_archive_starts_the_mirror_again(gitlab_server: GitLabServer,
                                                   tmp_path: Path) -> None:
    handle = gitlab_server.create_repo("grp/proj")
    sha = commit_rich(handle)
    gitlab_server.drop_next_downloads(1, fraction=0.5)
    mirror = mirror_in(tmp_path)
    result = download(gitlab_repo(gitlab_server, "grp/proj"), sha, tmp_path / "cache",
                      mirror=mirror)
    assert gitlab_server.faults_fired.get("drop") == 1
    assert mirror.complete and snapshot(mirror.path) == snapshot(result)
    assert mirror.tree_digest() == tree_digest(result)  # nothing of the broken try is left


def test_an_update_leaves_the_mirror_to_the_caller(github_server: GitHubServer,
                                                   tmp_path: Path) -> None:
    handle = github_server.create_repo("octo/proj")
    first = commit_rich(handle)
    repo = github_repo(github_server)
    base = CachedTree(first, download(repo, first, tmp_path / "first"))
    sha = str(handle.commit({"app/main.py": "print(2)\n"}, "next"))
    handle.push()
    mirror = mirror_in(tmp_path)
    logged: list[str] = []
    download(repo, sha, tmp_path / "cache", base=base, mirror=mirror, log=logged.append)
    assert logged == [f"updated from {first[:12]}: 1 changed file fetched"], github_server.requests
    assert not mirror.complete and not any(mirror.path.iterdir())


def test_a_submodule_spoils_the_mirror(github_server: GitHubServer, tmp_path: Path) -> None:
    lib = github_server.create_repo("octo/lib")
    first, _ = two_commits(lib)
    proj = github_server.create_repo("octo/proj")
    sha = add_gitlink(proj, "app/vendor/lib", first, "../lib.git")
    mirror = mirror_in(tmp_path)
    result = download(github_repo(github_server), sha, tmp_path / "cache", "app", mirror=mirror)
    assert (result / "vendor/lib/lib.py").is_file()
    assert mirror.claimed and mirror.spoiled and not mirror.complete


def test_a_git_download_leaves_the_mirror_empty(git_server: GitServer, tmp_path: Path) -> None:
    handle = git_server.create_repo("team/proj")
    sha = commit_rich(handle)
    mirror = mirror_in(tmp_path)
    download(git_repo(git_server.clone_url("team/proj"), git_server.token), sha,
             tmp_path / "cache", mirror=mirror)
    assert not mirror.complete and not any(mirror.path.iterdir())


def test_a_cold_entrypoint_start_fills_the_code_dir_as_a_copy_of_the_cache(
    github_server: GitHubServer, tmp_path: Path
) -> None:
    handle = github_server.create_repo("octo/proj")
    sha = commit_rich(handle)
    repo = github_repo(github_server)
    contract = Contract(tmp_path / "code", sha, {"type": "github", "name": "p",
                                                 "config": dict(repo.config)},
                        "app", tmp_path / "cache", github_server.token, False)
    (tmp_path / "code").mkdir()  # empty: builder may fill it
    prepare(contract)
    cached = tmp_path / "cache" / contract.cache_key
    assert snapshot(tmp_path / "code") == snapshot(cached) == archive_snapshot(
        handle.bare, sha, "app")
    # private copies: the run writes to its code dir, never into the cache
    assert (tmp_path / "code" / "main.py").stat().st_ino != (cached / "main.py").stat().st_ino
    cache.check_seal(cached)  # sealed from what the download wrote: it matches the tree
    assert sorted(p.name for p in tmp_path.iterdir()
                  if not p.name.endswith(".builder-code-dir")) == ["cache", "code"]
