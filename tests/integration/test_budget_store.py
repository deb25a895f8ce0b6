"""The shared budget store against a real ``redis-server`` (and the emulator): workers in
separate processes share one budget with zero 429s, a killed worker's requests free the budget
within one window, a 429 pauses every limiter of the budget, an unreachable store is a typed
error naming the fix (or, when asked, the static split), and the keys stay bounded."""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_clova.client import budget_store, limiter
from airflow_provider_clova.client.budget_store import StoreLimiter, StoreSettings
from airflow_provider_clova.client.client import AsyncClovaStudioClient, ClovaStudioClient
from airflow_provider_clova.client.config import config_from_connection
from airflow_provider_clova.client.errors import ClovaStudioBudgetStoreError
from airflow_provider_clova.client.limits import Budget
from airflow_provider_clova.testing.pytest_plugin import ClovaEmulator, RedisServer
from airflow_provider_clova.testing.waiting import wait_until

pytestmark = pytest.mark.integration

WORKER = Path(__file__).with_name("_budget_worker.py")
KEY = ("acct", "HCX-005", "test")


@pytest.fixture(autouse=True)
def fresh_limiters() -> Iterator[None]:
    limiter.clear_shared_limiters()
    budget_store.clear_store_limiters()
    yield
    limiter.clear_shared_limiters()
    budget_store.clear_store_limiters()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chat_config(emulator: ClovaEmulator, **extra: Any) -> Any:
    # Chat takes the API key (Bearer); signature v2 is for the tuning API only.
    return config_from_connection(host=emulator.url, login=None, password=emulator.api_key, extra=extra)


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(bisect.bisect_left(times, t + window) - i for i, t in enumerate(times))


@pytest.mark.slow
def test_worker_processes_share_one_budget_with_zero_429(
    clova_emulator_factory: Any, redis_server: RedisServer
) -> None:
    window, qpm, workers, each = 4.0, 40, 4, 20
    limits = {"HCX-005": {"qpm": qpm, "tpm": 10**6}}
    emulator = clova_emulator_factory(limits=limits, rate_window_seconds=window, time_scale=0.01)
    spec = {
        "url": emulator.url,
        "api_key": emulator.api_key,
        "store": redis_server.url,
        "limits": limits,
        "window": window,
        "model": "HCX-005",
        "requests": each,
        "concurrency": 8,
    }
    children = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "chat", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "READY"
    start = time.time() + 0.3
    for child in children:
        assert child.stdin is not None
        child.stdin.write(f"{start!r}\n")
        child.stdin.flush()
    done: list[float] = []
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0
        done += json.loads(out.strip().splitlines()[-1])["done"]

    stats = emulator.stats()
    assert sum(int(codes.get("429", 0)) for codes in stats["requests"].values()) == 0
    assert len(done) == workers * each
    window_stats = next(w for w in stats["windows"] if w["model"] == "HCX-005")
    assert window_stats["max_requests_in_window"] <= qpm
    # Together they use the whole budget (a static split would give each a quarter, and four
    # quarters only if all four ran): 80 requests at 40 per 4.1 s take about 8 s.
    elapsed = max(done) - start
    assert (len(done) / elapsed) / (qpm / window) >= 0.85, [round(t - start, 2) for t in sorted(done)]
    assert max_in_window(done, window) <= qpm + 1  # answers, not arrivals: one of slack for latency


