"""The run records' SQLite database: `$BUILDER_HOME/runs/runs.db`.

- Versioned schema (`PRAGMA user_version`, with builder's `application_id`). A database
  appears fully formed: it is made in a temporary file (WAL mode, schema) and linked into
  place, so a concurrent CLI never sees half a schema.
- WAL mode and a busy timeout: concurrent CLIs wait for each other's short write
  transactions (`BEGIN IMMEDIATE`) instead of failing, so no record is lost.
- A file that is not a readable database, another program's database, or one with a newer
  schema is a one-line error naming the file. It is never reset or rewritten.
- Every text is redacted before it is stored.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from builder.errors import StoreError, UsageError
from builder.runs import owners
from builder.runs.records import KILLED, RUNNING, RunRecord
from builder.runs.retention import DEFAULT_KEEP
from builder.state.secrets import redact

DIRECTORY = "runs"
DATABASE = "runs.db"
SCHEMA_VERSION = 1
APPLICATION_ID = 0x6275726E  # "burn": builder's run records
BUSY_SECONDS = 60.0
AMBIGUOUS_SHOWN = 5
_ID_PREFIX = re.compile(r"^[0-9a-f]{1,32}$")

# (record field, column, how it is stored)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("id", "id", "text"),
    ("kind", "kind", "text"),
    ("target", "target", "text"),
    ("status", "status", "text"),
    ("started_at", "started_at", "real"),
    ("ended_at", "ended_at", "real"),
    ("exit_code", "exit_code", "int"),
    ("error", "error", "text"),
    ("project_path", "project_path", "text"),
    ("project_name", "project_name", "text"),
    ("command", "command", "json"),
    ("mode", "mode", "text"),
    ("reasons", "reasons", "json"),
    ("code_repository", "code_repository", "text"),
    ("repository_spec", "repository_spec", "json"),
    ("commit", "commit_sha", "text"),
    ("subdirectory", "subdirectory", "text"),
    ("dirty_files", "dirty_files", "json"),
    ("content_hash", "content_hash", "text"),
    ("checksum", "checksum", "text"),
    ("base_image", "base_image", "text"),
    ("image", "image", "text"),
    ("image_id", "image_id", "text"),
    ("image_digest", "image_digest", "text"),
    ("code_dir", "code_dir", "text"),
    ("verify_download", "verify_download", "bool"),
    ("network", "network", "text"),
    ("volumes", "volumes", "json"),
    ("env_names", "env_names", "json"),
    ("builder_version", "builder_version", "text"),
    ("ci", "ci", "json"),
    ("pid", "pid", "int"),
    ("host", "host", "text"),
    ("rerun_of", "rerun_of", "text"),
)
_COLUMN = {name: (column, kind) for name, column, kind in COLUMNS}
_FIELDS = tuple(name for name, _, _ in COLUMNS)
_SELECTED = ", ".join(column for _, column, _ in COLUMNS)
_JSON_FIELDS = tuple(name for name, _, kind in COLUMNS if kind == "json")
_EMPTY: dict[str, type] = {"command": list, "reasons": list, "dirty_files": list,
                           "env_names": list, "volumes": dict}
_SQL_TYPE = {"text": "TEXT", "real": "REAL", "int": "INTEGER", "json": "TEXT", "bool": "INTEGER"}
_REQUIRED = {"id", "kind", "status", "started_at", "project_path"}
_SCHEMA = (
    "CREATE TABLE runs (\n  seq INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    + ",\n".join(
        f"  {column} {_SQL_TYPE[kind]}" + (" NOT NULL" if name in _REQUIRED else "")
        + (" UNIQUE" if name == "id" else "")
        for name, column, kind in COLUMNS
    )
    + "\n);\n"
    "CREATE INDEX runs_by_project ON runs (project_path, seq);\n"
    "CREATE INDEX runs_by_start ON runs (started_at);\n"
    "CREATE INDEX runs_running ON runs (status) WHERE status = 'running';\n"
)


def database_path(home: Path) -> Path:
    return Path(home) / DIRECTORY / DATABASE


class RunDatabase:
    """The records of one `$BUILDER_HOME`. Opened on first use; `close` when done."""

    def __init__(self, home: Path, *, keep: int = DEFAULT_KEEP) -> None:
        self.directory = Path(home) / DIRECTORY
        self.path = self.directory / DATABASE
        self.keep = keep
        self._connection: sqlite3.Connection | None = None

    def __enter__(self) -> RunDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
            self._connection = None

    def open(self) -> None:
        """Open (or create) the database now: a bad file fails here, before anything else."""
        self._db()

    # ---- writing -------------------------------------------------------------------------

    def insert(self, record: RunRecord) -> None:
        """Add a record, then drop the oldest finished ones beyond the cap."""
        names = [name for name, _, _ in COLUMNS]
        values = _encode(record, names)
        columns = ", ".join(_COLUMN[name][0] for name in names)
        marks = ", ".join("?" for _ in names)
        with self._write() as db:
            db.execute(f"INSERT INTO runs ({columns}) VALUES ({marks})", values)
            # By sequence number, not by counting rows: the cap costs an index lookup.
            db.execute(
                "DELETE FROM runs WHERE status != 'running' AND seq <= "
                "(SELECT max(seq) FROM runs) - ?",
                (self.keep,),
            )

    def update(self, run_id: str, **fields: Any) -> None:
        """Set fields of a record that is still running (a finished one is never rewritten)."""
        names = sorted(fields)
        if not names:
            return
        unknown = [name for name in names if name not in _COLUMN or name == "id"]
        if unknown:
            raise ValueError(f"not a run record field: {', '.join(unknown)}")
        sets = ", ".join(f"{_COLUMN[name][0]} = ?" for name in names)
        values = _encode_fields(fields, names)
        with self._write() as db:
            db.execute(f"UPDATE runs SET {sets} WHERE id = ? AND status = 'running'",
                       [*values, run_id])

    def delete(self, run_id: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def prune(self, older_than: float, now: float | None = None) -> int:
        """Remove finished records that started more than `older_than` seconds ago."""
        cutoff = (time.time() if now is None else now) - older_than
        self.reap()
        with self._write() as db:
            removed = db.execute(
                "DELETE FROM runs WHERE started_at < ? AND status != 'running'", (cutoff,)
            ).rowcount
        if removed:
            with self._errors():
                self._db().execute("PRAGMA incremental_vacuum")
        return int(removed)

    def reap(self) -> list[str]:
        """Mark `killed` the running records whose owner process is gone; their ids."""
        with self._errors():
            rows = self._db().execute("SELECT id FROM runs WHERE status = 'running'").fetchall()
        gone = [row[0] for row in rows if owners.is_gone(self.directory, row[0])]
        if gone:
            with self._write() as db:
                db.executemany(
                    f"UPDATE runs SET status = '{KILLED}' WHERE id = ? AND status = '{RUNNING}'",
                    [(run_id,) for run_id in gone],
                )
        return gone

    # ---- reading -------------------------------------------------------------------------

    def runs(self, project_path: str | None = None, limit: int | None = None) -> list[RunRecord]:
        """Newest first; only `project_path`'s when given; at most `limit` (None: all)."""
        self.reap()
        where = "WHERE project_path = ?" if project_path else ""
        params: list[Any] = [project_path] if project_path else []
        tail = " LIMIT ?" if limit else ""
        if limit:
            params.append(limit)
        with self._errors():
            rows = self._db().execute(
                f"SELECT {_SELECTED} FROM runs {where} ORDER BY seq DESC{tail}", params
            ).fetchall()
        return _decode_all(rows)

    def find(self, prefix: str) -> RunRecord:
        """The one record whose id starts with `prefix` (a usage error if none or several)."""
        wanted = prefix.strip().lower()
        if not _ID_PREFIX.match(wanted):
            raise UsageError(f"run id {prefix!r} is not a run id (hex digits, as `builder runs "
                             "list` shows them)")
        self.reap()
        with self._errors():
            rows = self._db().execute(
                f"SELECT {_SELECTED} FROM runs WHERE id >= ? AND id < ? ORDER BY seq DESC "
                "LIMIT ?",
                (wanted, wanted + "g", AMBIGUOUS_SHOWN + 1),
            ).fetchall()
        if not rows:
            raise UsageError(f"no run {prefix!r} in {self.path} (see `builder runs list`)")
        if len(rows) > 1:
            shown = ", ".join(row[0][:12] for row in rows[:AMBIGUOUS_SHOWN])
            more = ", ..." if len(rows) > AMBIGUOUS_SHOWN else ""
            raise UsageError(
                f"run id {prefix!r} is ambiguous: it starts {shown}{more}; give more of it"
            )
        return _decode_all(rows)[0]

    def count(self) -> int:
        with self._errors():
            return int(self._db().execute("SELECT count(*) FROM runs").fetchone()[0])

    # ---- the connection ------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = self._open()
        return self._connection

    def _open(self) -> sqlite3.Connection:
        with self._errors():
            if not self.path.exists():
                self._create()
            db = sqlite3.connect(str(self.path), timeout=BUSY_SECONDS, isolation_level=None,
                                 check_same_thread=False)
            try:
                version = int(db.execute("PRAGMA user_version").fetchone()[0])
                application = int(db.execute("PRAGMA application_id").fetchone()[0])
                if application != APPLICATION_ID:
                    raise StoreError(
                        f"{self.path} is not builder's run database (application id "
                        f"{application:#x}); builder leaves it as it is: move it away to "
                        "start a new one"
                    )
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path} has run records of schema version {version}, newer than "
                        f"this builder's ({SCHEMA_VERSION}): use a newer builder (the file is "
                        "left as it is)"
                    )
                db.execute("PRAGMA synchronous = NORMAL")
            except BaseException:
                db.close()
                raise
            return db

    def _create(self) -> None:
        """Make the database in a temporary file, then link it into place (never over one)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, temporary = tempfile.mkstemp(prefix=".runs.", suffix=".db", dir=self.directory)
        os.close(fd)
        try:
            db = sqlite3.connect(temporary, isolation_level=None)
            try:
                db.execute("PRAGMA auto_vacuum = INCREMENTAL")
                db.execute("PRAGMA journal_mode = WAL")
                db.executescript(
                    f"BEGIN;\n{_SCHEMA}PRAGMA application_id = {APPLICATION_ID};\n"
                    f"PRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;\n"
                )
            finally:
                db.close()
            with contextlib.suppress(FileExistsError):  # another CLI made it first: use theirs
                os.link(temporary, self.path)
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(temporary + suffix).unlink(missing_ok=True)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE) so it waits, never fails."""
        with self._errors():
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise StoreError(
                    f"{self.path}: the run records stayed locked by another builder for "
                    f"{BUSY_SECONDS:.0f} s ({text})"
                ) from None
            if "unable to open" in text or "readonly" in text or "I/O" in text:
                raise StoreError(f"{self.path}: cannot use the run records: {text}") from None
            raise self._unreadable(exc) from None
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None
        except OSError as exc:
            raise StoreError(
                f"{self.path}: cannot use the run records: {exc.strerror or exc}"
            ) from None

    def _unreadable(self, exc: Exception) -> StoreError:
        return StoreError(
            f"{self.path} is not a readable run database ({exc}); builder leaves it as it is: "
            "move it away to start a new one"
        )


