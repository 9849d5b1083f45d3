"""One overall deadline for a download, whatever it is waiting for.

A read timeout bounds one wait for the next bytes; a server that trickles a byte a second
never trips it. So every download (`download`, `fetch_atomically`) runs under a deadline,
BUILDER_DOWNLOAD_DEADLINE seconds (default 300: a container start waits minutes, never
hours), that bounds everything inside it:

- an archive body, and every answer to a session of `builder.code.sessions`: a watchdog
  shuts the connection down when the deadline passes;
- each HTTP request's timeouts and each git command's run time (`bound`);
- retries: a backoff or a server-requested wait (a rate limit window, up to a minute on
  gitlab.com) that would end after the deadline fails at once, saying what it waited for.

The error names the setting and what the download was waiting for.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from builder.errors import DeadlineError, UsageError

ENV = "BUILDER_DOWNLOAD_DEADLINE"
DEFAULT_SECONDS = 300.0

_current: ContextVar[Deadline | None] = ContextVar("builder_download_deadline", default=None)


class Deadline:
    """The end of the time a download may take (monotonic clock)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self._connections: list[Any] = []
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return max(self.ends - time.monotonic(), 0.0)

    def expired(self) -> bool:
        return time.monotonic() >= self.ends

    def error(self, what: str, waiting_for: str) -> DeadlineError:
        return DeadlineError(
            f"{what}: the download did not finish within its deadline of {self.seconds:g} s "
            f"({ENV}); it was waiting for {waiting_for}"
        )

    def check(self, what: str, waiting_for: str) -> None:
        if self.expired():
            raise self.error(what, waiting_for)

    def allow_wait(self, seconds: float, waiting_for: str) -> None:
        """Raise unless a wait of `seconds` ends before the deadline."""
        left = self.remaining()
        if seconds > left:
            raise DeadlineError(
                f"{waiting_for}: waiting {seconds:.0f} s more would pass the download's "
                f"deadline of {self.seconds:g} s ({ENV}; {left:.0f} s left); raise {ENV} to "
                "wait longer"
            )

    def bound(self, timeout: float | None) -> float:
        """`timeout`, shortened to what is left (at least a moment, so a call can fail)."""
        left = max(self.remaining(), 0.01)
        return left if timeout is None else min(timeout, left)

    def register(self, connection: Any) -> None:
        """Shut `connection` (an HTTP response) down when the deadline passes, so that a read
        blocked on it (a trickle) returns at once."""
        with self._lock:
            self._connections.append(connection)
            if self._timer is None:
                self._timer = threading.Timer(self.remaining(), self._expire)
                self._timer.daemon = True
                self._timer.start()

    @contextlib.contextmanager
    def watch(self, connection: Any) -> Iterator[None]:
        """`register` the connection for the block that reads from it."""
        self.register(connection)
        yield

    def close(self) -> None:
        """The download is over: nothing is shut down any more."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._connections.clear()

    def _expire(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            _shut_down(connection)


def current() -> Deadline | None:
    """The deadline of the download running in this context, if any."""
    return _current.get()


@contextlib.contextmanager
def bounded(seconds: float | None = None) -> Iterator[Deadline]:
    """Run the block under a download deadline; inside another one, that one holds."""
    active = _current.get()
    if active is not None:
        yield active
        return
    deadline = Deadline(configured_seconds() if seconds is None else seconds)
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)
        deadline.close()


def configured_seconds() -> float:
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return DEFAULT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value:
        raise UsageError(f"{ENV}={raw!r} must be a number of seconds above 0")
    return value


def register_response(response: Any, *args: Any, **kwargs: Any) -> None:
    """A requests response hook: the current download's deadline can shut the response's
    connection down (a body read before `stream_archive` sees it, an API answer)."""
    active = _current.get()
    if active is not None:
        active.register(response)


def bound(timeout: float | None) -> float | None:
    """`timeout`, shortened to what is left of the current download's deadline."""
    active = _current.get()
    return timeout if active is None else active.bound(timeout)


def _shut_down(connection: Any) -> None:
    import socket

    sock = _socket_of(connection)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _socket_of(connection: Any) -> Any:
    """The socket under a requests response (or an object holding one as `_response`)."""
    for holder in (connection, getattr(connection, "_response", None)):
        raw = getattr(holder, "raw", None)
        if raw is None:
            continue
        sock = getattr(getattr(raw, "_connection", None), "sock", None)  # urllib3 2
        if sock is None:
            stream = getattr(getattr(raw, "_fp", None), "fp", None)  # http.client's file
            sock = getattr(getattr(stream, "raw", None), "_sock", None)
        if sock is not None:
            return sock
    return None
