"""Client-side pacing against CLOVA Studio's per-minute budgets (QPM and TPM).

Why pace on our side at all: the service answers 429 as soon as either budget is spent, and
a 429 wastes a round trip and a retry slot. Pacing keeps every rolling window under both
limits, so 429s become the exception (another client on the same account), not the rule.

How it guarantees the limits
    A request is *committed* (counted and allowed to send) only under the lock, at the
    current clock time ``now``, and only if the committed requests in the half-open window
    ``(now - span, now]`` plus this one stay within the budget. Commits happen at
    non-decreasing times, so no earlier commit can fall inside a later window unseen, and by
    induction *no* window of length ``span`` over the commit times exceeds QPM or TPM.
    ``span = window_seconds + margin``. The server counts by *arrival* time; if every
    request's delay from commit to arrival lies within a spread of less than ``margin``, two
    arrivals less than ``window_seconds`` apart were committed less than ``span`` apart, so
    the server's windows hold no more than ours. The margin defaults to
    ``min(1 s, 2.5% of the window)``: 1 s at the 60 s window covers connection set-up and
    network jitter, and costs ``60/61 = 98.4%`` of the limit in steady state (>= 97%); on a
    shortened emulator window it stays proportionally small.

Burst-free
    On top of the window, two leaky buckets space the commits: one request per
    ``span / QPM`` seconds, and tokens at ``TPM / span`` per second, where the token pacer
    may run ahead by at most 10% of the window's token budget (slack that absorbs requests
    of varying size). An idle limiter therefore never fires a minute's budget in one burst
    (which would collide with other pool members and with servers that smooth over
    sub-windows). In steady state with same-size requests it runs at
    ``window / span`` = 98.4% of the limit. When sizes vary, any exact first-come-first-served
    window loses some room to fragmentation (the head request waits until enough old ones
    expire): roughly half an average request per window, e.g. ~95% of TPM for requests of
    500-5,000 tokens on a 60,000 TPM budget.

Fair and shared
    Waiters queue first-in first-out; only the head may commit, so a large request cannot
    be starved by a stream of small ones. Every waiter computes the planned time of its
    turn and sleeps until then (re-checking at least every ``poll_seconds``, so a released
    reservation or a recovery from a slowdown is picked up). The lock is held only for
    bookkeeping, never while sleeping, so one limiter serves threads and event loops at once
    and ``aacquire`` never blocks a loop. :func:`shared_limiter` gives every caller in the
    process for the same (account, base model, app type) the same instance.

Cost and correction
    The cost of a request is input tokens + the requested ``maxTokens``, reserved with an
    estimate (:mod:`.tokens`) before sending and settled with the real figure after the
    response (:meth:`Reservation.settle`); a request that was refused or never sent is
    released (:meth:`Reservation.release`). A request whose cost can never fit the budget
    fails fast with :class:`ClovaStudioBudgetError`.

When the service still says 429
    :meth:`RateLimiter.on_rate_limited` pauses *every* caller of the limiter (for
    ``Retry-After`` when the service gives one, else 1, 2, 4 ... seconds up to one window
    for consecutive episodes) and halves the effective rate (floor 10%), which then climbs
    back linearly to 100% over one window after the pause: by then the server's rolling
    window has forgotten whatever overshoot caused the 429. Reports that arrive while
    already paused, or for requests committed before the episode began, belong to the same
    episode and do not halve the rate again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from airflow_provider_clova.client.errors import ClovaStudioBudgetError, ClovaStudioConfigError
from airflow_provider_clova.client.limits import CAP_EPS, Budget

log = logging.getLogger(__name__)

DEFAULT_WINDOW_SECONDS = 60.0
#: Upper bound of the arrival-jitter margin, seconds.
MAX_MARGIN_SECONDS = 1.0
#: The margin never exceeds this fraction of the window (keeps >= 97% of the limit).
MARGIN_FRACTION = 0.025
#: A 429 episode multiplies the effective rate by this ...
SLOWDOWN_FACTOR = 0.5
#: ... but never below this fraction of the budget.
MIN_RATE_FACTOR = 0.1
#: The token pacer may run ahead of the smooth rate by this fraction of the window's budget:
#: enough slack to absorb requests of varying size without starving the window, far from
#: a minute's budget in one burst.
TOKEN_BURST_FRACTION = 0.1
#: The request pacer may bank up to this much of one request's interval: a commit that wakes
#: a little late (timer and event-loop latency) does not push back every later one, so the
#: lateness does not add up over a run. Idle time or a pause banks nothing, so it never
#: turns into a burst; the window check still bounds every window.
REQUEST_CREDIT = 0.5
#: First pause after a 429 without Retry-After; doubles per consecutive episode.
BACKOFF_BASE_SECONDS = 1.0
#: A waiter re-checks at least this often, to notice released budget early.
POLL_SECONDS = 1.0
#: Waits at least this long, so float rounding can never spin a fake clock.
_MIN_SLEEP = 1e-6
#: Waits longer than this are logged, once per request.
_LOG_WAIT_SECONDS = 5.0


def default_margin(window_seconds: float) -> float:
    """The arrival-jitter margin used when none is given (see the module docstring)."""
    return min(MAX_MARGIN_SECONDS, MARGIN_FRACTION * window_seconds)


class _Entry:
    """One committed request in the window."""

    __slots__ = ("cost", "live", "time")

    def __init__(self, at: float, cost: int) -> None:
        self.time = at
        self.cost = cost
        self.live = True


class _Ticket:
    """One waiter's place in the queue."""

    __slots__ = ("cost", "logged")

    def __init__(self, cost: int) -> None:
        self.cost = cost
        self.logged = False


