"""The `builder` command. `main` turns every failure into one line and an exit code."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["entrypoint"]:
        # No core dumps: the environment may hold a token ({{env.NAME}}). The process is made
        # undumpable too once it reads a secret; the entrypoint does both before it reads
        # one (a warm start never does).
        from builder.state import coredump

        coredump.disable(undumpable=False)
    if args[:1] == ["entrypoint"]:
        _entrypoint_fast_path(args)
    if args[:1] == ["status"]:
        _status_fast_path(args)
    if args[:1] == ["run"]:
        _run_fast_path(args)
    if args[:2] == ["runs", "list"]:
        _runs_list_fast_path(args[2:])
    if args[:1] == ["build"]:
        _build_fast_path(args[1:])
    import click

    from builder.cli.app import app
    from builder.cli.output import message

    args, command = _split_command(args)
    try:
        result = app(
            args=args, prog_name="builder", standalone_mode=False, obj={"command": command}
        )
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        message("builder: aborted")
        sys.exit(130)
    except click.exceptions.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "builder"
        message(f"{where}: error: {exc.format_message()}")
        sys.exit(2)
    except BaseException as exc:  # every failure becomes one line
        _fail(exc)
    sys.exit(result if isinstance(result, int) else 0)


def _entrypoint_fast_path(args: list[str]) -> None:
    """`builder entrypoint` runs at every container start: it skips the CLI framework, and
    a warm start (the commit cached) skips the rest of builder too."""
    from builder.container.warm import command_from_argv, is_fast_path, warm_start

    if is_fast_path(args):
        command = command_from_argv(args)
        try:
            warm_start(command, os.environ)
            from builder.container.entrypoint import run

            run(command)
        except BaseException as exc:  # every failure becomes one line
            _fail(exc)


def _status_fast_path(args: list[str]) -> None:
    """`builder status [PATH] [--json]` runs before every job: it skips the CLI framework.

    Anything else (--help, an unknown option, two paths) goes on to typer, which says what
    is wrong exactly as for every other command.
    """
    options = args[1:]
    paths = [arg for arg in options if arg != "--json"]
    if len(paths) > 1 or any(arg.startswith("-") for arg in paths):
        return
    from pathlib import Path

    from builder.code.git_questions import ask_local_questions_early
    from builder.code.gitcmd import forget_early

    path = Path(paths[0]) if paths else Path(".")
    gathering = None
    try:
        # git works while the rest of builder loads: first the checkout's questions, then
        # (once a registered repository matches a remote) the remote's, then the rest
        project_dir = path.resolve()
        ask_local_questions_early(project_dir)
        from builder.decide.facts import FactsGathering

        gathering = FactsGathering.start(project_dir, warn=_warn)
        from builder.cli.status_report import show_status

        show_status(path, json_output="--json" in options, gathering=gathering)
    except BaseException as exc:  # every failure becomes one line
        _fail(exc)
    finally:
        if gathering is not None:
            gathering.cancel()
        forget_early()
    sys.exit(0)


def _run_fast_path(args: list[str]) -> None:
    """`builder run` starts every iteration of the edit-run loop: for its usual options it
    skips the CLI framework (see builder/cli/run_local.py); anything else goes to typer."""
    from builder.cli.run_local import fast_path

    try:
        code = fast_path(args[1:])
    except BaseException as exc:  # every failure becomes one line
        _fail(exc)
    if code is not None:
        sys.exit(code)


def _runs_list_fast_path(options: list[str]) -> None:
    """`builder runs list [PATH] [--limit N] [--json]` skips the CLI framework too; anything
    else (--help, a bad --limit, two paths) goes on to typer, which says what is wrong."""
    paths: list[str] = []
    limit: int | None = None
    json_output = False
    index = 0
    while index < len(options):
        arg = options[index]
        if arg == "--json":
            json_output = True
        elif arg == "--limit" and index + 1 < len(options) and options[index + 1].isdigit():
            index += 1
            limit = int(options[index])
        elif arg.startswith("-"):
            return
        else:
            paths.append(arg)
        index += 1
    if len(paths) > 1:
        return
    try:
        from pathlib import Path

        from builder.cli.runs_report import DEFAULT_LIMIT, show_runs

        show_runs(Path(paths[0]) if paths else None,
                  DEFAULT_LIMIT if limit is None else limit, json_output)
    except BaseException as exc:  # every failure becomes one line
        _fail(exc)
    sys.exit(0)


def _build_fast_path(options: list[str]) -> None:
    """`builder build [PATH] [--json] [--push] [--no-reuse]` skips the CLI framework (its
    import is a tenth of a second); anything else (--dotenv, --help, two paths) goes on to
    typer."""
    flags = {"--json", "--push", "--no-reuse"}
    paths = [arg for arg in options if arg not in flags]
    if len(paths) > 1 or any(arg.startswith("-") for arg in paths):
        return
    try:
        from pathlib import Path

        from builder.cli.build_report import run_build

        run_build(Path(paths[0]) if paths else Path("."), json_output="--json" in options,
                  push="--push" in options, no_reuse="--no-reuse" in options)
    except BaseException as exc:  # every failure becomes one line
        _fail(exc)
    sys.exit(0)


def _warn(line: str) -> None:
    from builder.cli.output import warn

    warn(line)


def _fail(exc: BaseException) -> None:
    """Print one redacted line for any failure and exit with its code."""
    from builder.cli.output import message
    from builder.errors import BuilderError

    if isinstance(exc, SystemExit):
        raise exc
    if isinstance(exc, BuilderError):
        message(f"builder: error: {_one_line(str(exc))}")
        sys.exit(exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        message("builder: interrupted")
        sys.exit(130)
    if isinstance(exc, (OSError, MemoryError)) and not os.environ.get("BUILDER_DEBUG"):
        # a machine fault (disk full, read-only, permissions), not a bug: say where and why
        from builder.errors import describe_os_error

        line = describe_os_error(exc) if isinstance(exc, OSError) else "out of memory"
        message(f"builder: error: {_one_line(line)}")
        sys.exit(1)
    if os.environ.get("BUILDER_DEBUG"):
        raise exc
    message(
        f"builder: internal error: {type(exc).__name__}: {_one_line(str(exc))} "
        "(set BUILDER_DEBUG=1 for a traceback)"
    )
    sys.exit(1)


def _split_command(args: list[str]) -> tuple[list[str], list[str] | None]:
    """`builder run [PATH] [opts] -- CMD ...` and `builder runs rerun ID -- CMD ...`: what
    follows the first `--` is the command."""
    if (args[:1] == ["run"] or args[:2] == ["runs", "rerun"]) and "--" in args:
        index = args.index("--")
        return args[:index], args[index + 1 :]
    return args, None


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "failed"