@pytest.mark.slow
def test_killed_worker_frees_the_budget_within_a_window(redis_server: RedisServer) -> None:
    window, qpm = 2.0, 10
    spec = {
        "key": list(KEY),
        "budget": {"qpm": qpm, "tpm": 10**6},
        "store": redis_server.url,
        "window": window,
        "concurrency": 60,  # a line six windows deep
    }
    child = subprocess.Popen([sys.executable, str(WORKER), "hold", json.dumps(spec)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    for _ in range(4):  # four requests committed and "in flight", the rest planned
        assert child.stdout.readline().strip() == "COMMITTED"
    mine = StoreLimiter(KEY, Budget(qpm=qpm, tpm=10**6), StoreSettings(redis_server.url), window_seconds=window)
    assert mine.snapshot()["waiting"] >= 20
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    killed = time.monotonic()

    committed = []
    for _ in range(qpm):
        mine.acquire(1)
        committed.append(time.monotonic() - killed)
    # The dead worker's planned requests leave the line within a lease and the ones behind
    # close the gap; its committed requests count for one window. Without that, its
    # planned requests would hold the line for 11 s.
    interval = mine.span_seconds / qpm
    assert committed[-1] <= mine.lease_seconds + mine.renew_seconds + qpm * interval + 1.5, committed
    assert mine.snapshot()["waiting"] == 0
    time.sleep(mine.span_seconds)  # let the window pass, then nothing of the dead worker remains
    assert mine.snapshot()["used_qpm"] == 0


def test_a_429_pauses_every_limiter_of_the_budget(redis_server: RedisServer) -> None:
    settings = StoreSettings(redis_server.url)
    one = StoreLimiter(KEY, Budget(qpm=100, tpm=10**6), settings, window_seconds=4.0)
    other = StoreLimiter(KEY, Budget(qpm=100, tpm=10**6), settings, window_seconds=4.0)
    reservation = one.acquire(10)
    one.on_rate_limited(retry_after=1.5, reservation=reservation)
    seen = other.snapshot()
    assert seen["paused_for_seconds"] > 1.0
    assert seen["rate_factor"] == pytest.approx(0.5)
    began = time.monotonic()
    other.acquire(10)
    assert time.monotonic() - began >= 1.0
    # A late report of the same episode does not halve the rate again.
    one.on_rate_limited(reservation=reservation)
    assert other.snapshot()["rate_limited_total"] == 1


def test_a_huge_retry_after_pauses_the_shared_budget_one_window_at_most(redis_server: RedisServer) -> None:
    limiter = StoreLimiter(
        f"{KEY}-cap", Budget(qpm=100, tpm=10**6), StoreSettings(redis_server.url), window_seconds=4.0
    )
    limiter.on_rate_limited(retry_after=1e308, reservation=limiter.acquire(10))
    assert 3.0 < limiter.snapshot()["paused_for_seconds"] <= 4.0


def test_release_and_settle_correct_the_shared_window(redis_server: RedisServer) -> None:
    store = StoreLimiter(KEY, Budget(qpm=50, tpm=1000), StoreSettings(redis_server.url), window_seconds=30.0)
    first = store.acquire(400)
    assert store.snapshot()["used_tpm"] == 400
    first.settle(150)
    assert store.snapshot()["used_tpm"] == 150
    first.release()
    first.release()  # idempotent
    snap = store.snapshot()
    assert (snap["used_qpm"], snap["used_tpm"]) == (0, 0)


def test_keys_expire_and_the_window_is_trimmed(redis_server: RedisServer) -> None:
    import redis

    store = StoreLimiter(KEY, Budget(qpm=20, tpm=10**6), StoreSettings(redis_server.url), window_seconds=0.5)
    for _ in range(30):
        store.acquire(1).settle(1)
    client = redis.Redis.from_url(redis_server.url)
    keys = client.keys(f"{budget_store.KEY_PREFIX}:*")
    assert keys
    for key in keys:
        assert 0 < client.ttl(key) <= store._ttl()
    # 30 requests over three windows of 0.5 s: only the last window's stay.
    assert client.zcard(f"{budget_store.KEY_PREFIX}:{{acct:HCX-005:test}}:sent") <= 20


def test_unreachable_store_fails_the_first_call_naming_the_fix(
    clova_emulator: ClovaEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://:s3cr%21t-pw@127.0.0.1:{closed_port()}/0"
    config = chat_config(clova_emulator, budget_store=url)
    assert "s3cr" not in repr(config)
    with ClovaStudioClient(config) as client, pytest.raises(ClovaStudioBudgetStoreError) as caught:
        client.chat_completion([{"role": "user", "content": "hi"}], model="HCX-005")
    text = str(caught.value)
    assert "extra.budget_store" in text and "Fix:" in text and "budget_store_fallback" in text
    assert "redis://:***@127.0.0.1" in text
    assert "s3cr" not in text and "s3cr" not in caplog.text
    assert "chat.v3" not in clova_emulator.stats()["requests"]  # nothing was sent


def test_fallback_static_paces_at_the_pool_share_and_says_so(
    clova_emulator: ClovaEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://:pw-x@127.0.0.1:{closed_port()}/0"
    config = chat_config(clova_emulator, budget_store=url, budget_store_fallback="static")
    from dataclasses import replace

    config = replace(config, rate_share=0.25)
    with caplog.at_level(logging.WARNING), ClovaStudioClient(config) as client:
        client.chat_completion([{"role": "user", "content": "hi"}], model="HCX-005")
        client.chat_completion([{"role": "user", "content": "hi"}], model="HCX-005")
    local = limiter._registry[(config.account_id, "HCX-005", "test")]
    assert local.share == 0.25 and local.snapshot()["granted_total"] == 2
    warnings = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1 and "static" in warnings[0] and "pw-x" not in caplog.text


def test_wrong_password_is_a_store_error_without_the_password(
    clova_emulator: ClovaEmulator, redis_server: RedisServer
) -> None:
    url = f"redis://:not-the-pw@{redis_server.host}:{redis_server.port}/0"
    config = chat_config(clova_emulator, budget_store=url)
    with ClovaStudioClient(config) as client, pytest.raises(ClovaStudioBudgetStoreError) as caught:
        client.chat_completion([{"role": "user", "content": "hi"}], model="HCX-005")
    assert "not-the-pw" not in str(caught.value)
    assert "AuthenticationError" in str(caught.value) or "invalid" in str(caught.value).lower()


def test_a_429_plans_the_waiting_line_again_after_the_pause(redis_server: RedisServer) -> None:
    import threading

    settings = StoreSettings(redis_server.url)
    budget = Budget(qpm=10, tpm=10**6)
    first = StoreLimiter(KEY, budget, settings, window_seconds=4.0).acquire(1)
    committed: list[float] = []

    def wait_one() -> None:
        StoreLimiter(KEY, budget, settings, window_seconds=4.0, poll_seconds=0.2).acquire(1)
        committed.append(time.monotonic())

    threads = [threading.Thread(target=wait_one) for _ in range(3)]
    for thread in threads:
        thread.start()
    watcher = StoreLimiter(KEY, budget, settings, window_seconds=4.0)
    while watcher.snapshot()["waiting"] < 3:  # all three planned behind the first, 0.41 s apart
        time.sleep(0.01)
    watcher.on_rate_limited(retry_after=1.0, reservation=first)
    limited = time.monotonic()
    for thread in threads:
        thread.join(30)
    committed.sort()
    # Lower bounds only: a thread that wakes late (a loaded machine, the 0.2 s poll) only adds.
    assert committed[0] - limited >= 0.95  # nobody goes before the pause ends ...
    # ... and the line then runs at half the pace: 4.1 s / 10 / 0.5 = 0.82 s apart, so the third
    # goes at least 1.0 + 2 x 0.82 = 2.64 s after the 429 (at full pace it would be 1.82 s).
    assert committed[-1] - limited >= 2.5, [round(t - limited, 3) for t in committed]


def test_the_test_button_reaches_the_store_and_runs_a_script(
    clova_emulator: ClovaEmulator, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection's Test button checks the budget store as the limiter will use it, and says
    which part failed without the password."""
    from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook

    monkeypatch.setenv("AIRFLOW_CONN_CLOVA_STORE_OK", clova_emulator.conn_json(budget_store=redis_server.url))
    down = f"redis://:d0wn-pw@127.0.0.1:{closed_port()}/0"
    monkeypatch.setenv("AIRFLOW_CONN_CLOVA_STORE_DOWN", clova_emulator.conn_json(budget_store=down))

    ok, message = ClovaStudioHook("clova_store_ok").test_connection()
    assert ok, message
    assert message.count(": OK,") == 2 and "budget store redis://:***@127.0.0.1" in message
    assert "scripts run" in message and str(redis_server.password) not in message

    ok, message = ClovaStudioHook("clova_store_down").test_connection()
    assert not ok
    assert "API key (Bearer)" in message and ": OK," in message  # the credential still checked out
    assert "FAILED: budget store redis://:***@127.0.0.1" in message and "extra.budget_store" in message
    assert "Fix:" in message and "d0wn-pw" not in message


# -- the async path: one redis.asyncio client per event loop, awaited directly ----------------------


def connected_clients(url: str) -> int:
    import redis

    with redis.Redis.from_url(url) as probe:
        return int(probe.info("clients")["connected_clients"])


def test_each_event_loop_gets_its_own_async_client_closed_when_the_loop_ends(redis_server: RedisServer) -> None:
    store = StoreLimiter(KEY, Budget(qpm=100, tpm=10**6), StoreSettings(redis_server.url), window_seconds=4.0)
    before = connected_clients(redis_server.url)

    async def book_twice() -> tuple[Any, int]:
        await store.aacquire(1)
        mine = budget_store._aredis_store(redis_server.url)
        await store.aacquire(1)
        assert budget_store._aredis_store(redis_server.url) is mine  # same loop: the same client
        return mine, connected_clients(redis_server.url)

    first, open_in_first = asyncio.run(book_twice())
    assert open_in_first == before + 1  # one connection for both bookings
    # asyncio.run ended the loop: its client closed its connection and is forgotten.
    wait_until(lambda: connected_clients(redis_server.url) == before, what="the first loop's client to disconnect")
    second, _ = asyncio.run(book_twice())
    assert second is not first and second.client is not first.client
    assert store.snapshot()["granted_total"] == 4


def test_a_closed_loop_s_client_is_not_reused(redis_server: RedisServer) -> None:
    """A loop closed without ``asyncio.run``'s clean-up (its tasks never cancelled) still hands
    nothing to the next loop."""
    store = StoreLimiter(KEY, Budget(qpm=100, tpm=10**6), StoreSettings(redis_server.url), window_seconds=4.0)

    async def book() -> Any:
        await store.aacquire(1)
        return budget_store._aredis_store(redis_server.url)

    loop = asyncio.new_event_loop()
    try:
        first = loop.run_until_complete(book())
    finally:
        loop.close()
    second = asyncio.run(book())
    assert second.client is not first.client


async def test_async_booking_never_waits_for_the_default_executor(redis_server: RedisServer) -> None:
    """The only thread of the loop's default executor is busy the whole time, yet requests book,
    wait in the line (renewing their lease), commit, settle, release and report a 429: no store
    call goes through a thread."""
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(executor)
    unblock = threading.Event()
    blocker = loop.run_in_executor(None, unblock.wait)
    try:
        store = StoreLimiter(
            KEY, Budget(qpm=4, tpm=10**6), StoreSettings(redis_server.url), window_seconds=1.0, poll_seconds=0.1
        )
        reservations = await asyncio.wait_for(asyncio.gather(*(store.aacquire(1) for _ in range(3))), 20)
        assert not blocker.done()
        granted = sorted(r.granted_at for r in reservations if isinstance(r, budget_store.StoreReservation))
        assert len(granted) == 3
        # Paced in the shared line: the later ones waited (renewing) for their planned time.
        assert granted[-1] - granted[0] >= 0.4, granted
        # The corrections are awaited on the loop too: settle, release, a 429.
        first, second, third = reservations
        await first.asettle(5)
        await second.arelease()
        await store.aon_rate_limited(0.5, reservation=third)
        seen = await store.asnapshot()
        assert (seen["used_qpm"], seen["used_tpm"], seen["granted_total"]) == (2, 5 + 1, 3)
        assert seen["rate_limited_total"] == 1 and seen["paused_for_seconds"] > 0
        assert not blocker.done()
    finally:
        unblock.set()
        await blocker


async def test_a_cancelled_async_waiter_leaves_the_line(redis_server: RedisServer) -> None:
    store = StoreLimiter(KEY, Budget(qpm=2, tpm=10**6), StoreSettings(redis_server.url), window_seconds=30.0)
    await store.aacquire(1)
    await store.aacquire(1)  # the window is full: the next one waits in the line for ~30 s
    waiter = asyncio.create_task(store.aacquire(1))

    async def planned() -> None:  # polled on this loop, where the waiter books
        while (await store.asnapshot())["waiting"] != 1:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(planned(), 15)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (await store.asnapshot())["waiting"] == 0  # released on the way out, not left to its lease


async def test_unreachable_store_on_the_async_path_is_the_typed_error(
    clova_emulator: ClovaEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://:as%21nc-pw@127.0.0.1:{closed_port()}/0"
    config = chat_config(clova_emulator, budget_store=url)
    async with AsyncClovaStudioClient(config) as client:
        with pytest.raises(ClovaStudioBudgetStoreError) as caught:
            await client.chat_completion([{"role": "user", "content": "hi"}], model="HCX-005")
    text = str(caught.value)
    assert "extra.budget_store" in text and "Fix:" in text and "redis://:***@127.0.0.1" in text
    assert "as!nc" not in text and "as%21nc" not in text and "as!nc" not in caplog.text
    assert "chat.v3" not in clova_emulator.stats()["requests"]  # nothing was sent


async def test_unreachable_store_on_the_async_path_falls_back_when_asked() -> None:
    url = f"redis://:pw-y@127.0.0.1:{closed_port()}/0"
    local = limiter.RateLimiter(Budget(qpm=10, tpm=10**6), window_seconds=4.0)
    store = StoreLimiter(
        KEY, Budget(qpm=10, tpm=10**6), StoreSettings(url, "static"), window_seconds=4.0, fallback=lambda: local
    )
    reservation = await store.aacquire(1)
    assert isinstance(reservation, limiter.Reservation) and local.snapshot()["granted_total"] == 1


@pytest.mark.skipif(not hasattr(os, "fork") or sys.version_info < (3, 11), reason="needs os.fork and asyncio.Runner")
def test_a_forked_child_makes_its_own_async_client_and_leaves_the_parent_s(redis_server: RedisServer) -> None:
    store = StoreLimiter(KEY, Budget(qpm=100, tpm=10**6), StoreSettings(redis_server.url), window_seconds=4.0)

    async def book() -> Any:
        await store.aacquire(1)
        return budget_store._aredis_store(redis_server.url)

    with asyncio.Runner() as runner:
        parents = runner.run(book())
        pid = os.fork()
        if pid == 0:  # the child, on the same loop object: a client of its own, then a clean loop end
            code = 1
            try:
                code = 0 if runner.run(book()) is not parents else 2
                runner.close()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert runner.run(book()) is parents  # the parent's client still works, on its own socket
    assert store.snapshot()["granted_total"] == 3


async def test_a_429_the_down_store_cannot_record_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://:l0g-pw@127.0.0.1:{closed_port()}/0"
    store = StoreLimiter(KEY, Budget(qpm=10, tpm=10**6), StoreSettings(url), window_seconds=4.0)
    with caplog.at_level(logging.WARNING):
        await store.aon_rate_limited(1.0)  # the answer is in: a lost correction must not fail the call
    assert "could not record a 429 in the budget store (ConnectionError)" in caplog.text
    assert "l0g-pw" not in caplog.text


def test_the_test_button_passes_a_store_whose_acl_refuses_info(redis_server: RedisServer) -> None:
    """A managed store may deny INFO; the limiter only needs scripts, so the check does too."""
    from airflow_provider_clova.client.budget_store import check_store

    redis_server.command("ACL", "SETUSER", "pacer", "on", ">pacer-pw-9", "~*", "+@all", "-info")
    try:
        url = f"redis://pacer:pacer-pw-9@{redis_server.host}:{redis_server.port}/0"
        answer = check_store(StoreSettings(url))
        assert "OK, Redis version unknown (INFO not allowed), scripts run" in answer
        assert "pacer-pw-9" not in answer
    finally:
        redis_server.command("ACL", "DELUSER", "pacer")
