"""The state directory ($BUILDER_HOME): registered code repositories and secrets.

Two JSON files, each replaced atomically. Every read-modify-write holds an exclusive lock on
`$BUILDER_HOME/.lock`, so concurrent CLIs never lose each other's changes. The secrets file
is 0600. A file that cannot be parsed is an error; it is never silently reset.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from builder.errors import StoreError, describe_os_error
from builder.state import secrets
from builder.state.atomic import atomic_write_text
from builder.state.locks import file_lock

REPOSITORIES_FILE = "repositories.json"
SECRETS_FILE = "secrets.json"
FORMAT_VERSION = 1


def default_home() -> Path:
    env = os.environ.get("BUILDER_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("builder", appauthor=False))


def stored_secret(name: str) -> dict[str, str] | None:
    """The keys of secret `name` in the default store, or None (a `secrets.resolve` lookup)."""
    return Store.default().get_secret(name)


class RepositoryRecord(NamedTuple):
    """A registered code repository as stored: config has no secret, only a reference."""

    id: str
    name: str
    type: str
    config: dict[str, Any]
    token: str | None = None
    owned_secret: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "config": self.config,
            "token": self.token,
            "owned_secret": self.owned_secret,
        }

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> RepositoryRecord:
        return cls(
            id=str(data["id"]),
            name=name,
            type=str(data["type"]),
            config=dict(data.get("config") or {}),
            token=data.get("token"),
            owned_secret=data.get("owned_secret"),
        )


class State:
    """The store's contents inside a transaction: changed in place, written when it ends."""

    def __init__(
        self,
        repositories: dict[str, RepositoryRecord],
        secrets: dict[str, dict[str, str]],
    ) -> None:
        self.repositories = repositories
        self.secrets = secrets


class Store:
    def __init__(self, home: Path) -> None:
        self.home = Path(home)

    @classmethod
    def default(cls) -> Store:
        return cls(default_home())

    @property
    def repositories_path(self) -> Path:
        return self.home / REPOSITORIES_FILE

    @property
    def secrets_path(self) -> Path:
        return self.home / SECRETS_FILE

    def repositories(self) -> list[RepositoryRecord]:
        return sorted(self._read_repositories().values(), key=lambda r: r.name)

    def get_repository(self, name: str) -> RepositoryRecord | None:
        return self._read_repositories().get(name)

    def get_secret(self, name: str) -> dict[str, str] | None:
        return self._read_secrets().get(name)

    def secret_keys(self) -> dict[str, list[str]]:
        return {name: sorted(keys) for name, keys in sorted(self._read_secrets().items())}

    @contextlib.contextmanager
    def transaction(self) -> Iterator[State]:
        """Lock, load, yield the state for changes, then write back what changed.

        A machine fault (read-only or full disk, a file where the state directory should
        be) is a `StoreError` naming the path and the fix; the files stay as they were.
        """
        with contextlib.ExitStack() as stack:
            try:
                self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
                stack.enter_context(file_lock(self.home / ".lock"))
            except OSError as exc:
                raise self._fault(exc, self.home / ".lock") from None
            state = State(self._read_repositories(), self._read_secrets())
            before = (_dump_repositories(state.repositories), _dump(state.secrets))
            yield state
            after = (_dump_repositories(state.repositories), _dump(state.secrets))
            path = self.secrets_path
            try:
                if after[1] != before[1]:
                    atomic_write_text(path, after[1], mode=0o600)
                path = self.repositories_path
                if after[0] != before[0]:
                    atomic_write_text(path, after[0], mode=0o644)
            except OSError as exc:
                raise self._fault(exc, path) from None

    def _fault(self, exc: OSError, path: Path) -> StoreError:
        """The one-line error for a failed read or write of the state directory."""
        import errno

        home = self.home
        if home.exists() and not home.is_dir():
            return StoreError(
                f"BUILDER_HOME {home} is a file, not a directory: remove it, or set "
                "BUILDER_HOME to a directory"
            )
        if exc.errno == errno.EISDIR or (path.name == ".lock" and path.is_dir()):
            return StoreError(
                f"{path} is a directory, not builder's lock file: remove it (builder makes "
                "the file again)"
            )
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            hint = (f"builder keeps its state in {home} ($BUILDER_HOME): make it writable, "
                    "or set BUILDER_HOME to a writable directory")
        elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
            hint = "nothing was changed"
        else:
            hint = f"builder keeps its state in {home} ($BUILDER_HOME)"
        return StoreError(f"{describe_os_error(exc, 'cannot write ' + str(path))}; {hint}")

    def _read_repositories(self) -> dict[str, RepositoryRecord]:
        data = self._load(self.repositories_path, "repositories")
        try:
            return {name: RepositoryRecord.from_json(name, entry) for name, entry in data.items()}
        except (KeyError, TypeError, AttributeError) as exc:
            raise StoreError(
                f"{self.repositories_path}: malformed entry ({exc}); fix or remove the file"
            ) from None

    def _read_secrets(self) -> dict[str, dict[str, str]]:
        path = self.secrets_path
        with contextlib.suppress(OSError):
            if path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)
        data = self._load(path, "secrets")
        result: dict[str, dict[str, str]] = {}
        for name, keys in data.items():
            if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
                raise StoreError(f"{path}: secret {name!r} is malformed; fix or remove the file")
            for value in keys.values():
                secrets.remember(value)
            result[name] = dict(keys)
        return result

    @staticmethod
    def _load(path: Path, section: str) -> dict[str, Any]:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StoreError(f"{path}: cannot be read: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StoreError(
                f"{path}: corrupt JSON at line {exc.lineno} column {exc.colno}; "
                "fix or remove the file"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get(section), dict):
            raise StoreError(
                f"{path}: not a builder state file (no {section!r} mapping); fix or remove it"
            )
        version = data.get("version")
        if version != FORMAT_VERSION:
            raise StoreError(f"{path}: format version {version!r} is not supported by this builder")
        return data[section]


def _dump_repositories(repositories: Mapping[str, RepositoryRecord]) -> str:
    return (
        json.dumps(
            {
                "version": FORMAT_VERSION,
                "repositories": {n: r.to_json() for n, r in sorted(repositories.items())},
            },
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )


def _dump(secret_map: Mapping[str, Mapping[str, str]]) -> str:
    return (
        json.dumps({"version": FORMAT_VERSION, "secrets": secret_map}, indent=2, sort_keys=True)
        + "\n"
    )
