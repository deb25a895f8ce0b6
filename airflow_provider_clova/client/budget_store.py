"""One QPM/TPM budget for the whole deployment: the limiter's rules, kept in Redis.

Why: :mod:`.limiter` paces one process. Airflow tasks run in many processes on many
machines, and without a shared store the only safe split is static (each task paces at
``budget x pool_slots / pool size``), which idles the budget of every slot not in use. With
``extra.budget_store: "redis://..."`` every worker's limiter draws from one budget per
(account, base model, app type), so a lone task gets the whole budget and ten tasks together
never get more than it; pools are then only the concurrency cap.

The same guarantees as the process-local limiter (read its module docstring first), held on
the server by Lua scripts, each atomic:

Booking instead of committing
    A request is *booked* at a time ``at`` on the store's clock (``TIME``, so the workers'
    clocks never matter), at most ``horizon`` seconds ahead of now, and only if the booked
    requests in ``(at - span, at]`` plus this one stay within the budget. Bookings happen at
    non-decreasing ``at`` (each starts from the previous one), so by the same induction as
    the local limiter no window of length ``span`` over the booked times exceeds QPM or TPM.
    The worker then sleeps until ``at`` (measured from the reply, so it can only send late,
    never early) and sends. The two leaky buckets (burst-free pacing) live in the store too.
    Booking a little ahead is what lets waiters poll the store instead of being woken: the
    next waiter books as soon as the previous one has, for a time computed from the previous
    booking, not from when it happened to look.

FIFO across processes
    Every waiter takes a ticket (a sorted set scored by a counter); only the head may book,
    so a large request is never starved by a stream of small ones anywhere in the deployment.
    A ticket is a lease, renewed by every poll: a waiter that dies leaves the queue within
    ``lease`` seconds instead of blocking it.

Settlement, release, 429
    A booking is settled with the real cost or released (never sent, or refused with 429),
    exactly as in the local limiter. A 429 pauses every waiter of every process and halves
    the shared rate, which recovers over one window. A worker killed after booking keeps
    its booking counted until it leaves the window (the request may have reached the
    service); nothing is held longer than that.

Bounded
    Bookings older than the span are trimmed on every call; every key expires when the
    budget is idle (a few windows); tickets expire with their lease.

The ``redis`` client is an optional extra (``pip install 'airflow-provider-clova[redis]'``),
imported on the first paced call, never when a DAG file is parsed. When the store cannot be
reached, the first call fails with :class:`ClovaStudioBudgetStoreError`, unless the
connection sets ``extra.budget_store_fallback: "static"``: then the process paces at its
static pool share until the store answers again (retried once per window), and says so in
the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_provider_clova.client.errors import (
    ClovaStudioBudgetError,
    ClovaStudioBudgetStoreError,
    ClovaStudioConfigError,
)
from airflow_provider_clova.client.limiter import (
    BACKOFF_BASE_SECONDS,
    DEFAULT_WINDOW_SECONDS,
    MIN_RATE_FACTOR,
    POLL_SECONDS,
    REQUEST_CREDIT,
    SLOWDOWN_FACTOR,
    TOKEN_BURST_FRACTION,
    RateLimiter,
    Reservation,
    default_margin,
)
from airflow_provider_clova.client.limits import Budget

log = logging.getLogger(__name__)

#: URL schemes the redis client accepts.
STORE_SCHEMES: tuple[str, ...] = ("redis", "rediss", "unix")
Fallback = Literal["error", "static"]
FALLBACKS: tuple[str, ...] = ("error", "static")
#: Prefix of every key the provider writes.
KEY_PREFIX = "clova:budget"
#: Bookings may be made this far ahead of now at most (seconds, and fraction of the window).
MAX_HORIZON_SECONDS = 1.0
HORIZON_FRACTION = 0.1
#: A ticket lives this many poll intervals without a renewal.
LEASE_POLLS = 3.0
#: Keys expire after this many spans (+ a minute) without a call: long enough to outlive
#: the longest 429 pause (5 windows) and its recovery (1 window).
TTL_SPANS = 8
#: Connect and read timeouts of the redis client, seconds.
CONNECT_TIMEOUT = 3.0
SOCKET_TIMEOUT = 5.0
_MIN_SLEEP = 1e-6
_LOG_WAIT_SECONDS = 5.0


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for logs, errors and reprs)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ""
    netloc = f"{user}:***@{host}{port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def store_secrets(url: str) -> list[str]:
    """The password of ``url``, raw and percent-decoded, for Airflow's log masker."""
    try:
        raw = urllib.parse.urlsplit(url).netloc.rpartition("@")[0].partition(":")[2]
    except ValueError:
        return []
    return [secret for secret in dict.fromkeys((raw, urllib.parse.unquote(raw))) if secret]


