"""Shared `get_local_context` for repository types that live behind a git remote URL."""

from __future__ import annotations

from abc import abstractmethod

from builder.repositories.base import BaseCodeRepository
from builder.repositories.git_context import Checkout, GitLocalContext


class GitRemoteRepository(BaseCodeRepository):
    """A repository that a checkout's remote URL can point at."""

    @abstractmethod
    def matches_url(self, url: str) -> bool:
        """Whether a git remote URL names this repository."""

    def get_local_context(self, path: str) -> GitLocalContext | None:
        checkout = Checkout.discover(path)
        if checkout is None or checkout.head is None:
            return None
        for remote in checkout.remotes:
            if self.matches_url(remote.url):
                return GitLocalContext(self, checkout, remote)
        return None
