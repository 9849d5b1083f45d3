"""No core dumps while builder may hold a secret: a dump of its memory would hold the token.

`disable` sets the soft RLIMIT_CORE to 0 and, on Linux, marks the process not dumpable
(PR_SET_DUMPABLE 0), which also stops a core_pattern pipe handler (the kernel ignores
RLIMIT_CORE for those) and other processes of the same user from reading its memory.
`restore_for_exec` gives the user's program, which the entrypoint execs and which never holds
builder's token, its own limit back; execve resets the dumpable flag by itself.
"""

from __future__ import annotations

import sys

PR_SET_DUMPABLE = 4
_saved: tuple[int, int] | None = None
_done = False


def disable(*, undumpable: bool = True) -> None:
    """Turn core dumps off for this process (idempotent, never fails).

    `undumpable=False` sets only the limit (cheap: for a command that may never hold a
    secret in memory; `secrets.remember` completes it once one is)."""
    global _saved, _done
    if _saved is None:
        try:
            import resource

            soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
            _saved = (soft, hard)
            if soft != 0:
                resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
        except (ImportError, OSError, ValueError):
            pass
    if _done or not undumpable:
        return
    _done = True
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        except (ImportError, OSError, AttributeError):
            pass


def restore_for_exec() -> None:
    """Before exec'ing the user's program: its own core limit, as it was given to builder."""
    if _saved is None:
        return
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, _saved)
    except (ImportError, OSError, ValueError):
        pass
