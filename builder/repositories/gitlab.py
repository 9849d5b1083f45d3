"""GitLab (gitlab.com and self-hosted, with subgroups) code repositories."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from builder.repositories.git_context import remote_timeout
from builder.repositories.hosted import GitRemoteRepository
from builder.repositories.urls import path_on_server

DEFAULT_URL = "https://gitlab.com"


class GitLabCodeRepository(GitRemoteRepository):
    type = "gitlab"
    requirements: ClassVar[list[str]] = ["python-gitlab>=4"]

    def __init__(self, id: str, name: str, config: Mapping[str, Any]) -> None:
        super().__init__(id, name, config)
        self.group: str = str(self.config["group"]).strip("/")
        self.project: str = str(self.config["project"]).strip("/")
        self.url: str = self.config.get("url") or DEFAULT_URL

    @property
    def path_with_namespace(self) -> str:
        return f"{self.group}/{self.project}"

    def matches_url(self, url: str) -> bool:
        path = path_on_server(url, self.url)
        return path is not None and path.lower() == self.path_with_namespace.lower()

    def branch_contains(
        self, commit: str, tips: Sequence[tuple[str, str]]
    ) -> tuple[bool | None, str]:
        """Whether a branch (given as (name, tip) pairs) contains `commit`, asked of the API."""
        from builder.repositories.gitlab_api import branch_contains

        return branch_contains(self, commit, tips, timeout=remote_timeout())

    def login(self) -> None:
        from builder.repositories.gitlab_api import login

        login(self)

    def download_files(self, commit: str, directory: str, repo_sub_directory: str | None) -> None:
        from builder.repositories.gitlab_api import download_files

        download_files(self, commit, directory, repo_sub_directory)

    def update_files(self, base_commit: str, base_directory: str, commit: str, directory: str,
                     repo_sub_directory: str | None) -> int | None:
        """Bring a cached tree of `base_commit` to `commit`; see `builder.code.updates`."""
        from builder.repositories.gitlab_api import update_files

        return update_files(self, base_commit, base_directory, commit, directory,
                            repo_sub_directory)