class Reservation:
    """A committed request's claim on the window; correct it once the response is in."""

    __slots__ = ("_entry", "_limiter", "estimate", "granted_at")

    def __init__(self, limiter: RateLimiter, entry: _Entry) -> None:
        self._limiter = limiter
        self._entry = entry
        #: The cost reserved at commit.
        self.estimate = entry.cost
        #: Limiter clock time of the commit.
        self.granted_at = entry.time

    @property
    def cost(self) -> int:
        """What the window currently charges for this request (0 once released)."""
        return self._entry.cost if self._entry.live else 0

    @property
    def released(self) -> bool:
        return not self._entry.live

    def settle(self, actual_cost: int) -> None:
        """Replace the estimate by the real cost (input tokens + maxTokens).

        May be called again (the last figure wins); ignored after :meth:`release`.
        """
        if isinstance(actual_cost, bool) or not isinstance(actual_cost, int) or actual_cost < 0:
            raise ValueError(f"actual_cost must be a non-negative integer, got {actual_cost!r}")
        self._limiter._settle(self._entry, actual_cost)

    def release(self) -> None:
        """The request did not count (never sent, or refused with 429). Idempotent."""
        self._limiter._release(self._entry)

    # The async twins of the store's reservation (``StoreReservation``): nothing to await here.
    async def asettle(self, actual_cost: int) -> None:
        self.settle(actual_cost)

    async def arelease(self) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Reservation(cost={self.cost}, granted_at={self.granted_at:.3f}, released={self.released})"


def _check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ClovaStudioConfigError(f"{name} must be a positive number, got {value!r}")
    return float(value)


class PacedWindow:
    """The budget, window and margin a limiter paces against, checked in one place.

    Shared by :class:`RateLimiter` (one process) and the budget store's limiter (one budget
    for every process): both enforce the same rolling window of ``window + margin``.
    """

    _budget: Budget
    _window: float
    _margin: float
    _margin_given: float | None

    def _check_window(self, budget: Budget, window_seconds: float) -> tuple[Budget, float, float]:
        """``(budget, window, margin)`` validated; raises naming the wrong value."""
        if not isinstance(budget, Budget):
            raise ClovaStudioConfigError(f"budget must be a Budget, got {budget!r}")
        window = _check_positive("window_seconds", window_seconds)
        margin = default_margin(window) if self._margin_given is None else float(self._margin_given)
        if not 0.0 <= margin < window:
            raise ClovaStudioConfigError(f"margin_seconds must be in [0, window_seconds), got {margin!r}")
        return budget, window, margin

    @property
    def budget(self) -> Budget:
        """The budget as configured (before share and slowdown)."""
        return self._budget

    @property
    def window_seconds(self) -> float:
        return self._window

    @property
    def margin_seconds(self) -> float:
        return self._margin

    @property
    def span_seconds(self) -> float:
        """Length of the window the limiter enforces: window + margin."""
        return self._window + self._margin


