"""`builder secret create|list|delete`."""

from __future__ import annotations

import typer

from builder.cli.options import TYPER_OPTIONS, parse_key_values
from builder.cli.output import emit, emit_json, message
from builder.errors import NotRegisteredError, UsageError
from builder.state import secrets
from builder.state.store import Store

app = typer.Typer(
    help="Store tokens for code repositories ({{name.key}} references).",
    no_args_is_help=True,
    rich_markup_mode=None,
    **TYPER_OPTIONS,
)


@app.command("create", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def create(ctx: typer.Context, name: str = typer.Argument(..., help="The secret's name.")) -> None:
    """Create a secret: builder secret create NAME --KEY=VALUE [...]."""
    secrets.validate_name(name)
    values = parse_key_values(list(ctx.args), "secret values")
    if not values:
        raise UsageError(f"secret {name!r} needs at least one --KEY=VALUE")
    for key, value in values.items():
        secrets.validate_key(key)
        secrets.remember(value)
    with Store.default().transaction() as state:
        if name in state.secrets:
            raise UsageError(f"secret {name!r} already exists; delete it first")
        state.secrets[name] = values
    message(f"created secret {name!r} with keys: {', '.join(sorted(values))}")


@app.command("list")
def list_secrets(json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List secret names and their keys (never their values)."""
    keys = Store.default().secret_keys()
    if json_output:
        emit_json([{"name": name, "keys": k} for name, k in keys.items()])
        return
    if not keys:
        message("no secrets")
    for name, k in keys.items():
        emit(f"{name}  {', '.join(k)}")


@app.command("delete")
def delete(name: str = typer.Argument(...)) -> None:
    """Delete a secret."""
    with Store.default().transaction() as state:
        if state.secrets.pop(name, None) is None:
            raise NotRegisteredError(f"no secret named {name!r}")
        users = [
            r.name
            for r in state.repositories.values()
            if r.token and (secrets.parse_reference(r.token) or ("",))[0] == name
        ]
        if users:
            raise UsageError(
                f"secret {name!r} is used by code repository {', '.join(users)}; delete that first"
            )
    message(f"deleted secret {name!r}")
