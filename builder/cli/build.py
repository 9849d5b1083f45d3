"""`builder build [PATH] [--json] [--push] [--no-reuse] [--dotenv FILE]`: the pre-run build.

In CI it also writes the outputs the job asks for (builder/cli/ci_outputs.py): GitHub Actions'
`$GITHUB_OUTPUT` and `$GITHUB_STEP_SUMMARY` when they are set, and `--dotenv FILE` for GitLab.
"""

from __future__ import annotations

from pathlib import Path

import typer


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
    from builder.cli.build_report import run_build

    run_build(path, json_output=json_output, push=push, no_reuse=no_reuse, dotenv=dotenv)
