"""`builder run [PATH] [--push] [--network NET] [-e K=V] [-v SRC:DST] [-- CMD ...]`.

`--target swarm` runs the container as a Docker Swarm service instead; `--target kubernetes
--emit` prints a Kubernetes Job manifest (see builder/targets).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from builder.cli.output import message, warn

if TYPE_CHECKING:
    from builder.targets.local import RunOptions


def run(
    ctx: typer.Context,
    path: Path = typer.Argument(Path("."), help="The project directory (holds builder.yaml)."),
    push: bool = typer.Option(False, "--push", help="Push what was built to the registry."),
    network: str = typer.Option(None, "--network", help="Docker network for the container."),
    env: list[str] = typer.Option([], "-e", "--env", help="KEY=VALUE for the container."),
    volume: list[str] = typer.Option([], "-v", "--volume", help="SRC:DST[:ro] to mount."),
    no_reuse: bool = typer.Option(False, "--no-reuse", help="Bake the code even if clean."),
    target: str = typer.Option(
        "local",
        "--target",
        help="local (docker run), swarm (a Docker Swarm service that runs once) or "
        "kubernetes (with --emit: print a Job manifest).",
    ),
    emit: bool = typer.Option(
        False, "--emit", help="--target kubernetes: print the manifests (YAML) to stdout."
    ),
    include_secret: bool = typer.Option(
        False,
        "--include-secret",
        help="--target kubernetes: print the token's Secret too (the output holds the token).",
    ),
) -> None:
    """Build exactly as `builder build` does, then run the container; exit with its code."""
    if target != "local" or emit or include_secret:
        from builder.targets.local import RunOptions

        options = RunOptions(
            command=tuple((ctx.obj or {}).get("command") or []),
            network=network,
            environment=tuple(env),
            volumes=tuple(volume),
        )
        raise typer.Exit(_run_on_target(path, target, emit, include_secret, no_reuse, options))
    from builder.cli.run_local import run_local
    from builder.targets.local import RunOptions

    command = (ctx.obj or {}).get("command") or []
    options = RunOptions(
        command=tuple(command), network=network, environment=tuple(env), volumes=tuple(volume)
    )
    raise typer.Exit(run_local(path, options, push=push, no_reuse=no_reuse))


def _run_on_target(
    path: Path,
    target: str,
    emit: bool,
    include_secret: bool,
    no_reuse: bool,
    options: RunOptions,
) -> int:
    """--target swarm: run as a service, return its task's code; kubernetes: print manifests."""
    import sys
    from dataclasses import replace

    from builder.cli.run_local import env_names
    from builder.decide.planning import check_project
    from builder.images.engine import Engine
    from builder.runs.recording import recorded
    from builder.state.settings import load_settings
    from builder.state.store import Store
    from builder.targets import check_options, prepare, require_registry

    check_options(target, emit=emit, include_secret=include_secret)
    if target == "kubernetes":
        from builder.targets import kubernetes

        kubernetes.check_options(options)
        check_project(load_settings(path))
    else:
        require_registry(check_project(load_settings(path)), target)  # bad input first: exit 2
    store = Store.default()
    with recorded(store.home, kind="run", target=target, path=path, command=options.command,
                  env_names=env_names(options.environment)) as recording:
        engine = Engine.connect()
        try:
            if target == "swarm":
                from builder.targets import swarm

                swarm.require_manager(engine.client)
                swarm.remove_orphans(engine.client, store.home, _log)
            workload = prepare(
                path, target, options, no_reuse=no_reuse, store=store, engine=engine,
                registry_required=target == "swarm", message=message, warn=warn,
                environ=os.environ,
                on_built=lambda result, spec: recording.built(result, engine, spec),
            )
            workload = replace(workload, run_id=recording.id)
            message(f"builder: run {recording.record.short_id}")
            if target == "swarm":
                from builder.targets.local import run_files

                with run_files(None, store.home) as files:
                    code = swarm.run_service(engine.client, workload, log=_log,
                                             labels=files.labels)
                recording.finish(code)
                return code
            kubernetes.emit(workload, include_secret=include_secret, out=sys.stdout,
                            message=message)
            recording.emitted()
            return 0
        finally:
            engine.close()


def _log(line: str) -> None:
    message(f"builder: {line}")
