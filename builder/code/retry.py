"""One bounded retry policy for talking to code servers.

Transient failures (a connection reset, a 5xx answer, a body cut off mid-way) are retried with
exponential backoff and full jitter, bounded by a number of tries and a total time. Rate
limits are waited out the way each service asks, never with fast retries:

- a wait the server names (`Retry-After`, or a reset time with no requests remaining) is
  honoured up to a cap; asking for more than the cap fails at once, saying when it resets;
- a limit counted in fixed clock windows that names no wait (gitlab.com's archive limit)
  waits until the next window starts;
- a limit that names nothing (GitHub's secondary limits) waits at least a fixed time, doubled
  on each repeat.

Every rate-limit wait, and any wait of five seconds or more, is announced (by default on
stderr) with what is happening and why. No wait starts that would end after the policy's
budget or its `deadline` (the download's overall bound): the operation fails instead, saying so.

Operations signal a transient failure by raising `Retryable(error, ...)`: `error` is the
one-line `DownloadError` raised when the budget is spent. Everything else propagates at once.
Sleeping, the clocks, the jitter and the announcements are injectable, so unit tests never
sleep; the limits can be set from the environment:

- BUILDER_RETRY_MAX_TRIES    tries in all, the first included (default 5)
- BUILDER_RETRY_MAX_SECONDS  total time budget for the operation (default 300)
- BUILDER_RETRY_BASE_DELAY   first backoff ceiling in seconds (default 0.5)
- BUILDER_RETRY_MAX_DELAY    ceiling of one backoff (default 20)
- BUILDER_RETRY_MAX_WAIT     longest server-requested wait honoured (default 60)
"""

from __future__ import annotations

import dataclasses
import email.utils
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

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
#: Waits at least this long are announced even when no rate limit caused them.
ANNOUNCE_AFTER = 5.0


