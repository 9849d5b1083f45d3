"""How long run records are kept: `prune --older-than AGE`, and the default cap.

The database keeps the newest `BUILDER_RUNS_KEEP` records (default 10,000, a few MB); each new
record drops the oldest finished ones beyond that. A running record is never dropped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from builder.errors import UsageError

KEEP_ENV = "BUILDER_RUNS_KEEP"
DEFAULT_KEEP = 10_000
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"^(\d+)([smhdw])$")


def parse_age(text: str, option: str = "--older-than") -> int:
    """`90s`, `15m`, `12h`, `30d`, `2w` -> seconds; anything else is a usage error."""
    match = _AGE.match(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise UsageError(
            f"{option} {text!r}: expected a positive number and a unit, e.g. 90s, 15m, 12h, "
            "30d or 2w"
        )
    return int(match.group(1)) * UNITS[match.group(2)]


def keep_limit(environ: Mapping[str, str] | None = None) -> int:
    """The cap on the number of records: `BUILDER_RUNS_KEEP`, else DEFAULT_KEEP."""
    env = os.environ if environ is None else environ
    value = env.get(KEEP_ENV, "").strip()
    if not value:
        return DEFAULT_KEEP
    if not value.isdigit() or int(value) < 1:
        raise UsageError(f"{KEEP_ENV}={value!r}: expected a whole number of records, at least 1")
    return int(value)
