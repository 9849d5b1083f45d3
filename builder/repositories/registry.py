"""Register, describe and delete code repositories (the library under `builder code-repository`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from builder.errors import NotRegisteredError, RepositoryConfigError
from builder.repositories.types import validate_options
from builder.state import secrets
from builder.state.store import RepositoryRecord, Store

OWNED_SECRET_PREFIX = "code-repository-"


def register(
    store: Store, name: str, type_name: str, options: Mapping[str, str], *, cwd: Path
) -> RepositoryRecord:
    """Validate and store a repository. A literal token goes into the secret store."""
    import uuid

    secrets.validate_name(name, "code repository name")
    config = validate_options(type_name, options, cwd=cwd)
    token = config.pop("token", None)
    with store.transaction() as state:
        if name in state.repositories:
            raise RepositoryConfigError(
                f"code repository {name!r} is already registered; delete it first"
            )
        owned = None
        if token is not None:
            parsed = secrets.parse_reference(token)
            if parsed is None:
                owned = OWNED_SECRET_PREFIX + name
                secrets.remember(token)
                state.secrets[owned] = {"token": token}
                token = secrets.reference(owned, "token")
            elif parsed[0] != secrets.ENV_NAMESPACE:
                secrets.resolve(token, lookup=state.secrets.get)
        record = RepositoryRecord(
            id=str(uuid.uuid4()),
            name=name,
            type=type_name,
            config=config,
            token=token,
            owned_secret=owned,
        )
        state.repositories[name] = record
    return record


def delete(store: Store, name: str) -> RepositoryRecord:
    with store.transaction() as state:
        record = state.repositories.pop(name, None)
        if record is None:
            raise NotRegisteredError(f"no code repository named {name!r}")
        if record.owned_secret:
            state.secrets.pop(record.owned_secret, None)
    return record


def get(store: Store, name: str) -> RepositoryRecord:
    record = store.get_repository(name)
    if record is None:
        raise NotRegisteredError(
            f"no code repository named {name!r} (see `builder code-repository list`)"
        )
    return record


def describe(record: RepositoryRecord) -> dict[str, Any]:
    """What list and describe show: never a secret value, only the reference."""
    return {
        "name": record.name,
        "id": record.id,
        "type": record.type,
        "config": dict(record.config),
        "token": record.token,
    }
