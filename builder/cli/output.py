"""Printing: results to stdout, builder's own messages to stderr, always redacted."""

from __future__ import annotations

import json
import sys
from typing import Any

from builder.state.secrets import redact


def emit_json(data: Any) -> None:
    sys.stdout.write(redact(json.dumps(data, indent=2, sort_keys=False)) + "\n")
    sys.stdout.flush()


def emit_json_lines(items: list[Any]) -> None:
    """A JSON array with one compact item per line: quick to write and to read for long lists."""
    body = ",\n".join(json.dumps(item, sort_keys=False) for item in items)
    sys.stdout.write(redact(f"[\n{body}\n]" if items else "[]") + "\n")
    sys.stdout.flush()


def emit(text: str = "") -> None:
    sys.stdout.write(redact(text) + "\n")
    sys.stdout.flush()


def message(text: str) -> None:
    """A line for the person at the terminal (stderr)."""
    sys.stderr.write(redact(text) + "\n")
    sys.stderr.flush()


def warn(text: str) -> None:
    message(f"builder: warning: {text}")


def table(rows: list[tuple[str, str]]) -> str:
    width = max((len(key) for key, _ in rows), default=0)
    return "\n".join(f"{key.ljust(width)}  {value}" for key, value in rows)
