"""`builder run [PATH] [--push] [--network NET] [-e K=V] [-v SRC:DST] [-- CMD ...]`."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from builder.cli.output import message, warn


def run(
    ctx: typer.Context,
    path: Path = typer.Argument(Path("."), help="The project directory (holds builder.yaml)."),
    push: bool = typer.Option(False, "--push", help="Push what was built to the registry."),
    network: str = typer.Option(None, "--network", help="Docker network for the container."),
    env: list[str] = typer.Option([], "-e", "--env", help="KEY=VALUE for the container."),
    volume: list[str] = typer.Option([], "-v", "--volume", help="SRC:DST[:ro] to mount."),
    no_reuse: bool = typer.Option(False, "--no-reuse", help="Bake the code even if clean."),
) -> None:
    """Build exactly as `builder build` does, then run the container; exit with its code."""
    from builder.images.build import build_project
    from builder.run import RunOptions, container_spec, run_container, token_file
    from builder.store import Store

    store = Store.default()
    result = build_project(path, push=push, no_reuse=no_reuse, store=store, warn=warn)
    project = result.project
    built = ", ".join(result.built) or "nothing"
    message(f"builder: {project.plan.mode}: {result.image} (built {built}; {result.seconds:.2f} s)")
    for reason in project.plan.reasons:
        message(f"builder:   - {reason}")
    repository = project.repository if project.plan.mode == "reuse" else None
    command = (ctx.obj or {}).get("command") or []
    options = RunOptions(
        command=tuple(command), network=network, environment=tuple(env), volumes=tuple(volume)
    )
    spec = container_spec(
        result.image,
        project.plan,
        project.settings,
        result.repository_spec,
        repository.token if repository else None,
        options,
        os.environ,
    )
    from builder.images.engine import Engine

    engine = Engine.connect()
    try:
        with token_file(spec.token, store.home / "run") as token_path:
            code = run_container(
                engine.client, spec, token_path, log=lambda line: message(f"builder: {line}")
            )
    finally:
        engine.close()
    raise typer.Exit(code)
