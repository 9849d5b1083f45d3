"""Code repositories: the seed's API and the built-in types."""

from builder.repositories.base import BaseCodeRepository, LocalRepositoryContext

__all__ = ["BaseCodeRepository", "LocalRepositoryContext"]
