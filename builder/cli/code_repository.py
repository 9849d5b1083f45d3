"""`builder code-repository register|list|describe|delete`."""

from __future__ import annotations

from pathlib import Path

import typer

from builder.cli.options import TYPER_OPTIONS, parse_key_values
from builder.cli.output import emit, emit_json, message, table
from builder.repositories import registry
from builder.state.store import Store

app = typer.Typer(
    help="Register the remote repositories your code is pushed to.",
    no_args_is_help=True,
    rich_markup_mode=None,
    **TYPER_OPTIONS,
)

REGISTER_HELP = """Register a code repository.

\b
github:  --owner O --repository R [--url https://github.com] [--api-url URL] [--token T]
gitlab:  --group G --project P [--url https://gitlab.com] [--token T]
git:     --url CLONE_URL [--username U] [--token T]
custom:  --source module.Class [--token T] [--KEY=VALUE ...]

--token takes a literal (kept in the secret store) or a {{secret.key}} / {{env.NAME}} reference.
"""


@app.command(
    "register",
    help=REGISTER_HELP,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def register(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A name for the repository."),
    type_name: str = typer.Option(..., "--type", help="github, gitlab, git or custom."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    options = parse_key_values(list(ctx.args), "repository options")
    record = registry.register(Store.default(), name, type_name, options, cwd=Path.cwd())
    if json_output:
        emit_json(registry.describe(record))
    else:
        message(f"registered code repository {record.name!r} ({record.type})")


@app.command("list")
def list_repositories(
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the registered code repositories."""
    records = Store.default().repositories()
    if json_output:
        emit_json([registry.describe(r) for r in records])
        return
    if not records:
        message("no code repositories registered")
        return
    width = max(len(r.name) for r in records)
    for record in records:
        emit(f"{record.name.ljust(width)}  {record.type:<6}  {_location(record.config)}")


@app.command("describe")
def describe(
    name: str = typer.Argument(...),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one code repository (never its secret)."""
    info = registry.describe(registry.get(Store.default(), name))
    if json_output:
        emit_json(info)
        return
    rows = [("name", info["name"]), ("type", info["type"]), ("id", info["id"])]
    rows += [(key, str(value)) for key, value in sorted(info["config"].items())]
    rows.append(("token", info["token"] or "(none)"))
    emit(table(rows))


@app.command("delete")
def delete(name: str = typer.Argument(...)) -> None:
    """Delete a code repository (and the token stored for it)."""
    record, note = registry.delete(Store.default(), name)
    message(f"deleted code repository {record.name!r}")
    if note:
        message(f"builder: {note}")


def _location(config: dict[str, str]) -> str:
    if "owner" in config:
        return f"{config.get('url', 'https://github.com')}/{config['owner']}/{config['repository']}"
    if "group" in config:
        return f"{config.get('url', 'https://gitlab.com')}/{config['group']}/{config['project']}"
    if "source" in config:
        return config["source"]
    return config.get("url", "")
