"""The bounded retry policy (builder.code.retry): no network, no real sleeping."""

from __future__ import annotations

import email.utils
from collections.abc import Callable

import pytest

from builder.code.retry import (
    Retryable,
    RetryPolicy,
    check_status,
    is_rate_limited,
    server_wait,
)
from builder.errors import (
    AuthenticationError,
    DownloadError,
    NotFoundError,
    RateLimitError,
)

NOW = 1_700_000_000.0


class FakeTime:
    """A monotonic clock that advances only when the policy sleeps (plus a per-call cost)."""

    def __init__(self, cost: float = 0.0) -> None:
        self.now = 0.0
        self.cost = cost
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def policy(fake: FakeTime, jitter: float = 1.0, **limits: float) -> RetryPolicy:
    return RetryPolicy(sleep=fake.sleep, clock=fake.clock, wall_clock=lambda: NOW,
                       jitter=lambda: jitter, **limits)  # type: ignore[arg-type]


def failing(times: int, error: DownloadError | None = None, wait: float | None = None,
            cost: FakeTime | None = None) -> Callable[[], str]:
    calls = {"n": 0}

    def operation() -> str:
        calls["n"] += 1
        if cost is not None:
            cost.now += cost.cost
        if calls["n"] <= times:
            raise Retryable(error or DownloadError("boom"), wait)
        return f"ok after {calls['n']}"

    return operation


def test_success_needs_no_sleep() -> None:
    fake = FakeTime()
    assert policy(fake).run(lambda: "fine") == "fine"
    assert fake.sleeps == []


def test_backoff_is_exponential_capped_and_jittered() -> None:
    fake = FakeTime()
    p = policy(fake, jitter=1.0, base_delay=0.5, max_delay=3.0)
    assert [p.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    half = policy(fake, jitter=0.5, base_delay=0.5, max_delay=3.0)
    assert half.backoff(3) == 1.0
    zero = policy(fake, jitter=0.0)
    assert zero.backoff(4) == 0.0  # full jitter reaches zero


def test_retries_then_succeeds() -> None:
    fake = FakeTime()
    p = policy(fake, base_delay=0.5, max_tries=5)
    assert p.run(failing(3)) == "ok after 4"
    assert fake.sleeps == [0.5, 1.0, 2.0]


def test_gives_up_after_max_tries_keeping_the_error_class() -> None:
    fake = FakeTime()
    p = policy(fake, max_tries=3)
    with pytest.raises(RateLimitError, match=r"limited \(gave up after 3 tries"):
        p.run(failing(10, RateLimitError("limited")))
    assert len(fake.sleeps) == 2


def test_total_time_budget_is_bounded() -> None:
    fake = FakeTime(cost=4.0)  # each try takes 4 s
    p = policy(fake, max_tries=100, max_seconds=10.0, base_delay=1.0, max_delay=1.0)
    with pytest.raises(DownloadError, match=r"gave up after 3 tries in 14\.0 s"):
        p.run(failing(100, cost=fake))
    # No sleep starts that would end beyond the budget; only the last try can overrun it.
    assert fake.sleeps == [1.0, 1.0]
    assert fake.now <= 10.0 + 4.0


def test_server_wait_is_honoured() -> None:
    fake = FakeTime()
    p = policy(fake, jitter=0.0, max_wait=30.0)
    assert p.run(failing(1, wait=7.0)) == "ok after 2"
    assert fake.sleeps == [7.0]


def test_server_wait_gets_a_little_jitter() -> None:
    fake = FakeTime()
    p = policy(fake, jitter=1.0, base_delay=0.25, max_wait=30.0)
    p.run(failing(1, wait=2.0))
    assert fake.sleeps == [2.25]


def test_server_wait_above_the_cap_fails_at_once() -> None:
    fake = FakeTime()
    p = policy(fake, max_wait=5.0)
    with pytest.raises(RateLimitError, match="asks to wait 120 s, more than the 5 s"):
        p.run(failing(1, RateLimitError("limited"), wait=120.0))
    assert fake.sleeps == []


def test_server_wait_beyond_total_budget_gives_up() -> None:
    fake = FakeTime()
    p = policy(fake, max_wait=50.0, max_seconds=10.0)
    with pytest.raises(DownloadError, match="gave up after 1 try"):
        p.run(failing(1, wait=20.0))
    assert fake.sleeps == []


def test_other_errors_propagate_without_retry() -> None:
    fake = FakeTime()
    calls = []

    def operation() -> None:
        calls.append(1)
        raise AuthenticationError("bad token")

    with pytest.raises(AuthenticationError, match="bad token"):
        policy(fake).run(operation)
    assert calls == [1] and fake.sleeps == []


def test_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"BUILDER_RETRY_MAX_TRIES": "7", "BUILDER_RETRY_MAX_SECONDS": "2.5",
           "BUILDER_RETRY_BASE_DELAY": "0.01", "BUILDER_RETRY_MAX_DELAY": "0.1",
           "BUILDER_RETRY_MAX_WAIT": "3"}
    p = RetryPolicy.from_environment(env)
    assert (p.max_tries, p.max_seconds, p.base_delay, p.max_delay, p.max_wait) == \
        (7, 2.5, 0.01, 0.1, 3.0)
    assert RetryPolicy.from_environment({}).max_tries == RetryPolicy().max_tries
    with pytest.raises(ValueError, match="BUILDER_RETRY_MAX_TRIES"):
        RetryPolicy.from_environment({"BUILDER_RETRY_MAX_TRIES": "many"})
    with pytest.raises(ValueError):
        RetryPolicy(max_tries=0)


