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
                # a name no secret has: a user's secret is never overwritten
                owned = _free_secret_name(state.secrets, OWNED_SECRET_PREFIX + name)
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


def delete(store: Store, name: str) -> tuple[RepositoryRecord, str | None]:
    """Remove a repository and the secret builder made for its token, unless another
    repository uses that secret now (it is kept). Returns the record and a note on what was
    kept, if anything. A secret the user made is never deleted here."""
    note = None
    with store.transaction() as state:
        record = state.repositories.pop(name, None)
        if record is None:
            raise NotRegisteredError(f"no code repository named {name!r}")
        owned = record.owned_secret
        if owned and owned in state.secrets:
            users = sorted(r.name for r in state.repositories.values()
                           if r.token and secret_of(r.token) == owned)
            if users:
                note = (f"kept secret {owned!r}: code repository {', '.join(users)} uses it "
                        "(`builder secret delete` it once nothing does)")
            else:
                state.secrets.pop(owned)
    return record, note


def secret_of(token: str) -> str | None:
    """The secret a `{{name.key}}` token reference names (None for env and literals)."""
    parsed = secrets.parse_reference(token)
    if parsed is None or parsed[0] == secrets.ENV_NAMESPACE:
        return None
    return parsed[0]


def _free_secret_name(existing: Mapping[str, object], wanted: str) -> str:
    name, number = wanted, 1
    while name in existing:
        number += 1
        name = f"{wanted}-{number}"
    return name


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
