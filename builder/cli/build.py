"""`builder build [PATH] [--json] [--push] [--no-reuse] [--dotenv FILE]`: the pre-run build.

In CI it also writes the outputs the job asks for (builder/cli/ci_outputs.py): GitHub Actions'
`$GITHUB_OUTPUT` and `$GITHUB_STEP_SUMMARY` when they are set, and `--dotenv FILE` for GitLab.
"""

from __future__ import annotations

from pathlib import Path

import typer

from builder.cli.output import emit, emit_json, message, warn
from builder.errors import BuildError


def build(
    path: Path = typer.Argument(Path("."), help="The project directory (holds builder.yaml)."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
    push: bool = typer.Option(False, "--push", help="Push the images to the registry."),
    no_reuse: bool = typer.Option(False, "--no-reuse",
                                  help="Bake the code even if the base image could be reused."),
    dotenv: Path | None = typer.Option(
        None, "--dotenv", metavar="FILE",
        help="Also write mode, image, base_image, commit, checksum, ... as KEY=VALUE lines "
             "(GitLab CI's artifacts:reports:dotenv)."),
) -> None:
    """Find or build the image to run: the base image (reuse) or a baked code image."""
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
            raise typer.Exit(exc.exit_code) from None
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
