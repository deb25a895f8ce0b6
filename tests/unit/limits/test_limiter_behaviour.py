"""The limiter's contract besides the window property: settle/release, 429, fail-fast,
share, registry, cancellation. All on virtual time."""

from __future__ import annotations

import asyncio
import logging

import pytest

from airflow_provider_clova.client.errors import ClovaStudioBudgetError, ClovaStudioConfigError
from airflow_provider_clova.client.limiter import (
    RateLimiter,
    clear_shared_limiters,
    default_margin,
    shared_limiter,
)
from airflow_provider_clova.client.limits import Budget

from ._virtual_time import AsyncVirtualTime, ThreadVirtualTime


class StepClock:
    """A fake clock whose sleep advances it: enough for one caller at a time."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def limiter_on(clock: StepClock, budget: Budget, **kwargs: object) -> RateLimiter:
    return RateLimiter(budget, clock=clock, sleep=clock.sleep, asleep=clock.asleep, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ settle / release


def test_settle_replaces_the_estimate_in_the_window() -> None:
    clock = StepClock()
    limiter = limiter_on(clock, Budget(qpm=100, tpm=10_000))
    reservation = limiter.acquire(6_000)
    assert limiter.snapshot()["used_tpm"] == 6_000
    reservation.settle(2_500)
    assert reservation.cost == 2_500
    assert limiter.snapshot()["used_tpm"] == 2_500
    # 7,000 more fits next to the real 2,500 (it would not next to the 6,000 estimate);
    # the wait is only the token pacer's, well under the 61 s the estimate would impose.
    limiter.acquire(7_000)
    assert clock.now < 20


def test_release_removes_the_request_from_the_window() -> None:
    clock = StepClock()
    limiter = limiter_on(clock, Budget(qpm=1, tpm=10_000))
    first = limiter.acquire(100)
    first.release()
    first.release()  # idempotent
    first.settle(50)  # ignored once released
    assert first.released and first.cost == 0
    snapshot = limiter.snapshot()
    assert (snapshot["used_qpm"], snapshot["used_tpm"]) == (0, 0)
    limiter.acquire(100)  # the single QPM slot is free again at once
    assert clock.now == 0.0


def test_a_second_request_waits_for_the_window_when_not_released() -> None:
    clock = StepClock()
    limiter = limiter_on(clock, Budget(qpm=1, tpm=10_000))
    limiter.acquire(100)
    second = limiter.acquire(100)
    assert second.granted_at == pytest.approx(60 + default_margin(60))


def test_settle_rejects_nonsense() -> None:
    limiter = limiter_on(StepClock(), Budget(qpm=10, tpm=1_000))
    reservation = limiter.acquire(10)
    with pytest.raises(ValueError):
        reservation.settle(-1)
    with pytest.raises(ValueError):
        limiter.acquire(-5)


# ------------------------------------------------------------------ fail fast


def test_a_request_that_can_never_fit_fails_fast() -> None:
    clock = StepClock()
    limiter = limiter_on(clock, Budget(qpm=60, tpm=10_000), name="HCX-005/test", share=0.5)
    with pytest.raises(ClovaStudioBudgetError) as caught:
        limiter.acquire(5_001)
    text = str(caught.value)
    for needed in ("HCX-005/test", "5001", "5000", "10000 TPM", "maxTokens", "extra.limits"):
        assert needed in text, (needed, text)
    assert clock.slept == []  # failed without waiting
    assert limiter.snapshot()["waiting"] == 0
    limiter.acquire(5_000)  # the largest request that fits is fine


async def test_fail_fast_async_too() -> None:
    clock = StepClock()
    limiter = limiter_on(clock, Budget(qpm=60, tpm=1_000))
    with pytest.raises(ClovaStudioBudgetError):
        await limiter.aacquire(1_001)
    assert clock.slept == []


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"share": 0.0}, "share"),
        ({"share": 1.5}, "share"),
        ({"share": 0.01}, "less than one request"),
        ({"window_seconds": 0}, "window_seconds"),
        ({"margin_seconds": 60.0}, "margin_seconds"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, float], fragment: str) -> None:
    with pytest.raises(ClovaStudioConfigError, match=fragment):
        RateLimiter(Budget(qpm=60, tpm=1_000), **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ share


def test_share_scales_the_budget() -> None:
    clock = StepClock()
    limiter = limiter_on(clock, Budget(qpm=60, tpm=60_000), share=0.25)
    assert limiter.effective_budget == Budget(qpm=15, tpm=15_000)
    times = [limiter.acquire(100).granted_at for _ in range(31)]
    # 15 requests per window: the 16th waits for the first to leave it
    assert times[15] >= times[0] + limiter.span_seconds
    with pytest.raises(ClovaStudioBudgetError):
        limiter.acquire(15_001)


# ------------------------------------------------------------------ 429


async def test_a_429_pauses_every_caller_and_slows_them_down() -> None:
    vt = AsyncVirtualTime()
    limiter = RateLimiter(Budget(qpm=60, tpm=1_000_000), clock=vt.clock, asleep=vt.sleep)
    grants: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    reported_at: list[float] = []

    async def caller(name: str) -> None:
        while vt.now < 200:
            reservation = await limiter.aacquire(10)
            grants[name].append(reservation.granted_at)
            await vt.sleep(0.5)  # response latency
            if name == "a" and len(grants["a"]) == 5:
                reported_at.append(vt.now)
                limiter.on_rate_limited(retry_after=10)
                reservation.release()

    await vt.run(*(caller(name) for name in grants))
    [t429] = reported_at
    everyone = sorted(at for times in grants.values() for at in times)
    # no caller got a grant during the pause ...
    assert not [at for at in everyone if t429 < at < t429 + 10]
    # ... every caller was held, not only the one that failed
    for times in grants.values():
        assert any(at >= t429 + 10 for at in times)
    # ... and right after the pause the pace is about half the budget's, then recovers
    spacing = limiter.span_seconds / 60
    after = [at for at in everyone if at >= t429 + 10]
    assert after[1] - after[0] == pytest.approx(2 * spacing, rel=0.05)
    late = [at for at in everyone if at >= t429 + 10 + 61]
    assert late[2] - late[1] == pytest.approx(spacing, rel=0.01)
    assert limiter.snapshot()["rate_factor"] == 1.0
    assert limiter.snapshot()["rate_limited_total"] == 1


def test_429_without_retry_after_backs_off_exponentially_and_dedupes_episodes() -> None:
    clock = StepClock()
    limiter = limiter_on(clock, Budget(qpm=600, tpm=1_000_000))
    reservation = limiter.acquire(1)
    limiter.on_rate_limited()
    snapshot = limiter.snapshot()
    assert snapshot["paused_for_seconds"] == pytest.approx(1.0)
    assert snapshot["rate_factor"] == pytest.approx(0.5)
    # late reports of the same episode (while paused, or for a request committed before it)
    limiter.on_rate_limited()
    clock.now += 2
    limiter.on_rate_limited(reservation=reservation)
    assert limiter.snapshot()["rate_factor"] > 0.5 - 1e-9
    assert limiter.snapshot()["rate_limited_total"] == 1
    # a new episode before recovery: longer pause, slower rate
    limiter.on_rate_limited()
    snapshot = limiter.snapshot()
    assert snapshot["paused_for_seconds"] == pytest.approx(2.0)
    assert snapshot["rate_factor"] < 0.5
    assert snapshot["rate_limited_total"] == 2


def test_429_never_slows_below_the_floor_nor_strands_a_big_request() -> None:
    clock = StepClock()
    limiter = limiter_on(clock, Budget(qpm=600, tpm=10_000))
    for _ in range(10):
        limiter.on_rate_limited()
        clock.now = limiter.snapshot()["paused_for_seconds"] + clock.now
    assert limiter.snapshot()["rate_factor"] == pytest.approx(0.1)
    # the real budget admits 10,000 tokens; a slowdown delays it but cannot refuse it
    reservation = limiter.acquire(10_000)
    assert reservation.cost == 10_000


def test_retry_after_is_honoured_and_bounded(caplog: pytest.LogCaptureFixture) -> None:
    clock = StepClock()
    limiter = limiter_on(clock, Budget(qpm=60, tpm=60_000), name="HCX-005/test")
    with caplog.at_level(logging.WARNING):
        limiter.on_rate_limited(retry_after=7.5)
    assert limiter.snapshot()["paused_for_seconds"] == pytest.approx(7.5)
    assert "HCX-005/test" in caplog.text and "429" in caplog.text
    assert limiter.acquire(1).granted_at == pytest.approx(7.5)
    clock.now += 200
    limiter.on_rate_limited(retry_after=10_000)
    assert limiter.snapshot()["paused_for_seconds"] == pytest.approx(60)  # one window at most


def test_threads_share_the_pause() -> None:
    vt = ThreadVirtualTime(threads=3)
    limiter = RateLimiter(Budget(qpm=600, tpm=1_000_000), clock=vt.clock, sleep=vt.sleep)
    limiter.on_rate_limited(retry_after=30)

    def caller() -> float:
        return limiter.acquire(1).granted_at

    times = vt.run(caller, caller, caller)
    assert min(times) >= 30


# ------------------------------------------------------------------ fairness, cancellation


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    vt = AsyncVirtualTime()
    limiter = RateLimiter(Budget(qpm=1, tpm=1_000), clock=vt.clock, asleep=vt.sleep)
    await limiter.aacquire(1)  # the window's single request
    tasks: dict[str, asyncio.Task[object]] = {}

    async def waiting() -> str:
        tasks["waiter"] = asyncio.current_task()  # type: ignore[assignment]
        try:
            await limiter.aacquire(1)
        except asyncio.CancelledError:
            return "cancelled"
        return "granted"

    async def cancel_later() -> None:
        await vt.sleep(5)
        assert limiter.snapshot()["waiting"] == 1
        tasks["waiter"].cancel()

    async def next_one() -> float:
        await vt.sleep(6)
        assert limiter.snapshot()["waiting"] == 0
        return (await limiter.aacquire(1)).granted_at

    outcome, _, granted = await vt.run(waiting(), cancel_later(), next_one())
    assert outcome == "cancelled"
    assert granted == pytest.approx(limiter.span_seconds)
    assert limiter.snapshot()["waiting"] == 0


async def test_first_come_first_served_so_big_requests_are_not_starved() -> None:
    vt = AsyncVirtualTime()
    limiter = RateLimiter(Budget(qpm=1_000, tpm=1_000), clock=vt.clock, asleep=vt.sleep)
    order: list[str] = []

    async def ask(name: str, delay: float, cost: int) -> None:
        await vt.sleep(delay)
        await limiter.aacquire(cost)
        order.append(name)

    await vt.run(
        ask("fill", 0, 600),
        ask("big", 0.001, 900),
        *(ask(f"small{i}", 0.002 + i / 1000, 10) for i in range(5)),
    )
    assert order[:2] == ["fill", "big"]


# ------------------------------------------------------------------ registry


def test_shared_limiter_is_one_per_account_model_app_type() -> None:
    clear_shared_limiters()
    try:
        budget = Budget(qpm=60, tpm=60_000)
        one = shared_limiter(("acct1", "HCX-005", "test"), budget)
        assert shared_limiter(("acct1", "HCX-005", "test"), budget) is one
        assert shared_limiter(("acct2", "HCX-005", "test"), budget) is not one
        assert shared_limiter(("acct1", "HCX-005", "service"), budget) is not one
        assert shared_limiter(("acct1", "HCX-003", "test"), budget) is not one
        assert one.name == "HCX-005/test"
        # a changed budget or share updates the same instance and keeps its history
        one.acquire(10)
        again = shared_limiter(("acct1", "HCX-005", "test"), Budget(qpm=120, tpm=90_000), share=0.5)
        assert again is one
        assert (one.budget, one.share) == (Budget(qpm=120, tpm=90_000), 0.5)
        assert one.snapshot()["used_qpm"] == 1
        with pytest.raises(ClovaStudioConfigError):
            shared_limiter(("acct1", "HCX-005"), budget)  # type: ignore[arg-type]
    finally:
        clear_shared_limiters()


def test_snapshot_reports_what_a_log_reader_needs() -> None:
    clock = StepClock()
    limiter = limiter_on(clock, Budget(qpm=60, tpm=60_000), name="HCX-005/test")
    limiter.acquire(1_000)
    snapshot = limiter.snapshot()
    assert snapshot["name"] == "HCX-005/test"
    assert snapshot["budget"] == {"qpm": 60, "tpm": 60_000}
    assert snapshot["effective"] == {"qpm": 60, "tpm": 60_000}
    assert (snapshot["used_qpm"], snapshot["used_tpm"], snapshot["waiting"]) == (1, 1_000, 0)
    assert snapshot["paused_until"] is None and snapshot["granted_total"] == 1
    clock.now += 61
    assert limiter.snapshot()["used_qpm"] == 0


def test_long_waits_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    clock = StepClock()
    limiter = limiter_on(clock, Budget(qpm=1, tpm=1_000), name="HCX-003/test")
    limiter.acquire(1)
    with caplog.at_level(logging.INFO):
        limiter.acquire(1)
    assert "HCX-003/test: waiting" in caplog.text
    assert "1/1 requests" in caplog.text