def _scrub(text: str, url: str) -> str:
    for secret in store_secrets(url):
        text = text.replace(secret, "***")
    return text


@dataclass(frozen=True)
class StoreSettings:
    """``extra.budget_store`` and ``extra.budget_store_fallback``; the repr masks the password."""

    url: str = field(repr=False)
    fallback: Fallback = "error"

    @property
    def display(self) -> str:
        return mask_url(self.url)

    def __repr__(self) -> str:
        return f"StoreSettings(url={self.display!r}, fallback={self.fallback!r})"


def parse_store_settings(url: Any, fallback: Any, where: str) -> StoreSettings | None:
    """Validate the two connection fields; ``None`` when no store is configured."""
    if url in (None, ""):
        if fallback not in (None, ""):
            raise ClovaStudioConfigError(
                f"{where}: extra.budget_store_fallback is set but extra.budget_store is not; "
                "set extra.budget_store to a redis:// URL, or remove the fallback"
            )
        return None
    if not isinstance(url, str):
        raise ClovaStudioConfigError(f"{where}: extra.budget_store must be a URL string like redis://host:6379/0")
    try:
        parts = urllib.parse.urlsplit(url.strip())
        _ = parts.port
    except ValueError:
        raise ClovaStudioConfigError(
            f"{where}: extra.budget_store {mask_url(url)!r} is not a valid URL; use redis://[:password@]host:6379/0"
        ) from None
    if parts.scheme not in STORE_SCHEMES or (parts.scheme != "unix" and not parts.hostname):
        raise ClovaStudioConfigError(
            f"{where}: extra.budget_store {mask_url(url)!r} must be a redis://, rediss:// or unix:// URL, "
            "e.g. redis://:password@redis.example:6379/0"
        )
    fallback = fallback if fallback not in (None, "") else "error"
    if fallback not in FALLBACKS:
        raise ClovaStudioConfigError(
            f"{where}: extra.budget_store_fallback={fallback!r} is not valid; use 'error' (fail when the store "
            "is unreachable, the default) or 'static' (pace at the pool's static share until it is back)"
        )
    import importlib.util

    if importlib.util.find_spec("redis") is None:
        raise ClovaStudioConfigError(
            f"{where}: extra.budget_store needs the redis client; install it with "
            "pip install 'airflow-provider-clova[redis]'"
        )
    return StoreSettings(url=url.strip(), fallback=fallback)  # type: ignore[arg-type]


# -------------------------------------------------------------------- Lua, run atomically on the server

# Shared by the scripts: the store's clock (never behind a time it has already handed out,
# so a wall-clock step back cannot reorder bookings) and the slowdown factor after a 429.
_LUA_COMMON = """
local function fmt(x) return string.format('%.17g', x) end
local function num(v, d) if v then return tonumber(v) end return d end
local function store_now(s)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local clock = num(redis.call('HGET', s, 'clock'), 0)
  if clock > now then now = clock end
  redis.call('HSET', s, 'clock', fmt(now))
  return now
end
local function factor(at, f0, recover_from, window)
  if at <= recover_from then return f0 end
  if f0 >= 1 then return 1 end
  return math.min(1, f0 + (1 - f0) * (at - recover_from) / window)
end
local function touch(keys, ttl)
  for _, k in ipairs(keys) do redis.call('EXPIRE', k, ttl) end
end
"""

