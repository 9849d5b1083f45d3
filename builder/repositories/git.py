"""Plain git code repositories: any URL git accepts (https, ssh, git://, file://, a path)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from builder.repositories.hosted import GitRemoteRepository
from builder.repositories.urls import parse_remote_url


class GitCodeRepository(GitRemoteRepository):
    type = "git"
    requirements: ClassVar[list[str]] = []

    def __init__(self, id: str, name: str, config: Mapping[str, Any]) -> None:
        super().__init__(id, name, config)
        self.url: str = self.config["url"]
        self.username: str | None = self.config.get("username")
        # Where downloads keep this repository's objects between commits (the entrypoint
        # sets its cache directory); None: every download fetches what it needs afresh.
        self.download_cache: Path | None = None

    def matches_url(self, url: str) -> bool:
        mine = parse_remote_url(self.url)
        theirs = parse_remote_url(url)
        return mine is not None and theirs is not None and mine.same_place(theirs)

    def login(self) -> None:
        from builder.repositories.git_fetch import login

        login(self)

    def download_files(self, commit: str, directory: str, repo_sub_directory: str | None) -> None:
        from builder.repositories.git_fetch import download_files

        download_files(self, commit, directory, repo_sub_directory)

    def update_files(self, base_commit: str, base_directory: str, commit: str, directory: str,
                     repo_sub_directory: str | None) -> int | None:
        """Bring a cached tree of `base_commit` to `commit`; see `git_store`."""
        from builder.repositories.git_fetch import update_files

        return update_files(self, base_commit, base_directory, commit, directory,
                            repo_sub_directory)
