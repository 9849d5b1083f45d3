"""`builder run` on the local engine, and its fast path without the CLI framework.

`builder run` starts every iteration of the edit-run loop, so its own time counts. For the
usual options (`[PATH] [--push] [--no-reuse] [--network NET] [-e K=V]... [-v S:D]...
[-- CMD ...]`), `builder.cli.main` comes here without loading typer and click: git's
questions start first, the Docker connection is made in the background while they run, and
with `--push` the push runs while the container does. Anything else (another target,
`--help`, a mistake) goes on to typer, which answers as for every other command.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from builder.images.engine import Engine
    from builder.targets.local import RunOptions

_FLAGS = {"--push": "push", "--no-reuse": "no_reuse"}
_VALUES = {"--network": "network", "-e": "env", "--env": "env", "-v": "volume",
           "--volume": "volume", "--target": "target"}


class RunArguments(NamedTuple):
    path: Path
    push: bool
    no_reuse: bool
    network: str | None
    environment: tuple[str, ...]
    volumes: tuple[str, ...]
    command: tuple[str, ...]


def parse(args: list[str]) -> RunArguments | None:
    """The arguments after `run`, or None when typer should read them."""
    if "--" in args:
        index = args.index("--")
        args, command = args[:index], tuple(args[index + 1:])
    else:
        command = ()
    flags = {"push": False, "no_reuse": False}
    values: dict[str, list[str]] = {"network": [], "env": [], "volume": [], "target": []}
    paths: list[str] = []
    position = 0
    while position < len(args):
        arg = args[position]
        name, equals, attached = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if arg in _FLAGS:
            flags[_FLAGS[arg]] = True
        elif name in _VALUES:
            if equals:
                value = attached
            elif position + 1 < len(args):
                position += 1
                value = args[position]
            else:
                return None
            values[_VALUES[name]].append(value)
        elif arg.startswith("-"):
            return None
        else:
            paths.append(arg)
        position += 1
    if len(paths) > 1 or len(values["network"]) > 1 or values["target"] not in ([], ["local"]):
        return None
    return RunArguments(Path(paths[0] if paths else "."), flags["push"], flags["no_reuse"],
                        values["network"][0] if values["network"] else None,
                        tuple(values["env"]), tuple(values["volume"]), command)


def fast_path(args: list[str]) -> int | None:
    """Run `builder run ARGS` (the words after `run`); None when typer should."""
    parsed = parse(args)
    if parsed is None:
        return None
    from builder.code.git_questions import ask_local_questions_early
    from builder.code.gitcmd import forget_early
    from builder.images.engine import Engine

    try:
        ask_local_questions_early(parsed.path.resolve())
        connect = Engine.connect_soon()
        from builder.targets.local import RunOptions

        options = RunOptions(command=parsed.command, network=parsed.network,
                             environment=parsed.environment, volumes=parsed.volumes)
        return run_local(parsed.path, options, push=parsed.push, no_reuse=parsed.no_reuse,
                         connect=connect)
    finally:
        forget_early()


def env_names(items: Sequence[str]) -> list[str]:
    """The names of `-e K=V` / `-e K`: a run record keeps names, never values."""
    return [item.partition("=")[0] for item in items]


def run_local(path: Path, options: RunOptions, *, push: bool, no_reuse: bool,
              connect: Callable[[], Engine] | None = None) -> int:
    """Build as `builder build` does, run the container, return its exit code; the run is
    recorded (`builder runs`).

    The engine is connected in the background while the project is looked at; with `push`,
    what was built is pushed while the container runs (the local run needs only the local
    image). A failed push is reported after the program's output, and makes the exit code 1
    if the program succeeded.
    """
    import threading
    from dataclasses import replace

    from builder.cli.output import message, warn
    from builder.decide.planning import check_project
    from builder.images.engine import Engine
    from builder.runs.recording import image_identity, recorded
    from builder.state.settings import load_settings
    from builder.state.store import Store
    from builder.targets.local import build_for_run, remove_orphans, run_container, run_files

    connect = connect or Engine.connect_soon()

    def log(line: str) -> None:
        message(f"builder: {line}")

    try:
        check_project(load_settings(path))  # bad input first: exit 2, no record
        store = Store.default()
        with recorded(store.home, kind="run", target="local", path=path,
                      command=options.command,
                      env_names=env_names(options.environment)) as recording:
            result, spec = build_for_run(path, options, push=push, no_reuse=no_reuse,
                                         store=store, connect=connect, warn=warn,
                                         message=message, environ=os.environ,
                                         defer_push=True)
            engine = connect()
            remove_orphans(engine, store.home, log)
            recording.built(result, engine, spec)
            message(f"builder: run {recording.record.short_id}")
            failure: list[BaseException] = []

            def push_now() -> None:
                try:
                    pushed = result.push()
                except BaseException as exc:  # reported below, after the program's output
                    failure.append(exc)
                else:
                    if pushed:
                        message(f"builder: pushed {', '.join(pushed)}")

            pushing = threading.Thread(target=push_now, name="builder-push", daemon=True)
            if push:
                pushing.start()
            with run_files(spec.token, store.home) as files:
                code = run_container(engine, replace(spec, labels=recording.labels()),
                                     files.token, log=log, labels=files.labels)
            if push:
                pushing.join()
                if result.pushed and not recording.record.image_digest:
                    recording.update(image_digest=image_identity(engine, result.image)[1])
            if failure:
                from builder.errors import BuilderError

                error = failure[0]
                if not isinstance(error, BuilderError):
                    raise error
                message(f"builder: error: {' '.join(str(error).split())}")
                code = code or error.exit_code
                recording.finish(code, error=str(error))
                return code
            recording.finish(code)
            return code
    finally:
        with contextlib.suppress(Exception):  # no engine: nothing to close
            connect().close()
