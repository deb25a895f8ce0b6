"""Discrete-event virtual time for the limiter tests: exact, fast, no real sleeping.

Time advances only when every live worker is asleep on the virtual clock, and then jumps to
the earliest wake-up. So while any worker runs (including one blocked on the limiter's lock
by another thread) the clock is frozen, every grant time is exact, and a test never depends
on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from collections.abc import Callable, Coroutine
from typing import Any


class AsyncVirtualTime:
    """Virtual time for asyncio tasks on one loop."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0, seconds
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), future))
        await future  # a cancelled task's future is cancelled too, and skipped below

    def _asleep(self) -> int:
        return sum(not future.done() for _, _, future in self._sleepers)

    async def run(self, *coros: Coroutine[Any, Any, Any]) -> list[Any]:
        """Run ``coros`` to completion in virtual time; return their results."""
        tasks = [asyncio.ensure_future(coro) for coro in coros]
        while True:
            # Let every runnable task run until each one sleeps or finishes (exact: all of
            # this happens in one thread, and only the tasks change these counts).
            while self._asleep() < sum(not task.done() for task in tasks):
                await asyncio.sleep(0)
            if all(task.done() for task in tasks):
                break
            wake, _, future = heapq.heappop(self._sleepers)
            if future.done():  # cancelled
                continue
            self.now = max(self.now, wake)
            future.set_result(None)
        return [task.result() for task in tasks]


class ThreadVirtualTime:
    """Virtual time for real threads: each thread must call :meth:`done` when it ends."""

    def __init__(self, threads: int, start: float = 0.0) -> None:
        self.now = start
        self._cond = threading.Condition()
        self._running = threads
        self._sleepers: list[tuple[float, int, list[bool]]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, seconds
        with self._cond:
            woken = [False]
            heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), woken))
            self._running -= 1
            self._advance()
            while not woken[0]:
                self._cond.wait()

    def done(self) -> None:
        with self._cond:
            self._running -= 1
            self._advance()

    def _advance(self) -> None:
        if self._running == 0 and self._sleepers:
            wake, _, woken = heapq.heappop(self._sleepers)
            self.now = max(self.now, wake)
            woken[0] = True
            self._running += 1
            self._cond.notify_all()

    def run(self, *workers: Callable[[], Any]) -> list[Any]:
        """Run each worker in its own thread; re-raise the first failure."""
        results: list[Any] = [None] * len(workers)
        errors: list[BaseException] = []

        def body(index: int, worker: Callable[[], Any]) -> None:
            try:
                results[index] = worker()
            except BaseException as err:  # surfaced below
                errors.append(err)
            finally:
                self.done()

        threads = [threading.Thread(target=body, args=pair, daemon=True) for pair in enumerate(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
            assert not thread.is_alive(), "a worker hung"
        if errors:
            raise errors[0]
        return results


def window_violations(events: list[tuple[float, int]], window: float, max_requests: int, max_tokens: int) -> list[str]:
    """Every closed window [a, a + window] over ``events`` (time, cost) that is over budget.

    A window holding the most events can always be slid to start at an event, so checking
    the windows that start at each event checks every window.
    """
    ordered = sorted(events)
    problems = []
    for index, (start, _) in enumerate(ordered):
        inside = [cost for at, cost in ordered[index:] if at <= start + window]
        if len(inside) > max_requests or sum(inside) > max_tokens:
            problems.append(
                f"[{start:.6f}, {start + window:.6f}]: {len(inside)} requests / {sum(inside)} tokens "
                f"> {max_requests} / {max_tokens}"
            )
    return problems
