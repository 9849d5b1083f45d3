"""The `builder` command. `main` turns every failure into one line and an exit code."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    import click

    from builder.cli.app import app
    from builder.cli.output import message
    from builder.errors import BuilderError

    try:
        result = app(args=argv, prog_name="builder", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        message("builder: aborted")
        sys.exit(130)
    except click.exceptions.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "builder"
        message(f"{where}: error: {exc.format_message()}")
        sys.exit(2)
    except BuilderError as exc:
        message(f"builder: error: {_one_line(str(exc))}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        message("builder: interrupted")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("BUILDER_DEBUG"):
            raise
        message(f"builder: internal error: {type(exc).__name__}: {_one_line(str(exc))} "
                "(set BUILDER_DEBUG=1 for a traceback)")
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "failed"
