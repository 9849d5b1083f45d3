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
    limit_reset,
    named_wait,
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


def policy(fake: FakeTime, jitter: float = 1.0, announced: list[str] | None = None,
           **limits: float) -> RetryPolicy:
    said = announced if announced is not None else []
    return RetryPolicy(sleep=fake.sleep, clock=fake.clock, wall_clock=lambda: NOW + fake.now,
                       jitter=lambda: jitter, announce=said.append,
                       **limits)  # type: ignore[arg-type]


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
        check_status(403, reset, "API rate limit exceeded", what="x", final=_final)
    assert caught.value.until == NOW + 10 and caught.value.requested(NOW) == 10.0
    with pytest.raises(Retryable) as caught:
        check_status(429, {}, "", what="x", final=_final)
    assert caught.value.requested(NOW) is None  # nothing named: backoff
    with pytest.raises(AuthenticationError, match="final 401"):
        check_status(401, {}, "Bad credentials", what="x", final=_final)
    with pytest.raises(AuthenticationError, match="final 403"):
        check_status(403, {"X-RateLimit-Remaining": "100"}, "Forbidden", what="x", final=_final)
    with pytest.raises(NotFoundError, match="final 404"):
        check_status(404, {}, "Not Found", what="x", final=_final)


# ---------------------------------------------------------------------------- rate-limit waits


def test_a_window_limit_waits_for_the_next_window_and_says_why() -> None:
    fake = FakeTime()
    fake.now = 57.0  # NOW is 20 s into a minute: the wall clock reads 17 s into one
    said: list[str] = []
    p = policy(fake, jitter=0.5, announced=said)
    limit = RateLimitError("archive: rate limited (HTTP 429)")
    calls = {"n": 0}

    def operation() -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Retryable(limit, window=60.0, spread=3.0, reason="5 a minute")
        return "ok"

    assert p.run(operation) == "ok"
    assert fake.sleeps == [43.0 + 1.5]
    assert said == ["archive: rate limited (HTTP 429); 5 a minute: waiting 44 s before try 2 of 5"]


def test_a_limit_that_names_no_wait_waits_at_least_the_floor_and_doubles() -> None:
    fake = FakeTime()
    said: list[str] = []
    p = policy(fake, jitter=0.0, announced=said, max_seconds=300.0, max_tries=10)
    limit = RateLimitError("limited")

    def operation() -> str:
        raise Retryable(limit, at_least=60.0, reason="secondary", advice="fewer at once")

    with pytest.raises(RateLimitError) as caught:
        p.run(operation)
    assert fake.sleeps == [60.0, 120.0]  # then 240 s would end after the 300 s budget
    assert str(caught.value) == (
        "limited; secondary (gave up after 3 tries in 180.0 s: waiting 240 s more would pass "
        "the 300 s retry budget (BUILDER_RETRY_MAX_SECONDS)); fewer at once")
    assert len(said) == 2 and said[0].endswith("waiting 60 s before try 2 of 10")


def test_short_backoffs_are_not_announced_and_long_ones_are() -> None:
    fake = FakeTime()
    said: list[str] = []
    policy(fake, announced=said, base_delay=0.5).run(failing(2))
    assert said == []
    policy(fake, announced=said, base_delay=8.0, max_delay=8.0).run(failing(1))
    assert said == ["boom: waiting 8.0 s before try 2 of 5"]


def test_the_deadline_bounds_every_wait() -> None:
    fake = FakeTime()
    p = policy(fake, jitter=0.0, max_wait=100.0).within(30.0)
    with pytest.raises(RateLimitError, match=r"waiting 50 s more would pass the download's "
                                             r"deadline"):
        p.run(failing(5, RateLimitError("limited"), wait=50.0))
    assert fake.sleeps == []
    sooner = p.within(1000.0)
    assert sooner.deadline == p.deadline  # never extended
    assert policy(fake, jitter=0.0).within(30.0).run(failing(1, wait=20.0)) == "ok after 2"


def test_a_named_wait_beyond_the_cap_says_why_and_what_to_do() -> None:
    fake = FakeTime()
    p = policy(fake, max_wait=60.0)
    error = RateLimitError("limited")
    with pytest.raises(RateLimitError) as caught:
        p.run(lambda: (_ for _ in ()).throw(Retryable(
            error, until=NOW + 3000, reason="used up until 12:50:00 UTC", advice="use a token")))
    assert str(caught.value) == (
        "limited; used up until 12:50:00 UTC (the server asks to wait 3000 s, more than the "
        "60 s builder waits; try again later or raise BUILDER_RETRY_MAX_WAIT); use a token")


def test_named_waits_from_headers() -> None:
    error = DownloadError("x")
    assert named_wait(error, {}) is None
    assert named_wait(error, {"Retry-After": "7"}).requested(NOW) == 7.0  # type: ignore[union-attr]
    date = email.utils.formatdate(NOW + 30, usegmt=True)
    assert named_wait(error, {"Retry-After": date}).requested(NOW) == 30.0  # type: ignore[union-attr]
    reset = {"RateLimit-Remaining": "0", "RateLimit-Reset": str(int(NOW) + 5)}
    assert limit_reset(reset) == NOW + 6
    assert named_wait(error, reset).requested(NOW) == 6.0  # type: ignore[union-attr]
    assert limit_reset({"RateLimit-Remaining": "3", "RateLimit-Reset": str(int(NOW))}) is None