def _encode(record: RunRecord, names: Sequence[str]) -> list[Any]:
    return _encode_fields({name: getattr(record, name) for name in names}, names)


def _encode_fields(fields: dict[str, Any], names: Sequence[str]) -> list[Any]:
    values: list[Any] = []
    for name in names:
        value = fields[name]
        kind = _COLUMN[name][1]
        if value is None:
            values.append(None)
        elif kind == "json":
            values.append(json.dumps(_redacted(value), sort_keys=True))
        elif kind == "text":
            values.append(redact(str(value)))
        elif kind == "bool":
            values.append(1 if value else 0)
        else:
            values.append(value)
    return values


def _redacted(value: Any) -> Any:
    """Every string inside a JSON value, redacted before it is encoded (and escaped)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {_redacted(key): _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


def _decode_all(rows: Sequence[Sequence[Any]]) -> list[RunRecord]:
    """Rows as records; the JSON columns of all rows are parsed in one go (one C call instead
    of seven per row), row by row only if some text does not parse."""
    indexes = [_FIELDS.index(name) for name in _JSON_FIELDS]
    text = "[" + ",".join(
        "[" + ",".join(row[i] if row[i] is not None else "null" for i in indexes) + "]"
        for row in rows
    ) + "]"
    try:
        parsed = json.loads(text)
    except ValueError:
        return [_decode(row) for row in rows]
    return [_decode(row, values) for row, values in zip(rows, parsed, strict=True)]


def _decode(row: Sequence[Any], parsed: Sequence[Any] | None = None) -> RunRecord:
    """A row of `_SELECTED` (the columns in COLUMNS' order) as a record."""
    data = dict(zip(_FIELDS, row, strict=True))
    for position, name in enumerate(_JSON_FIELDS):
        if parsed is not None:
            value = parsed[position]
        elif data[name] is not None:
            try:
                value = json.loads(data[name])
            except ValueError:
                value = None
        else:
            value = None
        data[name] = _EMPTY[name]() if value is None and name in _EMPTY else value
    data["verify_download"] = bool(data["verify_download"])
    if data["subdirectory"] is None:
        data["subdirectory"] = ""
    return RunRecord(**data)
