"""Independent requests at once: over a network, n of them one after another cost n round
trips, and at once about one. Each call runs in a thread of its own (clients that are not
thread-safe make one per thread: see `PerThread`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
MAX_WORKERS = 8


def run_all(calls: Sequence[Callable[[], T]], workers: int = MAX_WORKERS) -> list[T]:
    """The results of `calls` in their order, at most `workers` running at a time.

    Every call finishes (or fails) before this returns; then the first failure, in the
    calls' order, is raised.
    """
    if len(calls) <= 1 or workers <= 1:
        return [call() for call in calls]
    results: list[T | None] = [None] * len(calls)
    errors: list[BaseException | None] = [None] * len(calls)
    pending = iter(range(len(calls)))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                index = next(pending, None)
            if index is None:
                return
            try:
                results[index] = calls[index]()
            except BaseException as exc:  # re-raised in the caller's thread below
                errors[index] = exc

    threads = [threading.Thread(target=work, daemon=True, name=f"builder-fetch-{n}")
               for n in range(min(workers, len(calls)) - 1)]
    for thread in threads:
        thread.start()
    work()
    for thread in threads:
        thread.join()
    for error in errors:
        if error is not None:
            raise error
    return results  # type: ignore[return-value]  # every slot was filled


class PerThread(Generic[T]):
    """One object per thread, made on first use there (a client and its connection)."""

    def __init__(self, make: Callable[[], T], mine: T | None = None) -> None:
        """`mine`, if given, is the calling thread's (e.g. a client it has used already)."""
        self._make = make
        self._local = threading.local()
        if mine is not None:
            self._local.value = mine

    def get(self) -> T:
        value: T | None = getattr(self._local, "value", None)
        if value is None:
            value = self._local.value = self._make()
        return value
