"""An update's independent requests go out at once: counted as round trips on an emulated WAN.

The GitHub and GitLab servers sit behind tests/infra/wan_proxy.py (no handshake cost, so
that only the requests' own round trips count). An update of four changed files asks, one
after another, what changed and then the files: two sequential round trips, however many
requests (GitHub's two listings, the four files) it makes. One after another they would be
six for GitHub (two listings, four blobs) and five for GitLab (one compare, four files).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from builder.code.download import CachedTree, download
from tests.infra.server_fixtures import behind_wan
from tests.infra.wan_proxy import Wan, WanProfile
from tests.integration.code.test_download_common import archive_snapshot, commit_rich, snapshot
from tests.integration.repositories.test_download_github import github_repo
from tests.integration.repositories.test_download_gitlab import gitlab_repo

CHANGED = {f"app/changed_{n}.py": f"print({n})\n" for n in range(4)}


@pytest.fixture
def link() -> Iterator[Wan]:
    with Wan(WanProfile(rtt=0.05, handshake_rtts=0)) as wan:
        yield wan


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_an_update_asks_in_two_round_trips(kind: str, link: Wan, request: pytest.FixtureRequest,
                                           tmp_path: Path) -> None:
    server: Any = request.getfixturevalue(f"{kind}_server")
    proxy = behind_wan(link, server)
    name = "octo/round-trips"
    handle = server.create_repo(name)
    first = commit_rich(handle)
    repo = github_repo(server, name) if kind == "github" else gitlab_repo(server, name)
    base = CachedTree(first, download(repo, first, tmp_path / "cache" / "first"))
    sha = str(handle.commit(CHANGED, "four files"))
    handle.push()
    server.reset_counts()
    proxy.reset()
    logged: list[str] = []
    result = download(repo, sha, tmp_path / "code", base=base, log=logged.append)
    assert snapshot(result) == archive_snapshot(handle.bare, sha)
    assert logged == [f"updated from {first[:12]}: 4 changed files fetched"], server.requests
    stats = proxy.stats()
    asked = server.request_count
    assert asked == (6 if kind == "github" else 5) == len(stats.exchanges)
    assert stats.sequential_round_trips == 2
