"""What `builder runs list` and `builder runs show` print: a table of runs, one run's facts.

`show_runs` serves both the typer command and the `runs list` fast path (builder/cli).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from builder.cli.output import emit, emit_json_lines, message
from builder.errors import UsageError
from builder.runs.database import RunDatabase, database_path
from builder.runs.records import KILLED, RUN_ID_LABEL, RunRecord, local_time
from builder.state.store import default_home

COLUMNS = ("ID", "STARTED", "TOOK", "RESULT", "WHAT", "PROJECT", "MODE", "COMMIT", "DIRTY",
           "IMAGE ID", "DIGEST")
DIRTY_WIDTH = 24


DEFAULT_LIMIT = 20


def show_runs(path: Path | None, limit: int, json_output: bool) -> None:
    """`builder runs list`: newest first, at most `limit` (0: all), `path`'s only if given."""
    if limit < 0:
        raise UsageError(f"--limit {limit}: expected 0 (all) or more")
    home = default_home()
    records: list[RunRecord] = []
    if database_path(home).exists():  # a reader never creates the database
        project = str(path.resolve()) if path is not None else None
        with RunDatabase(home) as database:
            records = database.runs(project, limit or None)
    if json_output:
        emit_json_lines([record.to_json() for record in records])
    elif records:
        emit(list_table(records))
    else:
        message("no runs recorded" + (f" for {path}" if path is not None else ""))


def list_table(records: Sequence[RunRecord]) -> str:
    rows = [COLUMNS, *(_row(record) for record in records)]
    widths = [max(len(row[index]) for row in rows) for index in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _row(record: RunRecord) -> tuple[str, ...]:
    return (
        record.short_id,
        local_time(record.started_at),
        duration(record.seconds),
        record.result,
        what(record),
        record.project_name or os.path.basename(record.project_path),
        record.mode or "-",
        (record.commit or "-")[:12],
        dirty(record.dirty_files),
        short_digest(record.image_id),
        short_digest(record.image_digest),
    )


def show_rows(record: RunRecord) -> list[tuple[str, str]]:
    rows = [
        ("id", record.id),
        ("what", what(record) + (f" (a rerun of {record.rerun_of[:12]})" if record.rerun_of
                                 else "")),
        ("result", record.result),
        ("started", local_time(record.started_at)),
        ("ended", local_time(record.ended_at) if record.ended_at is not None else "-"),
        ("took", duration(record.seconds)),
        ("project", f"{record.project_name or '-'}  ({record.project_path})"),
        ("command", shlex.join(record.command) if record.command else "-"),
        ("mode", record.mode or "-"),
    ]
    for index, reason in enumerate(record.reasons):
        rows.append(("reasons" if index == 0 else "", f"- {reason}"))
    rows += [
        ("repository", record.code_repository or "-"),
        ("commit", record.commit or "-"),
        ("subdirectory", record.subdirectory or "(root)"),
        ("dirty files", ", ".join(record.dirty_files) or "-"),
        ("content hash", record.content_hash or "-"),
        ("checksum", record.checksum or "-"),
        ("base image", record.base_image or "-"),
        ("image", record.image or "-"),
        ("image id", record.image_id or "-"),
        ("digest", f"{record.image_digest}  ({record.pinned_image})" if record.image_digest
         else "- (not in a registry)"),
        ("builder", record.builder_version or "-"),
    ]
    if record.ci:
        ci = record.ci
        ids = ", ".join(f"{key} {value}" for key, value in ci.items()
                        if key.endswith("_id") or key == "run_attempt")
        rows.append(("ci", f"{ci.get('system')}: {ids}" + (f"  {ci['url']}" if ci.get("url")
                                                            else "")))
    if record.network:
        rows.append(("network", record.network))
    for index, (source, bind) in enumerate(sorted(record.volumes.items())):
        rows.append(("volumes" if index == 0 else "",
                     f"{source}:{bind.get('bind')}:{bind.get('mode', 'rw')}"))
    if record.env_names:
        rows.append(("environment", ", ".join(record.env_names) + "  (names only)"))
    rows.append(("host", f"{record.host or '-'} (pid {record.pid})"))
    if record.status == KILLED and record.kind == "run":
        rows.append(("note", "builder was killed; its container or service may still run: "
                             f"docker ps --filter label={RUN_ID_LABEL}={record.id}"))
    if record.error:
        rows.append(("error", record.error))
    return rows


def what(record: RunRecord) -> str:
    kind = "rerun" if record.rerun_of else record.kind
    return f"{kind} {record.target}" if record.target else kind


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def dirty(files: Sequence[str]) -> str:
    if not files:
        return "-"
    first = files[0] if len(files[0]) <= DIRTY_WIDTH else "..." + files[0][-(DIRTY_WIDTH - 3):]
    return first + (f" +{len(files) - 1}" if len(files) > 1 else "")


def short_digest(digest: str | None) -> str:
    """`sha256:0123...` -> its first 12 hex digits, as `docker images` shows image ids."""
    if not digest:
        return "-"
    return digest.partition(":")[2][:12] or digest[:12]