# KEYS: window (zset booked time -> "id|cost"), queue (zset seq -> "ticket|cost"),
#       leases (zset expiry -> ticket member), state (hash)
# ARGV: ticket member, cost, qpm, tpm, window, margin, lease, horizon, entry id, ttl,
#       request credit, token burst fraction
# Returns {1, wait, at} when booked (send after ``wait`` seconds), else {0, wait, rank}.
_LUA_ACQUIRE = (
    _LUA_COMMON
    + """
local w, q, l, s = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ticket, cost = ARGV[1], tonumber(ARGV[2])
local qpm, tpm = tonumber(ARGV[3]), tonumber(ARGV[4])
local window, margin = tonumber(ARGV[5]), tonumber(ARGV[6])
local lease, horizon = tonumber(ARGV[7]), tonumber(ARGV[8])
local entry, ttl = ARGV[9], tonumber(ARGV[10])
local credit, burst = tonumber(ARGV[11]), tonumber(ARGV[12])
local span = window + margin
local eps = 1e-9
local now = store_now(s)
local st = redis.call('HMGET', s, 'last', 'q_debt', 't_debt', 'debt_at', 'pause_until', 'f0', 'recover_from')
local last = num(st[1], 0)
local q_debt, t_debt = num(st[2], 0), num(st[3], 0)
local debt_at = num(st[4], now)
local pause_until, f0, recover_from = num(st[5], 0), num(st[6], 1), num(st[7], 0)

local dead = redis.call('ZRANGEBYSCORE', l, '-inf', fmt(now))
for _, member in ipairs(dead) do
  redis.call('ZREM', q, member)
  redis.call('ZREM', l, member)
end
redis.call('ZREMRANGEBYSCORE', w, '-inf', fmt(now - span))
if not redis.call('ZSCORE', q, ticket) then
  redis.call('ZADD', q, redis.call('HINCRBY', s, 'seq', 1), ticket)
end
redis.call('ZADD', l, fmt(now + lease), ticket)
touch(KEYS, ttl)

local f = factor(now, f0, recover_from, window)
local rq, rt = qpm * f, tpm * f
local start = math.max(now, last)
local rank = redis.call('ZRANK', q, ticket)
if rank > 0 then
  -- Not our turn: the earliest our booking can come, from the requests and tokens ahead.
  local ahead = redis.call('ZRANGE', q, 0, rank - 1)
  local tokens = 0
  for _, member in ipairs(ahead) do tokens = tokens + tonumber(string.match(member, '|(%d+)$')) end
  local drained = math.max(0, t_debt - math.max(0, start - debt_at) * rt / span)
  local by_q = start + rank * (1 - credit) * span / qpm
  local by_t = now + (drained + tokens - burst * tpm) * span / tpm
  local earliest = math.max(by_q, by_t, pause_until)
  return {0, fmt(earliest - horizon - now), rank}
end

local elapsed = math.max(0, start - debt_at)
local qd = q_debt - elapsed * rq / span
if qd < -credit then qd = 0 end
local td = math.max(0, t_debt - elapsed * rt / span)
local cap_q = math.max(1, math.floor(rq + eps))
local cap_t = math.max(math.floor(rt + eps), cost)
local at = math.max(start, pause_until)
if qd > 0 then at = math.max(at, start + qd * span / rq) end
local slack = burst * rt
if td > slack then at = math.max(at, start + (td - slack) * span / rt) end
local inside = redis.call('ZRANGEBYSCORE', w, '(' .. fmt(at - span), '+inf', 'WITHSCORES')
local count, total = #inside / 2, 0
local costs = {}
for i = 1, count do
  costs[i] = tonumber(string.match(inside[2 * i - 1], '|(%d+)$'))
  total = total + costs[i]
end
local i = 1
while count + 1 > cap_q or total + cost > cap_t do
  at = math.max(at, tonumber(inside[2 * i]) + span)
  count = count - 1
  total = total - costs[i]
  i = i + 1
end
if at > now + horizon then
  return {0, fmt(at - horizon - now), 0}
end
local gone = at - debt_at
if gone < 0 then gone = 0 end
local q_after = q_debt - gone * rq / span
if q_after < -credit then q_after = 0 end
local t_after = math.max(0, t_debt - gone * rt / span)
redis.call('ZADD', w, fmt(at), entry .. '|' .. cost)
redis.call('HSET', s, 'last', fmt(at), 'q_debt', fmt(q_after + 1), 't_debt', fmt(t_after + cost), 'debt_at', fmt(at))
redis.call('HINCRBY', s, 'granted', 1)
redis.call('ZREM', q, ticket)
redis.call('ZREM', l, ticket)
touch(KEYS, ttl)
return {1, fmt(at - now), fmt(at)}
"""
)

