"""`builder status [PATH] [--json]`: what a build would do and why. Needs no Docker engine."""

from __future__ import annotations

from pathlib import Path

import typer

from builder.cli.status_report import show_status


def status(
    path: Path = typer.Argument(Path("."), help="The project directory (holds builder.yaml)."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show whether a build would reuse the base image or bake the code, and why."""
    show_status(path, json_output=json_output)
