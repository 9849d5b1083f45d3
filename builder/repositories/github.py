"""GitHub (github.com and GitHub Enterprise) code repositories."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from builder.repositories.git_context import MAX_API_CHECKS, remote_timeout
from builder.repositories.hosted import GitRemoteRepository
from builder.repositories.urls import parse_web_url, path_on_server

DEFAULT_URL = "https://github.com"
PUBLIC_API_URL = "https://api.github.com"
# github.com also serves ssh on ssh.github.com:443 for networks that block port 22.
_HOST_ALIASES = {"github.com": frozenset({"ssh.github.com"})}


def default_api_url(url: str) -> str:
    """github.com's API host; GHE.com's `api.` host (data residency: "https://api.SUBDOMAIN.
    ghe.com", docs.github.com/enterprise-cloud@latest/admin/data-residency); else GitHub
    Enterprise Server's `/api/v3` below the web URL."""
    host, port, _ = parse_web_url(url)
    if host in ("github.com", "www.github.com"):
        return PUBLIC_API_URL
    if host.endswith(".ghe.com") and not host.startswith("api."):
        scheme = url.split("://", 1)[0].lower()
        default = {"https": 443, "http": 80}.get(scheme)
        return f"{scheme}://api.{host}" + ("" if port == default else f":{port}")
    return url.rstrip("/") + "/api/v3"


class GitHubCodeRepository(GitRemoteRepository):
    type = "github"
    requirements: ClassVar[list[str]] = ["PyGithub>=2.1"]

    def __init__(self, id: str, name: str, config: Mapping[str, Any]) -> None:
        super().__init__(id, name, config)
        self.owner: str = self.config["owner"]
        self.repository: str = self.config["repository"]
        self.url: str = self.config.get("url") or DEFAULT_URL
        self.api_url: str = self.config.get("api_url") or default_api_url(self.url)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repository}"

    def matches_url(self, url: str) -> bool:
        path = path_on_server(url, self.url, self.host_aliases)
        return path is not None and path.lower() == self.full_name.lower()

    @property
    def host_aliases(self) -> frozenset[str]:
        return _HOST_ALIASES.get(parse_web_url(self.url)[0], frozenset())

    def branch_contains(
        self, commit: str, tips: Sequence[tuple[str, str]]
    ) -> tuple[bool | None, str]:
        """Whether a branch (given as (name, tip) pairs) contains `commit`, asked of the API."""
        from builder.repositories.github_api import branch_contains

        return branch_contains(self, commit, tips, timeout=remote_timeout(), limit=MAX_API_CHECKS)

    def login(self) -> None:
        from builder.repositories.github_api import login

        login(self)

    def download_files(self, commit: str, directory: str, repo_sub_directory: str | None) -> None:
        from builder.repositories.github_api import download_files

        download_files(self, commit, directory, repo_sub_directory)

    def update_files(self, base_commit: str, base_directory: str, commit: str, directory: str,
                     repo_sub_directory: str | None) -> int | None:
        """Bring a cached tree of `base_commit` to `commit`; see `builder.code.updates`."""
        from builder.repositories.github_api import update_files

        return update_files(self, base_commit, base_directory, commit, directory,
                            repo_sub_directory)