# KEYS: window, state. ARGV: old member, new member, cost delta. Returns 1 if the booking was live.
_LUA_SETTLE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], score, ARGV[2])
local td = tonumber(redis.call('HGET', KEYS[2], 't_debt') or '0')
redis.call('HSET', KEYS[2], 't_debt', string.format('%.17g', math.max(0, td + tonumber(ARGV[3]))))
return 1
"""

# KEYS: window, state. ARGV: member, cost, request credit. Returns 1 if the booking was live.
_LUA_RELEASE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local st = redis.call('HMGET', KEYS[2], 'q_debt', 't_debt')
local qd = math.max(-tonumber(ARGV[3]), tonumber(st[1] or '0') - 1)
local td = math.max(0, tonumber(st[2] or '0') - tonumber(ARGV[2]))
redis.call('HSET', KEYS[2], 'q_debt', string.format('%.17g', qd), 't_debt', string.format('%.17g', td))
return 1
"""

# KEYS: state. ARGV: retry_after or '', booked time of the refused request or '', window, ttl,
#       backoff base, slowdown factor, min rate factor.
# Returns {1, pause, new factor} for a new episode, {0, pause left, factor} for the same one.
_LUA_RATE_LIMITED = (
    _LUA_COMMON
    + """
local s = KEYS[1]
local window, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local now = store_now(s)
local st = redis.call('HMGET', s, 'pause_until', 'f0', 'recover_from', 'episode_at', 'episodes')
local pause_until, f0, recover_from = num(st[1], 0), num(st[2], 1), num(st[3], 0)
local episode_at, episodes = num(st[4], -1), num(st[5], 0)
local given = nil
if ARGV[1] ~= '' then given = math.min(tonumber(ARGV[1]), 5 * window) end
local same = now < pause_until or (ARGV[2] ~= '' and tonumber(ARGV[2]) <= episode_at)
if same then
  if given then
    pause_until = math.max(pause_until, now + given)
    recover_from = math.max(recover_from, pause_until)
    redis.call('HSET', s, 'pause_until', fmt(pause_until), 'recover_from', fmt(recover_from))
  end
  touch(KEYS, ttl)
  return {0, fmt(math.max(0, pause_until - now)), fmt(factor(now, f0, recover_from, window))}
end
local f = factor(now, f0, recover_from, window)
if f < 1 then episodes = episodes + 1 else episodes = 1 end
local pause = given
if not pause then pause = math.min(tonumber(ARGV[5]) * 2 ^ (episodes - 1), window) end
f0 = math.max(tonumber(ARGV[7]), f * tonumber(ARGV[6]))
pause_until = math.max(pause_until, now + pause)
redis.call('HSET', s, 'pause_until', fmt(pause_until), 'f0', fmt(f0), 'recover_from', fmt(pause_until),
  'episode_at', fmt(now), 'episodes', episodes)
redis.call('HINCRBY', s, 'rate_limited', 1)
touch(KEYS, ttl)
return {1, fmt(pause), fmt(f0)}
"""
)

# KEYS: window, queue, state. ARGV: span, window. Returns usage for snapshot().
_LUA_SNAPSHOT = (
    _LUA_COMMON
    + """
local span, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = store_now(KEYS[3])
local inside = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. fmt(now - span), fmt(now))
local tokens = 0
for _, member in ipairs(inside) do tokens = tokens + tonumber(string.match(member, '|(%d+)$')) end
local st = redis.call('HMGET', KEYS[3], 'pause_until', 'f0', 'recover_from', 'granted', 'rate_limited')
local pause_until = num(st[1], 0)
return {#inside, tokens, redis.call('ZCARD', KEYS[2]), fmt(math.max(0, pause_until - now)),
  fmt(factor(now, num(st[2], 1), num(st[3], 0), window)), num(st[4], 0), num(st[5], 0)}
"""
)


