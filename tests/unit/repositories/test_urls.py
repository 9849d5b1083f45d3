"""Remote URL matching across real-world forms (no git, no network)."""

from __future__ import annotations

import pytest

from builder.repositories.git import GitCodeRepository
from builder.repositories.github import GitHubCodeRepository, default_api_url
from builder.repositories.gitlab import GitLabCodeRepository
from builder.repositories.urls import parse_remote_url, strip_credentials

GH = {"owner": "acme", "repository": "widgets"}
GHE = {"owner": "acme", "repository": "widgets", "url": "https://GHE.corp.example"}
GH_LOCAL = {"owner": "o", "repository": "r", "url": "http://127.0.0.1:8123"}
GL = {"group": "team/sub", "project": "app"}
GL_SELF = {"group": "team", "project": "app", "url": "https://code.example.org/gitlab"}

CASES = [
    # github.com
    (GitHubCodeRepository, GH, "https://github.com/acme/widgets.git", True),
    (GitHubCodeRepository, GH, "https://github.com/acme/widgets", True),
    (GitHubCodeRepository, GH, "https://github.com/acme/widgets/", True),
    (GitHubCodeRepository, GH, "https://x-access-token:ghs_abc123@github.com/acme/widgets", True),
    (GitHubCodeRepository, GH, "https://ghp_token@github.com/acme/widgets.git", True),
    (GitHubCodeRepository, GH, "git@github.com:acme/widgets.git", True),
    (GitHubCodeRepository, GH, "git@GitHub.COM:Acme/Widgets.git", True),
    (GitHubCodeRepository, GH, "ssh://git@github.com/acme/widgets.git", True),
    (GitHubCodeRepository, GH, "ssh://git@ssh.github.com:443/acme/widgets.git", True),
    (GitHubCodeRepository, GH, "git://github.com/acme/widgets.git", True),
    (GitHubCodeRepository, GH, "HTTPS://GITHUB.COM/acme/widgets.git", True),
    (GitHubCodeRepository, GH, "https://github.com/acme/widgets-fork.git", False),
    (GitHubCodeRepository, GH, "https://github.com/someone/widgets.git", False),
    (GitHubCodeRepository, GH, "https://gitlab.com/acme/widgets.git", False),
    (GitHubCodeRepository, GH, "https://github.com:8443/acme/widgets.git", False),
    (GitHubCodeRepository, GH, "/srv/git/acme/widgets.git", False),
    # GitHub Enterprise
    (GitHubCodeRepository, GHE, "https://ghe.corp.example/acme/widgets.git", True),
    (GitHubCodeRepository, GHE, "git@ghe.corp.example:acme/widgets.git", True),
    (GitHubCodeRepository, GHE, "https://github.com/acme/widgets.git", False),
    # a loopback test server: the port is part of the identity for http(s)
    (GitHubCodeRepository, GH_LOCAL, "http://127.0.0.1:8123/o/r.git", True),
    (GitHubCodeRepository, GH_LOCAL, "http://127.0.0.1:9999/o/r.git", False),
    # gitlab.com with subgroups
    (GitLabCodeRepository, GL, "https://gitlab.com/team/sub/app.git", True),
    (
        GitLabCodeRepository,
        GL,
        "https://gitlab-ci-token:glcbt-xyz@gitlab.com/team/sub/app.git",
        True,
    ),
    (GitLabCodeRepository, GL, "git@gitlab.com:team/sub/app.git", True),
    (GitLabCodeRepository, GL, "ssh://git@gitlab.com:2222/team/sub/app.git", True),
    (GitLabCodeRepository, GL, "https://gitlab.com/team/app.git", False),
    (GitLabCodeRepository, GL, "https://gitlab.com/team/sub/other/app.git", False),
    # self-hosted GitLab under a relative URL root
    (GitLabCodeRepository, GL_SELF, "https://code.example.org/gitlab/team/app.git", True),
    (GitLabCodeRepository, GL_SELF, "git@code.example.org:team/app.git", True),
    (GitLabCodeRepository, GL_SELF, "https://CODE.example.org/gitlab/team/app", True),
    # plain git: any transport to the same place
    (
        GitCodeRepository,
        {"url": "https://git.example.com/x/y.git"},
        "https://git.example.com/x/y",
        True,
    ),
    (
        GitCodeRepository,
        {"url": "https://git.example.com/x/y.git"},
        "git@git.example.com:x/y.git",
        True,
    ),
    (
        GitCodeRepository,
        {"url": "https://git.example.com/x/y.git"},
        "ssh://git@git.example.com:2222/x/y",
        True,
    ),
    (
        GitCodeRepository,
        {"url": "https://git.example.com/x/y.git"},
        "https://git.example.com/x/Y.git",
        False,
    ),
    (
        GitCodeRepository,
        {"url": "git://git.example.com/x/y.git"},
        "git://git.example.com/x/y.git",
        True,
    ),
]


@pytest.mark.parametrize(("cls", "config", "url", "expected"), CASES)
def test_remote_url_matching(cls, config, url, expected):
    repository = cls("id", "name", config)
    assert repository.matches_url(url) is expected


def test_local_paths_and_file_urls_match_the_same_directory(tmp_path):
    bare = tmp_path / "remote.git"
    bare.mkdir()
    repository = GitCodeRepository("id", "name", {"url": str(bare)})
    assert repository.matches_url(f"file://{bare}")
    assert repository.matches_url(f"{bare}/")
    assert repository.matches_url(str(tmp_path / "x" / ".." / "remote.git"))
    assert not repository.matches_url(str(tmp_path / "other.git"))
    assert not GitCodeRepository("id", "n", {"url": "https://h/remote.git"}).matches_url(str(bare))


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "path"),
    [
        ("git@github.com:a/b.git", "ssh", "github.com", None, "a/b"),
        ("ssh://git@host:22/a/b.git", "ssh", "host", 22, "a/b"),
        ("https://u:p@Host.example/a/b.git/", "https", "host.example", 443, "a/b"),
        ("http://host/a", "http", "host", 80, "a"),
        ("git://host/a/b", "git", "host", None, "a/b"),
    ],
)
def test_parse_remote_url(url, scheme, host, port, path):
    parsed = parse_remote_url(url)
    assert parsed is not None
    assert (parsed.scheme, parsed.host, parsed.port, parsed.path) == (scheme, host, port, path)


def test_strip_credentials_and_api_url():
    assert strip_credentials("https://user:tok@github.com/a/b") == "https://github.com/a/b"
    assert strip_credentials("git@github.com:a/b") == "git@github.com:a/b"
    assert default_api_url("https://github.com") == "https://api.github.com"
    assert default_api_url("https://ghe.corp/") == "https://ghe.corp/api/v3"
    # GitHub Enterprise Cloud with data residency serves its API on an api. subdomain.
    assert default_api_url("https://acme.ghe.com") == "https://api.acme.ghe.com"
    assert default_api_url("https://acme.ghe.com/") == "https://api.acme.ghe.com"
