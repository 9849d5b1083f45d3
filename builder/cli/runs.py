"""`builder runs list|show|rerun|prune`: the records of past runs and builds."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from builder.cli.options import TYPER_OPTIONS
from builder.cli.output import emit, emit_json, message, table, warn
from builder.cli.runs_report import DEFAULT_LIMIT, show_runs
from builder.errors import UsageError
from builder.runs.database import RunDatabase, database_path
from builder.runs.records import RunRecord
from builder.state.store import default_home

app = typer.Typer(
    help="What every `builder run` and `builder build` ran: list, show, rerun, prune.",
    no_args_is_help=True,
    rich_markup_mode=None,
    **TYPER_OPTIONS,
)


@app.command("list")
def list_runs(
    path: Path | None = typer.Argument(
        None, help="Only the runs of this project directory (default: every project)."),
    limit: int = typer.Option(DEFAULT_LIMIT, "--limit", help="At most N runs, newest first "
                              "(0: all of them)."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """The recorded runs, newest first."""
    show_runs(path, limit, json_output)


@app.command("show")
def show(
    run_id: str = typer.Argument(..., metavar="ID", help="A run id, or a unique prefix of it."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Everything recorded about one run."""
    from builder.cli.runs_report import show_rows

    record = _find(run_id)
    if json_output:
        emit_json(record.to_json())
    else:
        emit(table(show_rows(record)))


@app.command("rerun")
def rerun(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., metavar="ID", help="A run id, or a unique prefix of it."),
) -> None:
    """Run exactly the same code again: the run's image by id or digest, and in reuse mode
    its commit. `-- CMD ...` replaces the recorded command."""
    from dataclasses import replace

    from builder.images.engine import Engine
    from builder.runs.recording import recorded
    from builder.runs.rerun import inherited_facts, rerun_spec
    from builder.state.store import Store
    from builder.targets.local import remove_orphans, run_container, run_files

    record = _find(run_id)
    store = Store.default()
    command = (ctx.obj or {}).get("command") or []
    engine = Engine.connect()
    try:
        remove_orphans(engine, store.home, _log)
        spec = rerun_spec(record, command, engine=engine, store=store, environ=os.environ,
                          log=_log, warn=warn)
        with recorded(store.home, kind="run", target="local", path=record.project_path,
                      command=spec.command, env_names=record.env_names,
                      rerun_of=record.id) as recording:
            recording.update(**inherited_facts(record))
            message(f"builder: run {recording.record.short_id}: run {record.short_id} again "
                    f"({record.mode}, commit {(record.commit or '-')[:12]}, image "
                    f"{spec.image[:19]})")
            with run_files(spec.token, store.home) as files:
                code = run_container(engine, replace(spec, labels=recording.labels()),
                                     files.token, log=_log, labels=files.labels)
            recording.finish(code)
    finally:
        engine.close()
    raise typer.Exit(code)


@app.command("prune")
def prune(
    older_than: str = typer.Option(..., "--older-than", metavar="AGE",
                                   help="Remove the records of runs that started more than "
                                        "AGE ago: 90s, 15m, 12h, 30d, 2w."),
) -> None:
    """Remove old run records (running ones are kept)."""
    from builder.runs.retention import parse_age

    seconds = parse_age(older_than)
    home = default_home()
    removed = 0
    if database_path(home).exists():
        with RunDatabase(home) as database:
            removed = database.prune(seconds)
    message(f"builder: removed {removed} run record{'' if removed == 1 else 's'} "
            f"older than {older_than}")


def _find(run_id: str) -> RunRecord:
    home = default_home()
    if not database_path(home).exists():
        raise UsageError(f"no run {run_id!r}: no runs are recorded yet in {database_path(home)}")
    with RunDatabase(home) as database:
        return database.find(run_id)


def _log(line: str) -> None:
    message(f"builder: {line}")