# -------------------------------------------------------------------- redis clients, one per URL and process

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def _redis_client(url: str) -> Any:
    """The process's redis client for ``url`` (thread-safe connection pool; fork-safe)."""
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            client = redis.Redis.from_url(
                url,
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=SOCKET_TIMEOUT,
                health_check_interval=30,
                # One quick retry covers a pooled connection the server closed; an unreachable
                # store must fail the call within seconds, not after a long backoff.
                retry=Retry(NoBackoff(), 1),
            )
            client.clova_scripts = {
                name: client.register_script(text)
                for name, text in (
                    ("acquire", _LUA_ACQUIRE),
                    ("settle", _LUA_SETTLE),
                    ("release", _LUA_RELEASE),
                    ("rate_limited", _LUA_RATE_LIMITED),
                    ("snapshot", _LUA_SNAPSHOT),
                )
            }
            _clients[url] = client
        return client


def _store_errors() -> tuple[type[BaseException], ...]:
    import redis

    return (redis.RedisError, OSError)


# -------------------------------------------------------------------- the limiter


class StoreReservation:
    """A booking in the shared window; correct it once the response is in (as :class:`Reservation`)."""

    __slots__ = ("_cost", "_entry", "_limiter", "_live", "estimate", "granted_at")

    def __init__(self, limiter: StoreLimiter, entry: str, cost: int, granted_at: float) -> None:
        self._limiter = limiter
        self._entry = entry
        self._cost = cost
        self._live = True
        #: The cost reserved at booking.
        self.estimate = cost
        #: Store clock time the request was booked for.
        self.granted_at = granted_at

    @property
    def member(self) -> str:
        return f"{self._entry}|{self._cost}"

    @property
    def cost(self) -> int:
        return self._cost if self._live else 0

    @property
    def released(self) -> bool:
        return not self._live

    def settle(self, actual_cost: int) -> None:
        """Replace the estimate by the real cost (the last figure wins); ignored after release."""
        if isinstance(actual_cost, bool) or not isinstance(actual_cost, int) or actual_cost < 0:
            raise ValueError(f"actual_cost must be a non-negative integer, got {actual_cost!r}")
        if not self._live or actual_cost == self._cost:
            return
        old = self.member
        delta, self._cost = actual_cost - self._cost, actual_cost
        self._limiter._settle(old, self.member, delta)

    def release(self) -> None:
        """The request did not count (never sent, or refused with 429). Idempotent."""
        if not self._live:
            return
        self._live = False
        self._limiter._release(self.member, self._cost)

    def __repr__(self) -> str:
        return f"StoreReservation(cost={self.cost}, granted_at={self.granted_at:.3f}, released={self.released})"


def _horizon(window: float) -> float:
    return min(MAX_HORIZON_SECONDS, HORIZON_FRACTION * window)


