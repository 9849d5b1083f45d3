"""What a killed `builder run` leaves behind, and how the next run finds and removes it.

Each run holds a directory `$BUILDER_HOME/run/run-*` for its whole life (locked, see
`builder.state.atomic.held_directory`); the token file the container mounts lives in it. The
run's container (or swarm service) carries the label `org.builder.owner` =
`<host>:<that directory>`. When a run is killed (`kill -9`), its lock goes with it, so the
next run of the same `$BUILDER_HOME` on the same host sees that the owner is gone, removes
the container or service (whose token secret then goes too), and removes the directory with
the token file. A run that is still alive holds its lock and is never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path

from builder.state.atomic import RANDOM_PART, clear_stale, held_directory, is_held

OWNER_LABEL = "org.builder.owner"
RUN_PREFIX = "run-"


@contextlib.contextmanager
def run_directory(home: Path) -> Iterator[Path]:
    """This run's private directory (0700), held until the run ends, then removed."""
    runs = home / "run"
    runs.mkdir(parents=True, exist_ok=True, mode=0o700)
    with held_directory(runs, RUN_PREFIX) as directory:
        yield directory


def owner_labels(directory: Path) -> dict[str, str]:
    return {OWNER_LABEL: f"{socket.gethostname()}:{directory}"}


def is_orphan(labels: Mapping[str, str] | None, home: Path) -> bool:
    """Whether a container or service labelled by a run of `home` on this host outlived it."""
    owner = (labels or {}).get(OWNER_LABEL, "")
    host, _, directory = owner.partition(":")
    if host != socket.gethostname() or not directory:
        return False
    path = Path(directory)
    if path.parent != home / "run" or not path.name.startswith(RUN_PREFIX):
        return False
    return not is_held(path)


def left_by(home: Path) -> bool:
    """Whether a killed run of `home` left its run directory (and maybe a container)."""
    runs = home / "run"
    name = re.compile(rf"^{re.escape(RUN_PREFIX)}{RANDOM_PART}$")
    try:
        names = [entry for entry in os.listdir(runs) if name.match(entry)]
    except OSError:
        return False
    return any(not is_held(runs / entry) for entry in names)


def clear_run_directories(home: Path) -> list[str]:
    """Remove the run directories (and token files) of runs that were killed."""
    name = re.compile(rf"^{re.escape(RUN_PREFIX)}{RANDOM_PART}$")
    return clear_stale(home / "run", lambda entry: name.match(entry) is not None)
