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


class CodeDirError(BuilderError):
    """The code dir holds something builder did not put there; nothing was changed."""


class DeadlineError(DownloadError):
    """A download did not finish within its overall deadline."""


_FIXES = {
    "EROFS": "the file system is read-only: use a writable location",
    "EACCES": "permission denied: make it writable for this user, or use another location",
    "EPERM": "operation not permitted: make it writable for this user, or use another location",
    "ENOSPC": "no space left on the device: free some space and try again",
    "EDQUOT": "the disk quota is exceeded: free some space and try again",
    "ENOTDIR": "a file is where a directory is needed: remove or rename it",
    "EEXIST": "a file is where a directory is needed: remove or rename it",
    "EISDIR": "a directory is where a file is needed: remove or rename it",
    "ENAMETOOLONG": "the path is too long",
    "ELOOP": "too many levels of symbolic links",
    "EMFILE": "too many open files: raise the limit (ulimit -n)",
    "ENOMEM": "out of memory",
    "EIO": "an input/output error from the device",
}


def describe_os_error(exc: OSError, what: str = "") -> str:
    """One line for a failed file operation: what, the path(s), why, and what to do."""
    import errno as errno_names

    name = errno_names.errorcode.get(exc.errno or 0, "")
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2)
                        if p is not None and str(p) not in what)
    reason = _FIXES.get(name) or (exc.strerror or type(exc).__name__).lower()
    head = " ".join(part for part in (what, paths) if part)
    return f"{head}: {reason}" if head else reason


def from_os_error(exc: OSError, what: str = "", hint: str = "") -> BuilderError:
    """A `BuilderError` (exit 1: a machine fault, not a usage error) for an `OSError`."""
    line = describe_os_error(exc, what)
    return BuilderError(f"{line}; {hint}" if hint else line)
