"""Pytest fixtures for the loopback git, GitHub and GitLab servers.

Each fixture starts a fresh server for the test on 127.0.0.1 with a dynamic port, an empty
repositories directory and one random token, and stops it (joining its threads) afterwards, so
fault switches, counters and repositories never leak between tests.

    def test_x(github_server):
        repo = github_server.create_repo("octo/proj")          # private by default
        sha = repo.commit({"a.py": "print(1)\\n", "bin/run": Executable("#!/bin/sh\\n"),
                           "link": Symlink("a.py")}, "first")
        repo.push()                                             # to the bare repository
        Github(base_url=github_server.url, auth=Auth.Token(github_server.token), ...)
        git clone: repo.clone_url with -c http.extraHeader="Authorization: Bearer <token>"
        github_server.fail_next(2, status=503); github_server.request_count ...

    def test_y(wan, github_server):                             # the server behind a WAN
        behind_wan(wan, github_server)                          # its URLs name the proxy now
        ... wan.stats().sequential_round_trips, wan.stats().bytes_down ...
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

import pytest

from tests.infra.git_server import GitServer
from tests.infra.github_server import GitHubServer
from tests.infra.gitlab_server import GitLabServer
from tests.infra.gitrepos import Executable, RepoHandle, Symlink
from tests.infra.httpbase import LoopbackServer
from tests.infra.wan_proxy import Proxy, Wan, WanProfile

S = TypeVar("S", bound=LoopbackServer)

__all__ = [
    "Executable",
    "RepoHandle",
    "Symlink",
    "behind_wan",
    "git_server",
    "github_server",
    "gitlab_com_server",
    "gitlab_server",
    "wan",
]


def _server(cls: type[S], factory: pytest.TempPathFactory, **options: Any) -> Iterator[S]:
    base = factory.mktemp(f"{cls.kind}-server")
    server = cls(base / "repos", work_dir=base / "work", **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    """A :class:`GitServer`: git smart HTTP at ``{url}/{path}.git``, token in ``.token``."""
    yield from _server(GitServer, tmp_path_factory)


@pytest.fixture
def github_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHubServer]:
    """A :class:`GitHubServer`: REST API at ``.url`` (PyGithub ``base_url``), git at
    ``{url}/{owner}/{repo}.git``."""
    yield from _server(GitHubServer, tmp_path_factory)


@pytest.fixture
def gitlab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitLabServer]:
    """A :class:`GitLabServer`: API at ``{url}/api/v4`` (python-gitlab url = ``.url``), git at
    ``{url}/{group path}/{project}.git``."""
    yield from _server(GitLabServer, tmp_path_factory)


@pytest.fixture
def gitlab_com_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitLabServer]:
    """A :class:`GitLabServer` as gitlab.com: its archive limit (5 a minute per project and
    user) is on, as self-managed GitLab has it off."""
    yield from _server(GitLabServer, tmp_path_factory, gitlab_com=True)


@pytest.fixture
def wan() -> Iterator[Wan]:
    """A :class:`Wan` link of the default profile (40 ms round trip, 20 Mbit/s up, 100 down),
    closed after the test; put servers behind it with :func:`behind_wan`."""
    with Wan(WanProfile()) as link:
        yield link


def behind_wan(link: Wan, server: LoopbackServer, name: str | None = None) -> Proxy:
    """A proxy of `link` in front of `server`, whose URLs (links, redirects, clone URLs) then
    name the proxy, so that every request its clients make crosses the link. A GitHub
    server's codeload origin gets a proxy of its own, named `<name> codeload`."""
    name = name or server.kind
    proxy = link.proxy(server.port, name)
    server.serve_at(proxy.url)
    # GitHub's archives come from another origin (codeload): behind the link too.
    codeload = getattr(server, "codeload", None)
    if isinstance(codeload, LoopbackServer):
        codeload.serve_at(link.proxy(codeload.port, f"{name} codeload").url)
    return proxy
