"""Which recorded runs are still alive: each running command holds a lock until it finishes.

The command locks `active/<id>.lock` before its record says `running`, and keeps the lock
until the record is finished. The kernel drops the lock when the process dies, however it
dies (kill -9 included), so a reader that can take the lock knows the owner is gone. Locks
survive neither pid reuse nor clock changes, which a pid and a start time would have to guess
at.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from builder.state.locks import file_lock

ACTIVE = "active"


def lock_path(directory: Path, run_id: str) -> Path:
    return directory / ACTIVE / f"{run_id}.lock"


class Owner:
    """The lock a running command holds for its record (released by `release` or by death)."""

    def __init__(self, directory: Path, run_id: str) -> None:
        self.path = lock_path(directory, run_id)
        self._stack = contextlib.ExitStack()

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._stack.enter_context(file_lock(self.path))

    def release(self) -> None:
        """After the record is finished: drop the lock, then its file."""
        self._stack.close()
        self.path.unlink(missing_ok=True)


def is_gone(directory: Path, run_id: str) -> bool:
    """True when no live process holds the run's lock (its file is then removed)."""
    path = lock_path(directory, run_id)
    if not path.exists():
        return True
    with file_lock(path, blocking=False) as taken:
        if not taken:
            return False
    path.unlink(missing_ok=True)
    return True