# ---------------------------------------------------------------------------- HTTP answers


def test_server_wait_parsing() -> None:
    assert server_wait({"Retry-After": "12"}, NOW) == 12.0
    date = email.utils.formatdate(NOW + 30, usegmt=True)
    assert server_wait({"retry-after": date}, NOW) == pytest.approx(30.0, abs=1.0)
    github = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 40)}
    assert server_wait(github, NOW) == 41.0  # one second of margin
    gitlab = {"RateLimit-Remaining": "0", "RateLimit-Reset": str(int(NOW) + 5)}
    assert server_wait(gitlab, NOW) == 6.0
    assert server_wait({"X-RateLimit-Remaining": "10", "X-RateLimit-Reset": "1"}, NOW) is None
    assert server_wait({}, NOW) is None
    past = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) - 100)}
    assert server_wait(past, NOW) == 1.0


def test_rate_limit_detection() -> None:
    assert is_rate_limited(429, {})
    assert is_rate_limited(403, {"X-RateLimit-Remaining": "0"})
    assert is_rate_limited(403, {}, "You have exceeded a secondary rate limit. Please wait.")
    assert is_rate_limited(403, {"Retry-After": "3"})
    assert not is_rate_limited(403, {"X-RateLimit-Remaining": "4999"}, "Resource not accessible")
    assert not is_rate_limited(404, {"X-RateLimit-Remaining": "0"})


def _final(status: int, message: str) -> DownloadError:
    return NotFoundError(f"final {status}: {message}") if status == 404 else \
        AuthenticationError(f"final {status}: {message}")


def test_check_status_classifies() -> None:
    check_status(200, {}, "", what="x", final=_final)
    with pytest.raises(Retryable) as caught:
        check_status(503, {"Retry-After": "2"}, "", what="x", final=_final)
    assert caught.value.wait == 2.0 and "HTTP 503" in str(caught.value.error)
    with pytest.raises(Retryable) as caught:
        check_status(429, {"Retry-After": "1"}, "", what="x", final=_final)
    assert isinstance(caught.value.error, RateLimitError) and caught.value.wait == 1.0
    reset = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 9)}
    with pytest.raises(Retryable) as caught:
        check_status(403, reset, "API rate limit exceeded", what="x", final=_final, now=NOW)
    assert caught.value.wait == 10.0
    with pytest.raises(AuthenticationError, match="final 401"):
        check_status(401, {}, "Bad credentials", what="x", final=_final)
    with pytest.raises(AuthenticationError, match="final 403"):
        check_status(403, {"X-RateLimit-Remaining": "100"}, "Forbidden", what="x", final=_final)
    with pytest.raises(NotFoundError, match="final 404"):
        check_status(404, {}, "Not Found", what="x", final=_final)
