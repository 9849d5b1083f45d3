"""The peak memory (RSS) of a command, measured so that the caller's own size does not count.

A child's `ru_maxrss` starts from the size of the process that forked it (Linux counts the
pages of the forked copy before `exec`), so a large test or bench process would inflate
every measurement. The command is therefore started by a small launcher process, which
reports the command's peak as `wait4` gives it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence

_LAUNCHER = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "print(usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status))\n"
)


def peak_rss(command: Sequence[str], env: Mapping[str, str],
             timeout: float = 600) -> tuple[int, int, str]:
    """Run `command` (its stdout discarded); its peak RSS in bytes, exit code and stderr."""
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, *command], env=dict(env),
                          capture_output=True, text=True, timeout=timeout, check=False)
    fields = done.stdout.split()
    if done.returncode != 0 or len(fields) != 2:
        raise RuntimeError(f"the RSS launcher failed ({done.returncode}): {done.stderr[-2000:]}")
    return int(fields[0]), int(fields[1]), done.stderr
