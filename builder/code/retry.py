"""One bounded retry policy for talking to code servers.

Transient failures (a connection reset, a 5xx answer, 429, GitHub's secondary rate limit, a
body cut off mid-way) are retried with exponential backoff and full jitter, bounded by a
number of tries and a total time. When the server says how long to wait (`Retry-After`, or
`X-RateLimit-Reset` / `RateLimit-Reset` with no requests remaining), that wait is honoured up
to a cap; a server asking for more than the cap fails at once with a message that says when
the limit resets, instead of sleeping for minutes at a container start.

Operations signal a transient failure by raising `Retryable(error, wait)`: `error` is the
one-line `DownloadError` raised when the budget is spent, `wait` the server's requested delay.
Everything else propagates at once. Sleeping, the clocks and the jitter are injectable, so
unit tests never sleep; the limits can be set from the environment:

- BUILDER_RETRY_MAX_TRIES    tries in all, the first included (default 5)
- BUILDER_RETRY_MAX_SECONDS  total time budget for the operation (default 120)
- BUILDER_RETRY_BASE_DELAY   first backoff ceiling in seconds (default 0.5)
- BUILDER_RETRY_MAX_DELAY    ceiling of one backoff (default 20)
- BUILDER_RETRY_MAX_WAIT     longest server-requested wait honoured (default 60)
"""

from __future__ import annotations

import dataclasses
import email.utils
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from builder.errors import DownloadError, RateLimitError

T = TypeVar("T")

_ENV = {
    "max_tries": ("BUILDER_RETRY_MAX_TRIES", int),
    "max_seconds": ("BUILDER_RETRY_MAX_SECONDS", float),
    "base_delay": ("BUILDER_RETRY_BASE_DELAY", float),
    "max_delay": ("BUILDER_RETRY_MAX_DELAY", float),
    "max_wait": ("BUILDER_RETRY_MAX_WAIT", float),
}
_RATE_LIMIT_MESSAGES = (
    "api rate limit exceeded",
    "secondary rate limit",
    "please retry your request again later",
    "please wait a few minutes before you try again",
    "rate limit",
)


class Retryable(Exception):
    """A transient failure: `error` is raised when no try is left; `wait` is the server's ask."""

    def __init__(self, error: DownloadError, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


@dataclass
class RetryPolicy:
    """Bounded exponential backoff with full jitter that honours server-requested waits."""

    max_tries: int = 5
    max_seconds: float = 120.0
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_wait: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    wall_clock: Callable[[], float] = field(default=time.time, repr=False)
    jitter: Callable[[], float] = field(default=random.random, repr=False)

    def single_try(self) -> RetryPolicy:
        """The same policy with one try: for a request that has a fallback of its own."""
        return dataclasses.replace(self, max_tries=1)

    def __post_init__(self) -> None:
        if self.max_tries < 1:
            raise ValueError("max_tries must be at least 1")
        for name in ("max_seconds", "base_delay", "max_delay", "max_wait"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None,
                         **overrides: Any) -> RetryPolicy:
        """The default policy with limits from BUILDER_RETRY_* (bad values are a `ValueError`)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, (variable, kind) in _ENV.items():
            raw = env.get(variable, "").strip()
            if raw:
                try:
                    values[name] = kind(raw)
                except ValueError:
                    raise ValueError(f"{variable}={raw!r} is not a number") from None
        values.update(overrides)
        return cls(**values)

    def backoff(self, failures: int) -> float:
        """The delay after the `failures`-th failure: uniform in [0, min(cap, base * 2^(n-1))]."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(failures - 1, 0)))
        return self.jitter() * ceiling

    def run(self, operation: Callable[[], T]) -> T:
        """Call `operation` until it returns, raises a non-`Retryable` error or the budget ends."""
        started = self.clock()
        failures = 0
        while True:
            try:
                return operation()
            except Retryable as failure:
                failures += 1
                elapsed = self.clock() - started
                if failures >= self.max_tries:
                    raise _gave_up(failure.error, failures, elapsed) from None
                if failure.wait is not None:
                    if failure.wait > self.max_wait:
                        raise _too_long(failure.error, failure.wait, self.max_wait) from None
                    # A little jitter spreads the containers that all hit the same reset time.
                    delay = failure.wait + self.jitter() * min(self.base_delay, 1.0)
                else:
                    delay = self.backoff(failures)
                if elapsed + delay > self.max_seconds:
                    raise _gave_up(failure.error, failures, elapsed) from None
                _within_deadline(delay, failure)
                self.sleep(delay)


def _within_deadline(delay: float, failure: Retryable) -> None:
    """A wait that would end after the download's overall deadline fails now, saying why."""
    from builder.code.deadline import current

    active = current()
    if active is not None:
        reason = "a wait the server asked for" if failure.wait is not None else "a retry"
        active.allow_wait(delay, f"{failure.error} ({reason})")


def _gave_up(error: DownloadError, tries: int, elapsed: float) -> DownloadError:
    suffix = f" (gave up after {tries} {'try' if tries == 1 else 'tries'} in {elapsed:.1f} s)"
    return _with_message(error, str(error) + suffix)


def _too_long(error: DownloadError, wait: float, cap: float) -> DownloadError:
    suffix = (f" (the server asks to wait {wait:.0f} s, more than the {cap:.0f} s builder waits; "
              f"try again later or raise BUILDER_RETRY_MAX_WAIT)")
    return _with_message(error, str(error) + suffix)


def _with_message(error: DownloadError, message: str) -> DownloadError:
    try:
        clone = type(error)(message)
    except TypeError:
        clone = DownloadError(message)
    clone.__cause__ = error.__cause__
    return clone


# ---------------------------------------------------------------------------- HTTP answers


def lower_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(key).lower(): str(value) for key, value in (headers or {}).items()}


