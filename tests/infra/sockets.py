"""Stopping a listening socket that a thread accepts on."""

from __future__ import annotations

import contextlib
import socket
import threading


def stop_accepting(listener: socket.socket, thread: threading.Thread,
                   timeout: float = 10.0) -> None:
    """End `thread`'s accept loop on `listener`, then close it. The order matters: a thread
    still in accept() on a closed descriptor takes the connections of the next socket given
    that number (a later test's server, whose client then waits for an answer). shutdown()
    wakes accept() (EINVAL on Linux) while the descriptor is still this listener's."""
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)
    thread.join(timeout)
    listener.close()
