"""`builder build [PATH] [--json] [--push] [--no-reuse]`: the pre-run build command."""

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
) -> None:
    """Find or build the image to run: the base image (reuse) or a baked code image."""
    from builder.images.build import build_project

    try:
        result = build_project(path, push=push, no_reuse=no_reuse, warn=warn)
    except BuildError as exc:
        # Keep the failing step's output lines readable (the generic handler joins lines).
        message(f"builder: error: {exc}")
        raise typer.Exit(exc.exit_code) from None
    if json_output:
        emit_json(result.to_json())
        return
    plan = result.project.plan
    built = ", ".join(result.built) or "nothing"
    message(f"builder: {plan.mode}: {result.image} (built {built}"
            + (f"; pushed {', '.join(result.pushed)}" if result.pushed else "")
            + f"; {result.seconds:.2f} s)")
    for reason in plan.reasons:
        message(f"builder:   - {reason}")
    emit(result.image)