class Retryable(Exception):
    """A transient failure. `error` is raised when no try is left. How long to wait:

    - `wait`: seconds the server asked for; `until`: a wall-clock time (epoch seconds) it named;
    - `window`: the limit counts fixed windows of this many seconds of wall-clock time (epoch
      aligned): wait for the next one;
    - `at_least`: nothing was named, but the service asks for at least this long, doubled on
      each repeat;
    - none of these: exponential backoff.

    `reason` says why, for the announcement and the final error; `advice` how to avoid it;
    `spread` is the jitter added to a named wait (default: the policy's, at most 1 s).
    """

    def __init__(self, error: DownloadError, wait: float | None = None, *,
                 until: float | None = None, window: float | None = None,
                 at_least: float | None = None, reason: str = "", advice: str = "",
                 spread: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait
        self.until = until
        self.window = window
        self.at_least = at_least
        self.reason = reason
        self.advice = advice
        self.spread = spread

    def requested(self, wall_now: float) -> float | None:
        """The wait the server asked for, in seconds from `wall_now`; None if it named none."""
        if self.wait is not None:
            return max(self.wait, 0.0)
        if self.until is not None:
            return max(self.until - wall_now, 0.0)
        if self.window is not None and self.window > 0:
            return self.window - (wall_now % self.window)
        return None


def announce_on_stderr(text: str) -> None:
    """The default announcement: one redacted `builder:` line on stderr."""
    from builder.state.secrets import redact

    sys.stderr.write(redact(f"builder: {text}") + "\n")
    sys.stderr.flush()


@dataclass
class RetryPolicy:
    """Bounded exponential backoff with full jitter that honours server-requested waits."""

    max_tries: int = 5
    max_seconds: float = 300.0
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_wait: float = 60.0
    #: The operation's outer bound, a time on `clock` (None: only `max_seconds` bounds it).
    deadline: float | None = None
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    wall_clock: Callable[[], float] = field(default=time.time, repr=False)
    jitter: Callable[[], float] = field(default=random.random, repr=False)
    announce: Callable[[str], None] = field(default=announce_on_stderr, repr=False)

    def single_try(self) -> RetryPolicy:
        """The same policy with one try: for a request that has a fallback of its own."""
        return dataclasses.replace(self, max_tries=1)

    def within(self, seconds: float) -> RetryPolicy:
        """The same policy that never waits past `seconds` from now (or its own deadline)."""
        end = self.clock() + max(seconds, 0.0)
        return dataclasses.replace(
            self, deadline=end if self.deadline is None else min(self.deadline, end))

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
        floors = 0
        while True:
            try:
                return operation()
            except Retryable as failure:
                failures += 1
                elapsed = self.clock() - started
                if failures >= self.max_tries:
                    raise _gave_up(failure, failures, elapsed) from None
                asked = failure.requested(self.wall_clock())
                spread = (failure.spread if failure.spread is not None
                          else min(self.base_delay, 1.0))
                if asked is not None:
                    if asked > self.max_wait:
                        raise _too_long(failure, asked, self.max_wait) from None
                    # Jitter spreads the containers that all wait for the same moment.
                    delay = asked + self.jitter() * spread
                elif failure.at_least is not None:
                    floors += 1
                    delay = failure.at_least * 2 ** (floors - 1) + self.jitter() * spread
                else:
                    delay = self.backoff(failures)
                budget_left = self.max_seconds - elapsed
                deadline_left = _deadline_left(self.deadline, self.clock())
                if delay > budget_left or (deadline_left is not None and delay > deadline_left):
                    by_deadline = deadline_left is not None and deadline_left < budget_left
                    raise _gave_up(failure, failures, elapsed, next_wait=delay,
                                   limit=(_DEADLINE_LIMIT if by_deadline else
                                          f"the {self.max_seconds:.0f} s retry budget "
                                          "(BUILDER_RETRY_MAX_SECONDS)")) from None
                if failure.reason or delay >= ANNOUNCE_AFTER:
                    self.announce(_announcement(failure, delay, failures + 1, self.max_tries))
                self.sleep(delay)


_DEADLINE_LIMIT = "the download's deadline (BUILDER_DOWNLOAD_DEADLINE)"


def _deadline_left(deadline: float | None, now: float) -> float | None:
    """Seconds to the nearer of this policy's deadline and the running download's
    (`builder.code.deadline`, which bounds every download)."""
    from builder.code.deadline import current

    left = None if deadline is None else deadline - now
    active = current()
    if active is not None:
        left = active.remaining() if left is None else min(left, active.remaining())
    return left


def _announcement(failure: Retryable, delay: float, next_try: int, tries: int) -> str:
    why = f"; {failure.reason}" if failure.reason else ""
    return (f"{failure.error}{why}: waiting {_seconds(delay)} before try {next_try} of "
            f"{tries}")


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


def _gave_up(failure: Retryable, tries: int, elapsed: float, *, next_wait: float | None = None,
             limit: str = "") -> DownloadError:
    why = f"; {failure.reason}" if failure.reason else ""
    suffix = f" (gave up after {tries} {'try' if tries == 1 else 'tries'} in {elapsed:.1f} s"
    if next_wait is not None:
        suffix += f": waiting {_seconds(next_wait)} more would pass {limit}"
    advice = f"; {failure.advice}" if failure.advice else ""
    return _with_message(failure.error, f"{failure.error}{why}{suffix}){advice}")


def _too_long(failure: Retryable, wait: float, cap: float) -> DownloadError:
    why = f"; {failure.reason}" if failure.reason else ""
    suffix = (f" (the server asks to wait {wait:.0f} s, more than the {cap:.0f} s builder waits; "
              f"try again later or raise BUILDER_RETRY_MAX_WAIT)")
    advice = f"; {failure.advice}" if failure.advice else ""
    return _with_message(failure.error, f"{failure.error}{why}{suffix}{advice}")


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


def retry_after(headers: Mapping[str, Any] | None) -> tuple[float | None, float | None]:
    """`Retry-After` as (seconds, None) or, for an HTTP date, (None, epoch seconds)."""
    value = lower_headers(headers).get("retry-after", "").strip()
    if not value:
        return None, None
    if value.isdigit():
        return float(value), None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None, None
    return None, when.timestamp()


def limit_reset(headers: Mapping[str, Any] | None) -> float | None:
    """The epoch time an exhausted rate limit resets (remaining 0 and a reset time), plus one
    second of margin; None when the limit is not exhausted or names no time."""
    found = lower_headers(headers)
    remaining = found.get("x-ratelimit-remaining", found.get("ratelimit-remaining", "")).strip()
    reset = found.get("x-ratelimit-reset", found.get("ratelimit-reset", "")).strip()
    if remaining == "0" and reset.isdigit() and int(reset) > 10**9:
        return int(reset) + 1.0
    return None


def server_wait(headers: Mapping[str, Any] | None, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait, from Retry-After or an exhausted rate limit."""
    now = time.time() if now is None else now
    seconds, when = retry_after(headers)
    if seconds is not None:
        return seconds
    if when is not None:
        return max(when - now, 0.0)
    found = lower_headers(headers)
    remaining = found.get("x-ratelimit-remaining", found.get("ratelimit-remaining", "")).strip()
    reset = found.get("x-ratelimit-reset", found.get("ratelimit-reset", "")).strip()
    if remaining == "0" and reset.isdigit():
        value = int(reset)
        # An epoch time (GitHub, GitLab); small values are seconds from now (IETF drafts).
        return max(value - now, 0.0) + 1.0 if value > 10**9 else float(value)
    return None


def named_wait(error: DownloadError, headers: Mapping[str, Any] | None, *,
               reason: str = "", advice: str = "") -> Retryable | None:
    """A Retryable for the wait the answer names (Retry-After, else an exhausted limit's
    reset), or None when it names none."""
    seconds, when = retry_after(headers)
    if seconds is None and when is None:
        when = limit_reset(headers)
        if when is None:
            wait = server_wait(headers)  # a small reset: seconds from now
            if wait is None:
                return None
            seconds = wait
    return Retryable(error, seconds, until=when, reason=reason, advice=advice)


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


class RateLimited(Protocol):
    """Turns a rate-limited answer into the Retryable that waits as the service asks."""

    def __call__(self, status: int, headers: Mapping[str, Any] | None, message: str, *,
                 what: str) -> Retryable: ...


def generic_rate_limit(status: int, headers: Mapping[str, Any] | None, message: str, *,
                       what: str) -> Retryable:
    """The wait the answer names, else exponential backoff."""
    error = RateLimitError(f"{what}: rate limited by the server (HTTP {status})")
    return named_wait(error, headers) or Retryable(error)


def check_status(status: int, headers: Mapping[str, Any] | None, message: str, *,
                 what: str, final: Callable[[int, str], DownloadError],
                 rate_limited: RateLimited = generic_rate_limit) -> None:
    """Raise for a failed HTTP answer: `Retryable` when it is worth another try (a rate limit
    as `rate_limited` says), else `final(status, message)` (401, 403 and 404 get a message
    that says what to check)."""
    if status < 400:
        return
    if is_rate_limited(status, headers, message):
        raise rate_limited(status, headers, message, what=what)
    if is_transient_status(status):
        error = DownloadError(f"{what}: the server answered HTTP {status}")
        raise named_wait(error, headers) or Retryable(error)
    raise final(status, message)
