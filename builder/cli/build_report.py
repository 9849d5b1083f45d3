"""`builder build`'s work and report, without the CLI framework: the typer command
(builder/cli/build.py) and the fast path of `builder build [PATH] [--json] [--push]
[--no-reuse]` (builder/cli/__init__.py) both call `run_build`."""

from __future__ import annotations

import sys
from pathlib import Path

from builder.cli.output import emit, emit_json, message, warn
from builder.errors import BuildError


def run_build(path: Path, *, json_output: bool = False, push: bool = False,
              no_reuse: bool = False, dotenv: Path | None = None) -> None:
    from builder.cli.ci_outputs import publish
    from builder.decide.planning import check_project
    from builder.images.build import build_project
    from builder.images.engine import Engine
    from builder.runs.recording import recorded
    from builder.state.settings import load_settings
    from builder.state.store import Store

    check_project(load_settings(path))  # bad input is exit 2 before any engine or record
    store = Store.default()
    with recorded(store.home, kind="build", path=path) as recording:
        engine = Engine.connect()
        try:
            result = build_project(path, push=push, no_reuse=no_reuse, store=store,
                                   engine=engine, warn=warn)
            recording.built(result, engine)
        except BuildError as exc:
            # Keep the failing step's output lines readable (the generic handler joins lines).
            message(f"builder: error: {exc}")
            recording.fail(exc)
            sys.exit(exc.exit_code)
        finally:
            engine.close()
    data = result.to_json()
    written = publish(data, result.repository_spec, dotenv=dotenv)
    if written:
        message(f"builder: outputs written to {', '.join(written)}")
    if json_output:
        emit_json(data)
        return
    for line in result.summary_lines():
        message(line)
    emit(result.image)
