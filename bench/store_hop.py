"""What the thread hop cost the budget store's async path: commit-to-resume gap, awaited vs. in a thread.

The budget store commits a request on the store's clock and the worker sends it when its
coroutine resumes; the gap between the two is what the limiter's margin (0.1 s at a 4 s
window, 1 s at 60 s) must cover. Until the async client had its own ``redis.asyncio`` client,
``aacquire`` ran every store call in the loop's default executor (``asyncio.to_thread``), a
handful of threads on a small machine (``min(32, cores + 4)``), shared with every other
``to_thread`` user of the process while a batch keeps 8-32 requests in flight.

One run starts a real ``redis-server`` and measures, with ``CONCURRENCY`` requests in flight
on one event loop and a budget roomy enough that nobody waits in the line:

* **awaited**: ``StoreLimiter.aacquire`` (the loop's async client);
* **thread hop (baseline)**: the old path, the blocking ``acquire`` run with ``asyncio.to_thread``;

each on an idle executor and on one kept busy by ``BUSY`` other ``to_thread`` users (5 ms
jobs, like file or S3 reads of a batch). The gap of a request is the wall clock when its
``aacquire`` returned minus its commit time on the store's clock (``TIME``, same machine);
its latency is call to return (with a roomy budget, pure overhead: a busy executor delays the
baseline's booking itself). Prints p50 / p99 / max in milliseconds (medians over repeats) and
the baseline's p99 over the awaited p99.

    python bench/store_hop.py [--requests 400] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from airflow_provider_clova.client.budget_store import StoreLimiter, StoreReservation, StoreSettings
from airflow_provider_clova.client.limits import Budget
from airflow_provider_clova.testing.servers import start_redis_server

CONCURRENCY = 16
BUSY = 6


async def _gaps(acquire: Callable[[], Awaitable[Any]], requests: int, busy: int) -> list[tuple[float, float]]:
    """(commit-to-resume gap, call-to-return latency) of each request, seconds."""
    gaps: list[tuple[float, float]] = []
    todo = list(range(requests))
    done = asyncio.Event()

    async def worker() -> None:
        while todo:
            todo.pop()
            called = time.time()
            reservation = await acquire()
            assert isinstance(reservation, StoreReservation)
            gaps.append((time.time() - reservation.granted_at, time.time() - called))

    async def other_user() -> None:  # another to_thread user of the same executor
        while not done.is_set():
            await asyncio.to_thread(time.sleep, 0.005)

    others = [asyncio.create_task(other_user()) for _ in range(busy)]
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    done.set()
    await asyncio.gather(*others)
    return gaps


def _figures(samples: list[tuple[float, float]]) -> tuple[float, ...]:
    """p50, p99 and max of the gap, then of the latency, in milliseconds."""
    out: list[float] = []
    for column in range(2):
        ordered = sorted(sample[column] for sample in samples)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        out += [statistics.median(ordered) * 1e3, p99 * 1e3, ordered[-1] * 1e3]
    return tuple(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    server = start_redis_server(password="bench-hop-pw")
    try:
        settings = StoreSettings(server.url)
        # Roomy (10^5 requests a second), so every booking commits at once (no line to wait in);
        # a short window keeps the store's window small, and each run starts from an empty store.
        limiter = StoreLimiter(("bench", "HCX-005", "hop"), Budget(qpm=10**5, tpm=10**9), settings, window_seconds=1.0)

        async def awaited() -> Any:
            return await limiter.aacquire(1)

        async def hop() -> Any:
            return await asyncio.to_thread(limiter.acquire, 1)

        async def run(acquire: Callable[[], Awaitable[Any]], busy: int) -> tuple[float, ...]:
            server.flush()
            await acquire()  # warm up: this loop's client, the scripts
            return _figures(await _gaps(acquire, args.requests, busy))

        print(f"{CONCURRENCY} in flight, {args.requests} requests per row, medians of {args.repeats} repeats")
        for busy in (0, BUSY):
            rows: dict[str, list[tuple[float, ...]]] = {"awaited": [], "thread hop (baseline)": []}
            for _ in range(args.repeats):
                rows["awaited"].append(asyncio.run(run(awaited, busy)))
                rows["thread hop (baseline)"].append(asyncio.run(run(hop, busy)))
            medians = {name: [statistics.median(r[i] for r in runs) for i in range(6)] for name, runs in rows.items()}
            for name, m in medians.items():
                print(
                    f"  executor busy x{busy}  {name:22} commit-to-resume gap p50/p99/max "
                    f"{m[0]:5.2f}/{m[1]:5.2f}/{m[2]:6.2f} ms; call-to-return p50/p99/max "
                    f"{m[3]:5.2f}/{m[4]:6.2f}/{m[5]:6.2f} ms"
                )
            base, new = medians["thread hop (baseline)"], medians["awaited"]
            print(
                f"  executor busy x{busy}  baseline / awaited: gap p99 {base[1] / max(new[1], 1e-9):.2f}, "
                f"call-to-return p99 {base[4] / max(new[4], 1e-9):.2f}"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