class StoreLimiter:
    """The limiter's public calls (``acquire``, ``aacquire``, ``on_rate_limited``, ``snapshot``)
    against one budget kept in Redis for ``key`` = (account fingerprint, base model, app type).

    ``fallback`` builds the process-local limiter at the static pool share; it is used only
    when ``settings.fallback == "static"`` and the store cannot be reached.
    """

    def __init__(
        self,
        key: tuple[str, str, str],
        budget: Budget,
        settings: StoreSettings,
        *,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        fallback: Callable[[], RateLimiter] | None = None,
        margin_seconds: float | None = None,
        poll_seconds: float = POLL_SECONDS,
        sleep: Callable[[float], Any] = time.sleep,
        asleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.key = key
        self.name = f"{key[1]}/{key[2]}"
        self.settings = settings
        self._fallback_factory = fallback
        self._margin_given = margin_seconds
        self._poll = poll_seconds
        self._sleep = sleep
        self._asleep = asleep
        self._lock = threading.Lock()
        self._down_until = -math.inf
        self._budget = budget
        self._window = window_seconds
        self._margin = 0.0
        self.reconfigure(budget, window_seconds=window_seconds)
        tag = ":".join(key)
        # One hash tag: every key of a budget lands on the same Redis Cluster slot.
        base = f"{KEY_PREFIX}:{{{tag}}}"
        self._keys = [f"{base}:window", f"{base}:queue", f"{base}:leases", f"{base}:state"]

    def reconfigure(self, budget: Budget | None = None, *, window_seconds: float | None = None) -> None:
        """Change the budget or window; every call sends them, so the store keeps no stale copy."""
        budget = budget if budget is not None else self._budget
        window = float(window_seconds if window_seconds is not None else self._window)
        if not isinstance(budget, Budget):
            raise ClovaStudioConfigError(f"budget must be a Budget, got {budget!r}")
        if not math.isfinite(window) or window <= 0:
            raise ClovaStudioConfigError(f"window_seconds must be a positive number, got {window!r}")
        margin = default_margin(window) if self._margin_given is None else float(self._margin_given)
        if not 0.0 <= margin < window:
            raise ClovaStudioConfigError(f"margin_seconds must be in [0, window_seconds), got {margin!r}")
        self._budget, self._window, self._margin = budget, window, margin

    @property
    def budget(self) -> Budget:
        return self._budget

    @property
    def window_seconds(self) -> float:
        return self._window

    @property
    def margin_seconds(self) -> float:
        return self._margin

    @property
    def span_seconds(self) -> float:
        return self._window + self._margin

    @property
    def horizon_seconds(self) -> float:
        """How far ahead of now a request may be booked."""
        return _horizon(self._window)

    @property
    def lease_seconds(self) -> float:
        return LEASE_POLLS * self._poll

    def _ttl(self) -> int:
        return math.ceil(TTL_SPANS * self.span_seconds + 60)

    # ---------------------------------------------------------------- store calls

    def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        client = _redis_client(self.settings.url)
        return client.clova_scripts[name](keys=keys, args=args, client=client)

    def _unreachable(self, exc: BaseException) -> RateLimiter:
        """The fallback limiter, or :class:`ClovaStudioBudgetStoreError` naming the fix."""
        reason = _scrub(f"{type(exc).__name__}: {exc}", self.settings.url)
        if self.settings.fallback == "static" and self._fallback_factory is not None:
            with self._lock:
                first = self._down_until < time.monotonic()
                self._down_until = time.monotonic() + self._window
            if first:
                log.warning(
                    "%s: budget store %s is unreachable (%s); pacing at this task's static pool share "
                    "(extra.budget_store_fallback=static) and retrying the store in %.0f s",
                    self.name,
                    self.settings.display,
                    reason,
                    self._window,
                )
            return self._fallback_factory()
        raise ClovaStudioBudgetStoreError(
            f"{self.name}: the budget store {self.settings.display} (extra.budget_store) cannot be used: {reason}. "
            "Fix: start Redis or correct the URL and password in the connection's extra.budget_store; or set "
            'extra.budget_store_fallback to "static" to pace at the pool\'s static share while the store is down'
        ) from None

    def _fallen_back(self) -> RateLimiter | None:
        if self._fallback_factory is not None and time.monotonic() < self._down_until:
            return self._fallback_factory()
        return None

    def _check_cost(self, cost: int) -> None:
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
            raise ValueError(f"cost must be a non-negative integer, got {cost!r}")
        if cost > self._budget.tpm:
            raise ClovaStudioBudgetError(
                f"{self.name}: a request costing {cost} tokens (input + maxTokens) can never fit the "
                f"budget of {self._budget.tpm} tokens per {self._window:g} s; lower maxTokens, shorten the "
                "input, or raise the model's tpm in the connection's extra.limits"
            )

    def _acquire_args(self, ticket: str, cost: int, entry: str) -> list[Any]:
        return [
            ticket,
            cost,
            self._budget.qpm,
            self._budget.tpm,
            repr(self._window),
            repr(self._margin),
            repr(self.lease_seconds),
            repr(self.horizon_seconds),
            entry,
            self._ttl(),
            repr(REQUEST_CREDIT),
            repr(TOKEN_BURST_FRACTION),
        ]

    def _step(self, ticket: str, cost: int, entry: str) -> tuple[StoreReservation | None, float]:
        """One poll: booked (and the wait until its time), or how long to wait before asking again."""
        booked, wait_text, detail = self._run("acquire", self._keys, self._acquire_args(ticket, cost, entry))
        wait = max(0.0, float(wait_text))
        if booked:
            return StoreReservation(self, entry, cost, float(detail)), wait
        if int(detail) > 0:  # not at the head: wake in time to book within the horizon
            wait = max(wait, self.horizon_seconds / 2)
        return None, max(_MIN_SLEEP, min(wait, self._poll))

    def _leave(self, ticket: str) -> None:
        with contextlib.suppress(*_store_errors()):
            client = _redis_client(self.settings.url)
            client.pipeline(transaction=False).zrem(self._keys[1], ticket).zrem(self._keys[2], ticket).execute()

    def _new_ticket(self, cost: int) -> tuple[str, str]:
        self._check_cost(cost)
        token = os.urandom(8).hex()
        return f"{token}|{cost}", token

    # ---------------------------------------------------------------- public calls

    def acquire(self, cost: int) -> StoreReservation | Reservation:
        """Block until a request of ``cost`` tokens may be sent; book it in the shared window."""
        fallen = self._fallen_back()
        if fallen is not None:
            return fallen.acquire(cost)
        ticket, entry = self._new_ticket(cost)
        started, logged, booked = time.monotonic(), False, False
        try:
            while True:
                try:
                    reservation, wait = self._step(ticket, cost, entry)
                except _store_errors() as exc:
                    return self._unreachable(exc).acquire(cost)
                if reservation is not None:
                    booked = True
                    self._wait_booked(reservation, wait)
                    return reservation
                logged = self._log_wait(started, logged)
                self._sleep(wait)
        finally:
            if not booked:
                self._leave(ticket)

    async def aacquire(self, cost: int) -> StoreReservation | Reservation:
        """Await until a request of ``cost`` tokens may be sent; store calls run off the event loop."""
        fallen = self._fallen_back()
        if fallen is not None:
            return await fallen.aacquire(cost)
        ticket, entry = self._new_ticket(cost)
        started, logged, booked = time.monotonic(), False, False
        try:
            while True:
                try:
                    reservation, wait = await asyncio.to_thread(self._step, ticket, cost, entry)
                except _store_errors() as exc:
                    return await self._unreachable(exc).aacquire(cost)
                if reservation is not None:
                    booked = True
                    try:
                        await self._asleep(wait)
                    except BaseException:
                        reservation.release()  # cancelled before sending: the booking did not count
                        raise
                    return reservation
                logged = self._log_wait(started, logged)
                await self._asleep(wait)
        finally:
            if not booked:
                await asyncio.to_thread(self._leave, ticket)

    def _wait_booked(self, reservation: StoreReservation, wait: float) -> None:
        try:
            self._sleep(wait)
        except BaseException:
            reservation.release()
            raise

    def _log_wait(self, started: float, logged: bool) -> bool:
        if not logged and time.monotonic() - started >= _LOG_WAIT_SECONDS:
            log.info("%s: waiting for budget in the shared store %s", self.name, self.settings.display)
            return True
        return logged

    def on_rate_limited(self, retry_after: float | None = None, *, reservation: Any = None) -> None:
        """The service answered 429: pause and slow down every caller of this budget, everywhere."""
        if isinstance(reservation, Reservation) and self._fallback_factory is not None:
            self._fallback_factory().on_rate_limited(retry_after, reservation=reservation)
            return
        given = (
            repr(float(retry_after))
            if isinstance(retry_after, (int, float))
            and not isinstance(retry_after, bool)
            and math.isfinite(retry_after)
            and retry_after >= 0
            else ""
        )
        granted = repr(reservation.granted_at) if isinstance(reservation, StoreReservation) else ""
        args = [
            given,
            granted,
            repr(self._window),
            self._ttl(),
            repr(BACKOFF_BASE_SECONDS),
            repr(SLOWDOWN_FACTOR),
            repr(MIN_RATE_FACTOR),
        ]
        try:
            new, pause, slowed_to = self._run("rate_limited", [self._keys[3]], args)
        except _store_errors() as exc:
            log.warning("%s: could not record a 429 in the budget store (%s)", self.name, type(exc).__name__)
            return
        if new:
            log.warning(
                "%s: CLOVA Studio answered 429; pausing every caller of this budget %.1f s and pacing at %.0f%% "
                "of it, recovering over %.0f s (shared store %s)",
                self.name,
                float(pause),
                100 * float(slowed_to),
                self._window,
                self.settings.display,
            )

    def _settle(self, old: str, new: str, delta: int) -> None:
        try:
            self._run("settle", [self._keys[0], self._keys[3]], [old, new, delta])
        except _store_errors() as exc:
            log.warning("%s: could not settle a booking in the budget store (%s)", self.name, type(exc).__name__)

    def _release(self, member: str, cost: int) -> None:
        try:
            self._run("release", [self._keys[0], self._keys[3]], [member, cost, repr(REQUEST_CREDIT)])
        except _store_errors() as exc:
            log.warning("%s: could not release a booking in the budget store (%s)", self.name, type(exc).__name__)

    def snapshot(self) -> dict[str, Any]:
        """Usage of the shared window now, as :meth:`RateLimiter.snapshot` reports it."""
        used_q, used_t, waiting, paused, factor, granted, limited = self._run(
            "snapshot", [self._keys[0], self._keys[1], self._keys[3]], [repr(self.span_seconds), repr(self._window)]
        )
        return {
            "name": self.name,
            "store": self.settings.display,
            "budget": {"qpm": self._budget.qpm, "tpm": self._budget.tpm},
            "window_seconds": self._window,
            "margin_seconds": self._margin,
            "used_qpm": int(used_q),
            "used_tpm": int(used_t),
            "waiting": int(waiting),
            "paused_for_seconds": float(paused),
            "rate_factor": float(factor),
            "rate_limited_total": int(limited),
            "granted_total": int(granted),
        }

    def __repr__(self) -> str:
        return (
            f"StoreLimiter({self.name!r}, qpm={self._budget.qpm}, tpm={self._budget.tpm}, "
            f"window={self._window:g}s, store={self.settings.display!r})"
        )


# -------------------------------------------------------------------- process-wide registry

_registry: dict[tuple[str, tuple[str, str, str]], StoreLimiter] = {}
_registry_lock = threading.Lock()


def store_limiter(
    key: tuple[str, str, str],
    budget: Budget,
    settings: StoreSettings,
    *,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    fallback_share: float = 1.0,
) -> StoreLimiter:
    """The process's store-backed limiter for ``key``: every hook, client and thread shares it.

    ``fallback_share`` is the static pool share the process-local fallback paces at (only
    with ``extra.budget_store_fallback: "static"``).
    """
    from airflow_provider_clova.client.limiter import shared_limiter

    def fallback() -> RateLimiter:
        return shared_limiter(key, budget, window_seconds=window_seconds, share=fallback_share)

    with _registry_lock:
        limiter = _registry.get((settings.url, key))
        if limiter is None:
            limiter = StoreLimiter(key, budget, settings, window_seconds=window_seconds, fallback=fallback)
            _registry[(settings.url, key)] = limiter
        else:
            limiter._fallback_factory = fallback
            if (limiter.budget, limiter.window_seconds) != (budget, float(window_seconds)):
                limiter.reconfigure(budget, window_seconds=window_seconds)
        limiter.settings = settings
        return limiter


def clear_store_limiters() -> None:
    """Forget every store-backed limiter and redis client of this process (tests)."""
    with _registry_lock:
        _registry.clear()
    with _clients_lock:
        for client in _clients.values():
            with contextlib.suppress(Exception):
                client.close()
        _clients.clear()


def _after_fork_in_child() -> None:
    global _registry_lock, _clients_lock
    _registry_lock = threading.Lock()
    _clients_lock = threading.Lock()
    _registry.clear()
    _clients.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