def server_wait(headers: Mapping[str, Any] | None, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait, from Retry-After or an exhausted rate limit."""
    found = lower_headers(headers)
    now = time.time() if now is None else now
    retry_after = found.get("retry-after", "").strip()
    if retry_after:
        if retry_after.isdigit():
            return float(retry_after)
        try:
            when = email.utils.parsedate_to_datetime(retry_after)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return max(when.timestamp() - now, 0.0)
    remaining = found.get("x-ratelimit-remaining", found.get("ratelimit-remaining", "")).strip()
    reset = found.get("x-ratelimit-reset", found.get("ratelimit-reset", "")).strip()
    if remaining == "0" and reset.isdigit():
        value = int(reset)
        # An epoch time (GitHub, GitLab); small values are seconds from now (IETF drafts).
        return max(value - now, 0.0) + 1.0 if value > 10**9 else float(value)
    return None


def is_rate_limited(status: int, headers: Mapping[str, Any] | None, message: str = "") -> bool:
    """429, or a 403 that a rate limit (primary or secondary) caused."""
    if status == 429:
        return True
    if status != 403:
        return False
    found = lower_headers(headers)
    if found.get("x-ratelimit-remaining") == "0" or "retry-after" in found:
        return True
    text = message.lower()
    return any(phrase in text for phrase in _RATE_LIMIT_MESSAGES)


def is_transient_status(status: int) -> bool:
    return status >= 500 or status in (408, 425)


def check_status(status: int, headers: Mapping[str, Any] | None, message: str, *,
                 what: str, final: Callable[[int, str], DownloadError],
                 now: float | None = None) -> None:
    """Raise for a failed HTTP answer: `Retryable` when it is worth another try, else
    `final(status, message)` (401, 403 and 404 get a message that says what to check)."""
    if status < 400:
        return
    if is_rate_limited(status, headers, message):
        wait = server_wait(headers, now)
        raise Retryable(RateLimitError(f"{what}: rate limited by the server (HTTP {status})"),
                        wait)
    if is_transient_status(status):
        raise Retryable(DownloadError(f"{what}: the server answered HTTP {status}"),
                        server_wait(headers, now))
    raise final(status, message)
