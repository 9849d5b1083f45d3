"""Parsing of free-form `--KEY=VALUE` options (custom repository options, secret keys)."""

from __future__ import annotations

import click.exceptions

from builder.errors import UsageError

# click >= 8.4 suggests a close command name itself ("No such command 'stauts'. Did you mean
# 'status'?"); typer's own suggestion would then print the hint a second time.
TYPER_SUGGESTS_COMMANDS = not hasattr(click.exceptions, "NoSuchCommand")


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