class RateLimiter(PacedWindow):
    """Paces requests so that no rolling window exceeds a :class:`Budget` (see module doc).

    ``share`` (0 < share <= 1) scales the budget, e.g. ``pool_slots / pool size`` for a task
    in one of the provider's pools. ``clock`` (monotonic seconds), ``sleep`` and ``asleep``
    are injectable so tests run on a fake clock without real waiting.
    """

    def __init__(
        self,
        budget: Budget,
        *,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        share: float = 1.0,
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
        margin_seconds: float | None = None,
        sleep: Callable[[float], Any] = time.sleep,
        asleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.name = name or "clova"
        self._clock = clock
        self._sleep = sleep
        self._asleep = asleep
        self._poll = _check_positive("poll_seconds", poll_seconds)
        self._lock = threading.Lock()
        self._margin_given = margin_seconds
        self._budget = budget
        self._share = 1.0
        self._window = DEFAULT_WINDOW_SECONDS
        self._margin = 0.0
        self._configure(budget, window_seconds, share)
        self._entries: deque[_Entry] = deque()
        self._queue: deque[_Ticket] = deque()
        # Pacing buckets: outstanding requests / tokens as of ``_debt_at``.
        self._q_debt = 0.0
        self._t_debt = 0.0
        self._debt_at = clock()
        # 429 handling: rate factor f0 until _recover_from, then linear back to 1.
        self._pause_until = -math.inf
        self._f0 = 1.0
        self._recover_from = -math.inf
        self._episode_at = -math.inf
        self._episodes_in_row = 0
        self._rate_limited_total = 0
        self._granted_total = 0
        # Planned turns of the queue, valid while nothing changed (see _planned_wait).
        self._version = 0
        self._plans: tuple[int, dict[int, float]] | None = None

    # ---------------------------------------------------------------- configuration

    def _configure(self, budget: Budget, window_seconds: float, share: float) -> None:
        budget, window, margin = self._check_window(budget, window_seconds)
        share = _check_positive("share", share)
        if share > 1.0:
            raise ClovaStudioConfigError(f"share must be in (0, 1], got {share!r}")
        if budget.request_ceiling(share) < 1:
            raise ClovaStudioConfigError(
                f"{self.name}: share {share:.4g} of {budget.qpm} QPM leaves less than one request per "
                "window; use fewer pool slots (extra.pool_slots) or a larger share"
            )
        self._budget, self._window, self._share, self._margin = budget, window, share, margin

    def reconfigure(
        self, budget: Budget | None = None, *, window_seconds: float | None = None, share: float | None = None
    ) -> None:
        """Change the budget, window or share in place, keeping the window's history."""
        with self._lock:
            self._version += 1
            self._configure(
                budget if budget is not None else self._budget,
                window_seconds if window_seconds is not None else self._window,
                share if share is not None else self._share,
            )

    @property
    def share(self) -> float:
        return self._share

    @property
    def effective_budget(self) -> Budget:
        """What may be committed per window right now: budget x share x slowdown factor."""
        with self._lock:
            cap_q, cap_t = self._caps(self._clock())
        return Budget(qpm=cap_q, tpm=max(1, cap_t))

    # ---------------------------------------------------------------- the rules

    def _factor(self, now: float) -> float:
        if now <= self._recover_from:
            return self._f0
        if self._f0 >= 1.0:
            return 1.0
        return min(1.0, self._f0 + (1.0 - self._f0) * (now - self._recover_from) / self._window)

    def _rates(self, now: float) -> tuple[float, float]:
        """Budget x share x slowdown at ``now``, as (requests, tokens) per span."""
        factor = self._factor(now)
        return self._budget.qpm * self._share * factor, self._budget.tpm * self._share * factor

    def _caps(self, now: float) -> tuple[int, int]:
        """Whole requests / tokens one window may hold now (at least one request)."""
        rate_q, rate_t = self._rates(now)
        return max(1, math.floor(rate_q + CAP_EPS)), math.floor(rate_t + CAP_EPS)

    def _check_cost(self, cost: int) -> None:
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
            raise ValueError(f"cost must be a non-negative integer, got {cost!r}")
        ceiling = self._budget.token_ceiling(self._share)
        if cost > ceiling:
            share = "" if self._share == 1.0 else f" x share {self._share:.4g}"
            raise ClovaStudioBudgetError(
                f"{self.name}: a request costing {cost} tokens (input + maxTokens) can never fit the "
                f"budget of {ceiling} tokens per {self._window:g} s ({self._budget.tpm} TPM{share}); "
                "lower maxTokens, shorten the input, take more pool slots, or raise the model's tpm "
                "in the connection's extra.limits"
            )

    def _debts(self, now: float) -> tuple[float, float]:
        """The pacing buckets drained to ``now``."""
        rate_q, rate_t = self._rates(now)
        span = self.span_seconds
        elapsed = max(0.0, now - self._debt_at)
        q_debt = self._q_debt - elapsed * rate_q / span
        # Credit only absorbs a late wake-up; after an idle spell or a pause it is gone.
        return (
            q_debt if q_debt >= -REQUEST_CREDIT else 0.0,
            max(0.0, self._t_debt - elapsed * rate_t / span),
        )

    def _earliest(
        self, cost: int, start: float, entries: Iterable[_Entry], q_debt: float, t_debt: float, now: float
    ) -> float:
        """Earliest time >= ``start`` at which ``cost`` may commit after ``entries``.

        ``q_debt``/``t_debt`` are the pacing buckets as of ``now`` (rates taken at ``now``;
        they only grow afterwards while recovering, so the answer never comes too early by
        more than a re-check).
        """
        rate_q, rate_t = self._rates(now)
        cap_q, cap_t = self._caps(now)
        cap_t = max(cap_t, cost)  # a slowdown must not strand a request the real budget admits
        span = self.span_seconds
        at = max(start, self._pause_until)
        if q_debt > 0.0:
            at = max(at, now + q_debt * span / rate_q)
        slack = TOKEN_BURST_FRACTION * rate_t
        if t_debt > slack:
            at = max(at, now + (t_debt - slack) * span / rate_t)
        inside = [entry for entry in entries if entry.time + span > at]
        count, total = len(inside), sum(entry.cost for entry in inside)
        index = 0
        while count + 1 > cap_q or total + cost > cap_t:
            oldest = inside[index]
            at = max(at, oldest.time + span)
            count -= 1
            total -= oldest.cost
            index += 1
        return at

    def _prune(self, now: float) -> None:
        span = self.span_seconds
        while self._entries and self._entries[0].time + span <= now:
            self._entries.popleft()

    def _plan(self, now: float) -> dict[int, float]:
        """Planned commit time of every queued ticket, in queue order (by ticket id)."""
        entries = list(self._entries)
        q_debt, t_debt = self._debts(now)
        span = self.span_seconds
        plans: dict[int, float] = {}
        previous, debt_at = now, now
        for ticket in self._queue:
            at = self._earliest(ticket.cost, previous, entries, q_debt, t_debt, debt_at)
            plans[id(ticket)] = at
            rate_q, rate_t = self._rates(at)
            q_debt = max(0.0, q_debt - (at - debt_at) * rate_q / span) + 1.0
            t_debt = max(0.0, t_debt - (at - debt_at) * rate_t / span) + ticket.cost
            entries.append(_Entry(at, ticket.cost))
            previous = debt_at = at
        return plans

    def _planned_wait(self, ticket: _Ticket, now: float) -> float:
        """Seconds until ``ticket``'s planned turn.

        Plans are cached until something changes (a commit, settle, release, 429, a waiter
        joining or leaving) or the head's turn passes without it committing: with many
        waiters polling, re-planning the whole queue on every wake-up would cost real CPU.
        A cached plan can only be late, never early (the rate it assumed only recovers).
        """
        cached = self._plans
        head = id(self._queue[0])
        if cached is None or cached[0] != self._version or cached[1].get(head, -math.inf) < now:
            cached = self._plans = (self._version, self._plan(now))
        return cached[1][id(ticket)] - now

    def _try_commit(self, ticket: _Ticket) -> tuple[Reservation | None, float]:
        """Commit ``ticket`` if it is its turn and it fits now; else how long to wait."""
        with self._lock:
            self._check_cost(ticket.cost)
            now = self._clock()
            self._prune(now)
            q_debt, t_debt = self._debts(now)
            if self._queue and self._queue[0] is ticket:
                at = self._earliest(ticket.cost, now, self._entries, q_debt, t_debt, now)
                if at <= now:
                    entry = _Entry(now, ticket.cost)
                    self._entries.append(entry)
                    self._q_debt, self._t_debt, self._debt_at = q_debt + 1.0, t_debt + ticket.cost, now
                    self._queue.popleft()
                    self._granted_total += 1
                    self._version += 1
                    return Reservation(self, entry), 0.0
            wait = self._planned_wait(ticket, now)
            if wait >= _LOG_WAIT_SECONDS and not ticket.logged:
                ticket.logged = True
                log.info("%s: waiting %.1f s for budget (%s)", self.name, wait, self._describe(now))
        return None, max(_MIN_SLEEP, min(wait, self._poll))

    def _enqueue(self, cost: int) -> _Ticket:
        with self._lock:
            self._check_cost(cost)
            ticket = _Ticket(cost)
            self._queue.append(ticket)
            self._version += 1
            return ticket

    def _leave(self, ticket: _Ticket) -> None:
        with self._lock, contextlib.suppress(ValueError):  # already committed
            self._queue.remove(ticket)
            self._version += 1

    # ---------------------------------------------------------------- public calls

    def acquire(self, cost: int) -> Reservation:
        """Block (``sleep``) until a request of ``cost`` tokens may be sent; commit it."""
        ticket = self._enqueue(cost)
        try:
            while True:
                reservation, wait = self._try_commit(ticket)
                if reservation is not None:
                    return reservation
                self._sleep(wait)
        finally:
            self._leave(ticket)

    async def aacquire(self, cost: int) -> Reservation:
        """Await (``asleep``) until a request of ``cost`` tokens may be sent; commit it.

        Never blocks the event loop: the lock is only held for bookkeeping.
        """
        ticket = self._enqueue(cost)
        try:
            while True:
                reservation, wait = self._try_commit(ticket)
                if reservation is not None:
                    return reservation
                await self._asleep(wait)
        finally:
            self._leave(ticket)

    async def aon_rate_limited(
        self, retry_after: float | None = None, *, reservation: Reservation | None = None
    ) -> None:
        """:meth:`on_rate_limited` (in memory, nothing to await), as the store's limiter offers it."""
        self.on_rate_limited(retry_after, reservation=reservation)

    def on_rate_limited(self, retry_after: float | None = None, *, reservation: Reservation | None = None) -> None:
        """The service answered 429 (42900/42901): slow down every caller of this limiter.

        ``retry_after`` (seconds, from the ``Retry-After`` header, at most one window: the budget
        is whole again by then whatever the header says) sets the pause; otherwise
        1, 2, 4 ... seconds for consecutive episodes, up to one window. Passing the refused
        ``reservation`` lets the limiter tell a new episode from late reports of the same one.
        """
        given = (
            float(retry_after)
            if isinstance(retry_after, (int, float))
            and not isinstance(retry_after, bool)
            and math.isfinite(retry_after)
            and retry_after >= 0
            else None
        )
        if given is not None:
            given = min(given, self._window)
        with self._lock:
            self._version += 1
            now = self._clock()
            same_episode = now < self._pause_until or (
                reservation is not None and reservation.granted_at <= self._episode_at
            )
            if same_episode:
                if given is not None:
                    self._pause_until = max(self._pause_until, now + given)
                    self._recover_from = max(self._recover_from, self._pause_until)
                return
            factor = self._factor(now)
            self._episodes_in_row = self._episodes_in_row + 1 if factor < 1.0 else 1
            pause = (
                given
                if given is not None
                else min(BACKOFF_BASE_SECONDS * 2 ** (self._episodes_in_row - 1), self._window)
            )
            self._f0 = max(MIN_RATE_FACTOR, factor * SLOWDOWN_FACTOR)
            self._pause_until = max(self._pause_until, now + pause)
            self._recover_from = self._pause_until
            self._episode_at = now
            self._rate_limited_total += 1
            detail = self._describe(now)
            slowed_to = self._f0
        log.warning(
            "%s: CLOVA Studio answered 429; pausing all callers %.1f s and pacing at %.0f%% of the budget, "
            "recovering over %.0f s (%s)",
            self.name,
            pause,
            100 * slowed_to,
            self._window,
            detail,
        )

    # ---------------------------------------------------------------- window edits

    def _rebase_debts(self) -> None:
        """Drain the pacing buckets to now, so a correction applies from now on."""
        self._version += 1
        now = self._clock()
        self._q_debt, self._t_debt = self._debts(now)
        self._debt_at = now

    def _settle(self, entry: _Entry, actual: int) -> None:
        with self._lock:
            if not entry.live:
                return
            self._rebase_debts()
            self._t_debt = max(0.0, self._t_debt + (actual - entry.cost))
            entry.cost = actual

    def _release(self, entry: _Entry) -> None:
        with self._lock:
            if not entry.live:
                return
            entry.live = False
            with contextlib.suppress(ValueError):  # already out of the window
                self._entries.remove(entry)
            self._rebase_debts()
            self._q_debt = max(-REQUEST_CREDIT, self._q_debt - 1.0)
            self._t_debt = max(0.0, self._t_debt - entry.cost)

    # ---------------------------------------------------------------- reporting

    def _used(self, now: float) -> tuple[int, int]:
        span = self.span_seconds
        inside = [entry for entry in self._entries if entry.time + span > now]
        return len(inside), sum(entry.cost for entry in inside)

    def _describe(self, now: float) -> str:
        used_q, used_t = self._used(now)
        cap_q, cap_t = self._caps(now)
        paused = max(0.0, self._pause_until - now)
        return (
            f"{used_q}/{cap_q} requests and {used_t}/{cap_t} tokens in the last {self.span_seconds:g} s, "
            f"{len(self._queue)} waiting" + (f", paused {paused:.1f} s more" if paused else "")
        )

    def snapshot(self) -> dict[str, Any]:
        """A plain dict for logs and tests: usage in the current window, pause, slowdown."""
        with self._lock:
            now = self._clock()
            self._prune(now)
            used_q, used_t = self._used(now)
            cap_q, cap_t = self._caps(now)
            return {
                "name": self.name,
                "budget": {"qpm": self._budget.qpm, "tpm": self._budget.tpm},
                "share": self._share,
                "effective": {"qpm": cap_q, "tpm": cap_t},
                "window_seconds": self._window,
                "margin_seconds": self._margin,
                "used_qpm": used_q,
                "used_tpm": used_t,
                "waiting": len(self._queue),
                "paused_until": self._pause_until if self._pause_until > now else None,
                "paused_for_seconds": max(0.0, self._pause_until - now),
                "rate_factor": self._factor(now),
                "rate_limited_total": self._rate_limited_total,
                "granted_total": self._granted_total,
            }

    def __repr__(self) -> str:
        return (
            f"RateLimiter({self.name!r}, qpm={self._budget.qpm}, tpm={self._budget.tpm}, share={self._share:.4g}, "
            f"window={self._window:g}s)"
        )


# -------------------------------------------------------------------- process-wide registry

_registry: dict[tuple[str, str, str], RateLimiter] = {}
_registry_lock = threading.Lock()


def shared_limiter(
    key: tuple[str, str, str],
    budget: Budget,
    *,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    share: float = 1.0,
) -> RateLimiter:
    """The one limiter of this process for ``key`` = (account fingerprint, base model, app type).

    The service counts per main account, base model and app type, so every hook, client and
    thread of a process that calls the same triple must draw from one window. The account
    part must be a non-secret fingerprint (e.g. a hash of the key). A second call with a
    different budget, window or share updates the instance in place (the latest caller's
    configuration wins; the window's history is kept).
    """
    if not (isinstance(key, tuple) and len(key) == 3 and all(isinstance(part, str) for part in key)):
        raise ClovaStudioConfigError(f"key must be (account, base model, app type) strings, got {key!r}")
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None:
            limiter = RateLimiter(budget, window_seconds=window_seconds, share=share, name=f"{key[1]}/{key[2]}")
            _registry[key] = limiter
        elif (limiter.budget, limiter.window_seconds, limiter.share) != (budget, float(window_seconds), share):
            limiter.reconfigure(budget, window_seconds=window_seconds, share=share)
        return limiter


def clear_shared_limiters() -> None:
    """Forget every shared limiter (tests; a fresh start after configuration changes)."""
    with _registry_lock:
        _registry.clear()


def _after_fork_in_child() -> None:
    # A forked task process shares no window with its parent; start clean, with a lock
    # that no parent thread can be holding.
    global _registry_lock
    _registry_lock = threading.Lock()
    _registry.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
