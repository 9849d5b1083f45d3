"""The seed's API: `BaseCodeRepository` and `LocalRepositoryContext`, with their exact names."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar


class BaseCodeRepository(ABC):
    """A remote store of code that can say whether a local checkout is on it, and download it.

    The constructor does no network I/O. `config` holds the register options; a `token`
    entry may be a `{{name.key}}` reference, resolved only when `token` is read.
    """

    #: The `--type` this class is registered with (`custom` for user classes).
    type: ClassVar[str] = "custom"
    #: Extra pip requirements the entrypoint needs to use this class (installed into
    #: builder's own environment in the base image, as in ZenML).
    requirements: ClassVar[list[str]] = []

    def __init__(self, id: str, name: str, config: Mapping[str, Any]) -> None:
        self.id = id
        self.name = name
        self.config: dict[str, Any] = dict(config)

    @property
    def token(self) -> str | None:
        from builder.state.secrets import resolve
        from builder.state.store import stored_secret

        value = self.config.get("token")
        return resolve(value, stored_secret) if value else None

    @abstractmethod
    def login(self) -> None:
        """Check that the repository can be reached with the configured credentials."""

    @abstractmethod
    def download_files(self, commit: str, directory: str, repo_sub_directory: str | None) -> None:
        """Download the files of `commit` (only `repo_sub_directory`, if given) into `directory`."""

    @abstractmethod
    def get_local_context(self, path: str) -> LocalRepositoryContext | None:
        """Return a context if the checkout at `path` belongs to this repository, else None."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class LocalRepositoryContext(ABC):
    """What a local checkout looks like from one code repository's point of view."""

    def __init__(self, code_repository: BaseCodeRepository) -> None:
        self._code_repository = code_repository

    @property
    def code_repository(self) -> BaseCodeRepository:
        return self._code_repository

    @property
    @abstractmethod
    def root(self) -> str:
        """The root directory of the checkout."""

    @property
    @abstractmethod
    def is_dirty(self) -> bool:
        """Whether a file that would ship differs from `current_commit`."""

    @property
    @abstractmethod
    def has_local_changes(self) -> bool:
        """Whether the checkout is dirty or its commit is not on the remote."""

    @property
    @abstractmethod
    def current_commit(self) -> str:
        """The commit checked out."""
