"""Parsing of free-form `--KEY=VALUE` options (custom repository options, secret keys)."""

from __future__ import annotations

from typing import Any

import click.exceptions
import typer

from builder.errors import UsageError

# click >= 8.4 suggests a close command name itself ("No such command 'stauts'. Did you mean
# 'status'?"); typer's own suggestion (typer >= 0.16's `suggest_commands`) would then print the
# hint a second time. An older typer has neither the option nor a suggestion of its own.
TYPER_OPTIONS: dict[str, Any] = (
    {"suggest_commands": not hasattr(click.exceptions, "NoSuchCommand")}
    if "suggest_commands" in typer.Typer.__init__.__code__.co_varnames else {})


def parse_key_values(args: list[str], what: str) -> dict[str, str]:
    """`--a=1 --b 2` -> {"a": "1", "b": "2"}. Anything else is a usage error naming it."""
    result: dict[str, str] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("--") or arg == "--":
            raise UsageError(f"unexpected argument {arg!r}: {what} are given as --KEY=VALUE")
        key, sep, value = arg[2:].partition("=")
        if not sep:
            if index + 1 >= len(args) or args[index + 1].startswith("--"):
                raise UsageError(f"--{key} needs a value (--{key}=VALUE)")
            index += 1
            value = args[index]
        if not key:
            raise UsageError(f"{arg!r}: empty option name")
        if key in result:
            raise UsageError(f"--{key} is given twice")
        result[key] = value
        index += 1
    return result
