"""Images builder knows a registry has: it pushed them there, pulled them, or asked.

`builder build --push` (and `builder run --push`) must leave each image in the registry.
Asking the registry whether it has one costs the engine five connections, about fifteen
round trips; over a WAN that is most of a reuse run's network time. So builder remembers,
per tag, the image id it last saw the registry have, and for `FRESH_SECONDS` after that it
does not ask again about the same tag naming the same image. builder's tags are
content-derived (a base image's names its inputs' checksum), so a tag that names the same
image id names the same content. Someone who deletes an image from the registry by hand
within that time removes `$BUILDER_HOME/cache/pushed` too (or waits it out).

A record is JSON in `$BUILDER_HOME/cache/pushed/<hash of the tag>`; every failure to read
or write one is a miss (builder asks), never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from pathlib import Path

FRESH_SECONDS = 3600.0


def _entry(home: Path, ref: str) -> Path:
    return home / "cache" / "pushed" / hashlib.sha256(ref.encode()).hexdigest()[:32]


def known(home: Path, ref: str, image_id: str | None, *, now: float | None = None) -> bool:
    """Whether the registry had `ref` as `image_id` less than FRESH_SECONDS ago."""
    if not image_id:
        return False
    try:
        record = json.loads(_entry(home, ref).read_text(encoding="utf-8"))
        age = (time.time() if now is None else now) - float(record["seen"])
        return record["ref"] == ref and record["image"] == image_id and 0 <= age < FRESH_SECONDS
    except (OSError, ValueError, KeyError, TypeError):
        return False


def remember(home: Path, ref: str, image_id: str | None, *, now: float | None = None) -> None:
    """The registry has `ref` as `image_id` now (builder pushed it, pulled it, or asked)."""
    if not image_id:
        return
    from builder.state.atomic import atomic_write_text

    record = {"ref": ref, "image": image_id, "seen": time.time() if now is None else now}
    with contextlib.suppress(OSError):
        atomic_write_text(_entry(home, ref), json.dumps(record), mode=0o600)
