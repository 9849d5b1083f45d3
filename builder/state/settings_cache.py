"""builder.yaml files already read, remembered by their content as JSON.

Loading the YAML parser is about a fifth of what `builder status` costs, and a project's
builder.yaml rarely changes between two runs. An entry holds the file's whole text and what
the parser made of it, and answers only that exact text, so a changed file is never
answered by an old entry. (Entries are named by a CRC of the text: a collision only makes
two files share a slot.) Only files whose settings were valid are remembered, and only
when JSON keeps exactly what YAML said. Every failure to read or write here is a miss,
never an error.

The entries live in `$BUILDER_HOME/cache/settings` (else the user's cache dir), at most
`MAX_ENTRIES` of them; the oldest go first.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from pathlib import Path
from typing import Any

MAX_ENTRIES = 64


def cache_dir() -> Path:
    home = os.environ.get("BUILDER_HOME")
    if home:
        return Path(home).expanduser() / "cache" / "settings"
    import platformdirs

    return Path(platformdirs.user_cache_dir("builder", appauthor=False)) / "settings"


def recall(text: str) -> dict[str, Any] | None:
    """What the YAML parser made of `text`, if it was remembered."""
    try:
        entry = json.loads(_entry(text).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("text") != text:
        return None
    data = entry.get("data")
    return data if isinstance(data, dict) else None


def remember(text: str, data: dict[Any, Any]) -> None:
    """Remember valid settings parsed from `text`, when JSON holds them exactly."""
    try:
        encoded = json.dumps({"text": text, "data": data}, allow_nan=False)
    except (TypeError, ValueError):
        return  # e.g. a date
    if json.loads(encoded)["data"] != data:
        return  # e.g. keys that are not strings
    from builder.state.atomic import atomic_write_text

    entry = _entry(text)
    with contextlib.suppress(OSError):
        atomic_write_text(entry, encoded, mode=0o600)
        prune(entry.parent)


def _entry(text: str) -> Path:
    return cache_dir() / f"{zlib.crc32(text.encode('utf-8')):08x}.json"


def prune(directory: Path, suffix: str = ".json") -> None:
    """Keep the newest `MAX_ENTRIES` files with `suffix` in `directory`."""
    entries = [path for path in directory.iterdir() if path.suffix == suffix]
    if len(entries) <= MAX_ENTRIES:
        return
    entries.sort(key=lambda path: path.stat().st_mtime)
    for path in entries[: len(entries) - MAX_ENTRIES]:
        path.unlink(missing_ok=True)
