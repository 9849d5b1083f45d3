"""Exception classes. Each carries the exit code the CLI returns for it."""

from __future__ import annotations


class BuilderError(Exception):
    """An operation failed (exit code 1). The message is one line, for a person."""

    exit_code = 1


class UsageError(BuilderError):
    """Bad input from the user: a file, key, option or reference (exit code 2)."""

    exit_code = 2


class SettingsError(UsageError):
    """builder.yaml is missing or invalid."""


class SecretReferenceError(UsageError):
    """A {{name.key}} reference names a secret or key that does not exist."""


class RepositoryConfigError(UsageError):
    """A code repository's register options are wrong."""


class NotRegisteredError(UsageError):
    """A code repository or secret name is not in the store."""


class StoreError(BuilderError):
    """The state store cannot be read or written (for example, a corrupt file)."""


class GitError(BuilderError):
    """A git command failed."""


class DownloadError(BuilderError):
    """Code could not be downloaded completely; nothing was left at the destination."""


class AuthenticationError(DownloadError):
    """The server refused the credentials."""


class NotFoundError(DownloadError):
    """The repository, commit or path does not exist (or the token cannot see it)."""


class RateLimitError(DownloadError):
    """The server's rate limit did not clear within the retry budget."""


class UnsafeArchiveError(DownloadError):
    """An archive entry would escape the target or is of a forbidden kind."""


class IntegrityError(DownloadError):
    """The downloaded tree does not match the commit."""


class EngineError(BuilderError):
    """The Docker engine cannot be reached or refused a request."""


class BuildError(BuilderError):
    """An image build failed."""
