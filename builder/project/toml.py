"""Reading TOML files (pyproject.toml, the lock files), with errors that name the file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from builder.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - builder's dependencies bring tomli on Python 3.10
    import tomli as tomllib


def load_toml(path: Path) -> dict[str, Any]:
    """The parsed file; a file that is not valid TOML is a one-line error naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read: {exc.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None


def table(data: dict[str, Any], dotted: str, where: Path) -> dict[str, Any]:
    """The table at a dotted key (empty when absent); anything but a table is an error."""
    value: Any = data
    for part in dotted.split("."):
        value = value.get(part, {}) if isinstance(value, dict) else None
        if not isinstance(value, dict):
            raise UsageError(f"{where}: key {dotted!r}: expected a table")
    return value
