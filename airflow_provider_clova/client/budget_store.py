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

Two drivers, one wait
    Which script to run next and what its reply means are decided without I/O
    (``_call_for`` / ``_step``); the wait around them is one coroutine, ``_acquire``, that
    ``acquire`` runs with blocking calls on the process's ``redis.Redis`` (thread-safe pool)
    and ``aacquire`` awaits on the running loop's ``redis.asyncio`` client: one per URL and
    event loop, made on first use there, closed when the loop ends, forgotten by a forked
    child. So an async booking never waits for a thread of the default executor (a handful on
    a small machine, while a batch keeps dozens of requests in flight), which would widen the
    gap between a booking's commit and the request's arrival that the margin must cover. The
    corrections after the answer have awaited twins too (``asettle``, ``arelease``,
    ``aon_rate_limited``), which the async client uses, so no store call blocks the loop.

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
import importlib.util
import logging
import math
import os
import threading
import time
import urllib.parse
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_provider_clova.client.drivers import as_async, run_blocking
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
    PacedWindow,
    RateLimiter,
    Reservation,
    shared_limiter,
)
from airflow_provider_clova.client.limits import Budget

log = logging.getLogger(__name__)

#: URL schemes the redis client accepts.
STORE_SCHEMES: tuple[str, ...] = ("redis", "rediss", "unix")
Fallback = Literal["error", "static"]
FALLBACKS: tuple[str, ...] = ("error", "static")
#: Prefix of every key the provider writes.
KEY_PREFIX = "clova:budget"
#: A waiting owner renews its booking every ``min(poll, this x window)`` seconds ...
RENEW_FRACTION = 0.25
#: ... and a booking not renewed for this many renewal intervals is dropped (a killed worker).
LEASE_RENEWALS = 3.0
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
    if importlib.util.find_spec("redis") is None:
        raise ClovaStudioConfigError(
            f"{where}: extra.budget_store needs the redis client; install it with "
            "pip install 'airflow-provider-clova[redis]'"
        )
    return StoreSettings(url=url.strip(), fallback=fallback)  # type: ignore[arg-type]


# -------------------------------------------------------------------- Lua, run atomically on the server

# Keys of one budget: ``plan`` (zset: planned time -> "id|cost", the line every booking joins),
# ``leases`` (zset: expiry -> member of a planned request not yet sent), ``sent`` (zset:
# commit time -> member, the window the service's limit is checked against) and ``state``
# (hash: store clock, pacing buckets, 429 episode). Budget figures travel with every call.

# Shared by the scripts: the store's clock (never behind a time it has already handed out,
# so a wall-clock step back cannot reorder commits), the slowdown factor after a 429, the
# window check, and removing a request from the line.
_LUA_COMMON = """
local P, L, C, S = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local eps = 1e-9
local function fmt(x) return string.format('%.17g', x) end
local function num(v, d) if v then return tonumber(v) end return d end
local function member_cost(member) return tonumber(string.match(member, '|(%d+)$')) end
local function store_now()
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local clock = num(redis.call('HGET', S, 'clock'), 0)
  if clock > now then now = clock end
  redis.call('HSET', S, 'clock', fmt(now))
  return now
end
local function touch(ttl)
  for _, k in ipairs(KEYS) do redis.call('EXPIRE', k, ttl) end
end
local function state()
  local st = redis.call('HMGET', S, 'q_debt', 't_debt', 'debt_at', 'pause_until', 'f0', 'recover_from', 'episode_at')
  return {q_debt = num(st[1], 0), t_debt = num(st[2], 0), debt_at = num(st[3], nil), pause_until = num(st[4], 0),
    f0 = num(st[5], 1), recover_from = num(st[6], 0), episode_at = num(st[7], -1)}
end
local function factor(st, at, window)
  if at <= st.recover_from then return st.f0 end
  if st.f0 >= 1 then return 1 end
  return math.min(1, st.f0 + (1 - st.f0) * (at - st.recover_from) / window)
end
-- Earliest time >= at at which ``count`` + 1 requests and ``cost`` more tokens fit the
-- members of ``key`` in (at - span, at], given the caps.
local function fit(key, at, span, cost, cap_q, cap_t)
  local inside = redis.call('ZRANGEBYSCORE', key, '(' .. fmt(at - span), '+inf', 'WITHSCORES')
  local count, total, costs = #inside / 2, 0, {}
  for i = 1, count do
    costs[i] = member_cost(inside[2 * i - 1])
    total = total + costs[i]
  end
  local i = 1
  while count + 1 > cap_q or total + cost > cap_t do
    at = math.max(at, tonumber(inside[2 * i]) + span)
    count = count - 1
    total = total - costs[i]
    i = i + 1
  end
  return at
end
-- Commit ``member`` at ``now`` if the sent window and the pause allow; else the time to retry.
local function commit(member, cost, now, st, qpm, tpm, window, span)
  if now < st.pause_until then return st.pause_until end
  redis.call('ZREMRANGEBYSCORE', C, '-inf', fmt(now - span))
  local f = factor(st, now, window)
  local cap_q = math.max(1, math.floor(qpm * f + eps))
  local cap_t = math.max(math.floor(tpm * f + eps), cost)
  local at = fit(C, now, span, cost, cap_q, cap_t)
  if at > now then return at end
  redis.call('ZADD', C, fmt(now), member)
  redis.call('ZREM', L, member)
  redis.call('HINCRBY', S, 'granted', 1)
  return nil
end
-- A request leaves the line and the window: the pacing buckets give back what it took.
local function release(member, credit)
  redis.call('ZREM', L, member)
  local planned = redis.call('ZREM', P, member)
  local sent = redis.call('ZREM', C, member)
  if planned == 0 and sent == 0 then return 0 end
  local st = state()
  redis.call('HSET', S, 'q_debt', fmt(math.max(-credit, st.q_debt - 1)),
    't_debt', fmt(math.max(0, st.t_debt - member_cost(member))))
  if planned == 1 and sent == 0 then redis.call('HINCRBY', S, 'removed', 1) end
  return 1
end
-- Planned requests whose owner stopped renewing (a killed worker) leave the line.
local function expire_leases(now)
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', L, '-inf', fmt(now))) do
    redis.call('ZREM', L, member)
    redis.call('ZREM', P, member)
    redis.call('HINCRBY', S, 'removed', 1)
  end
end
-- Plan ``member`` at the end of the line: the earliest time the pacing buckets and the planned
-- window allow after the newest planned request (never before a pause ends).
local function plan(member, cost, now, qpm, tpm, window, span, credit, burst)
  local st = state()
  local debt_at = st.debt_at or now
  local newest = redis.call('ZRANGE', P, -1, -1, 'WITHSCORES')
  local start = now
  if newest[2] and tonumber(newest[2]) > start then start = tonumber(newest[2]) end
  if debt_at > start then
    -- The newest requests left the line (a killed worker, releases): pace from the newest one
    -- still in it, not from slots nobody will use.
    if newest[2] then
      st.q_debt, st.t_debt = math.min(st.q_debt, 1), math.min(st.t_debt, member_cost(newest[1]))
      debt_at = tonumber(newest[2])
    else
      st.q_debt, st.t_debt, debt_at = 0, 0, now
    end
  end
  local f = factor(st, now, window)
  local rq, rt = qpm * f, tpm * f
  local elapsed = math.max(0, start - debt_at)
  local qd = st.q_debt - elapsed * rq / span
  if qd < -credit then qd = 0 end
  local td = math.max(0, st.t_debt - elapsed * rt / span)
  local at = math.max(start, st.pause_until)
  if qd > 0 then at = math.max(at, start + qd * span / rq) end
  if td > burst * rt then at = math.max(at, start + (td - burst * rt) * span / rt) end
  at = fit(P, at, span, cost, math.max(1, math.floor(rq + eps)), math.max(math.floor(rt + eps), cost))
  local gone = math.max(0, at - debt_at)
  local q_after = st.q_debt - gone * rq / span
  -- Credit only absorbs a late wake-up; an idle spell or a pause banks nothing.
  if q_after < -credit or at <= st.pause_until then q_after = math.max(0, q_after) end
  local t_after = math.max(0, st.t_debt - gone * rt / span)
  redis.call('ZADD', P, fmt(at), member)
  redis.call('HSET', S, 'q_debt', fmt(q_after + 1), 't_debt', fmt(t_after + cost),
    'debt_at', fmt(math.max(at, debt_at)))
  return at, st
end
-- Plan every request still waiting in the line again, in its order, at today's pace.
local function replan(now, qpm, tpm, window, span, credit, burst)
  local waiting = {}
  for _, member in ipairs(redis.call('ZRANGE', P, 0, -1)) do
    if redis.call('ZSCORE', L, member) then table.insert(waiting, member) end
  end
  for _, member in ipairs(waiting) do redis.call('ZREM', P, member) end
  for _, member in ipairs(waiting) do plan(member, member_cost(member), now, qpm, tpm, window, span, credit, burst) end
  redis.call('HSET', S, 'replanned_at', fmt(now))
end
"""

# Join the line: plan the request at the earliest time the buckets and the planned window
# allow after the last planned one; commit it at once when that time has come.
# ARGV: cost, qpm, tpm, window, margin, lease, entry id, ttl, request credit, token burst fraction
# Returns {2, 0, made, 0} when committed (send now), else {1, wait, made, removals}: come back
# after ``wait``.
_LUA_BOOK = (
    _LUA_COMMON
    + """
local cost, qpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local window, margin = tonumber(ARGV[4]), tonumber(ARGV[5])
local lease, entry, ttl = tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8])
local credit, burst = tonumber(ARGV[9]), tonumber(ARGV[10])
local span = window + margin
local now = store_now()
expire_leases(now)
redis.call('ZREMRANGEBYSCORE', P, '-inf', fmt(now - span))
local member = entry .. '|' .. cost
local at, st = plan(member, cost, now, qpm, tpm, window, span, credit, burst)
touch(ttl)
if at <= now then
  local retry = commit(member, cost, now, st, qpm, tpm, window, span)
  if not retry then return {2, '0', fmt(now), 0} end
  at = retry
end
redis.call('ZADD', L, fmt(now + lease), member)
return {1, fmt(at - now), fmt(now), num(redis.call('HGET', S, 'removed'), 0)}
"""
)

# A planned request's owner renews its lease while it waits, and commits once its time has come.
# ARGV: member, store time it was planned, cost, qpm, tpm, window, margin, lease, request credit, ttl,
#       removals seen (the state's 'removed' counter when it last looked), token burst fraction,
#       re-plan interval while recovering from a 429
# Returns {2, 0, now} when committed (send now), {1, wait, removals} to come back after
# ``wait``, or {0, 'expired'} when its lease lapsed and it must book again.
_LUA_RENEW = (
    _LUA_COMMON
    + """
local member, cost = ARGV[1], tonumber(ARGV[3])
local qpm, tpm, window, margin = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local lease, credit, ttl = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local seen, burst, every = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local span = window + margin
local now = store_now()
expire_leases(now)
if not redis.call('ZSCORE', L, member) then
  redis.call('ZREM', P, member)
  return {0, 'expired'}
end
local st = state()
touch(ttl)
if now < st.recover_from + window and now - num(redis.call('HGET', S, 'replanned_at'), 0) >= every then
  -- The pace is recovering from a 429: the line planned at the slowed pace is planned again
  -- at today's, at most once per renewal interval.
  replan(now, qpm, tpm, window, span, credit, burst)
end
local at = tonumber(redis.call('ZSCORE', P, member) or '0')
local removed = num(redis.call('HGET', S, 'removed'), 0)
if at > now and removed > seen then
  -- Requests ahead left the line (a killed worker, a release): close the gap behind the one
  -- before us at the pace the buckets keep, rather than wait for slots nobody will use.
  local rank = redis.call('ZRANK', P, member)
  local close = now
  if rank > 0 then
    local prev = redis.call('ZRANGE', P, rank - 1, rank - 1, 'WITHSCORES')
    local f = factor(st, now, window)
    close = math.max(now, tonumber(prev[2]) + math.max(span / (qpm * f), member_cost(prev[1]) * span / (tpm * f)))
  end
  if close < at then
    at = close
    redis.call('ZADD', P, fmt(at), member)
  end
end
if at <= now then
  local retry = commit(member, cost, now, st, qpm, tpm, window, span)
  if not retry then return {2, '0', fmt(now)} end
  at = retry
end
redis.call('ZADD', L, fmt(now + lease), member)
return {1, fmt(at - now), removed}
"""
)

# ARGV: old member, new member, cost delta. Returns 1 if the request was still counted.
_LUA_SETTLE = (
    _LUA_COMMON
    + """
local found = 0
for _, key in ipairs({P, C}) do
  local score = redis.call('ZSCORE', key, ARGV[1])
  if score then
    redis.call('ZREM', key, ARGV[1])
    redis.call('ZADD', key, score, ARGV[2])
    found = 1
  end
end
if found == 1 then
  redis.call('HSET', S, 't_debt', fmt(math.max(0, state().t_debt + tonumber(ARGV[3]))))
end
return found
"""
)

# ARGV: member, request credit. Returns 1 if the request was still counted.
_LUA_RELEASE = (
    _LUA_COMMON
    + """
return release(ARGV[1], tonumber(ARGV[2]))
"""
)

# ARGV: retry_after or '', commit time of the refused request or '', window, ttl,
#       backoff base, slowdown factor, min rate factor, qpm, tpm, margin, request credit,
#       token burst fraction.
# Returns {1, pause, new factor} for a new episode, {0, pause left, factor} for the same one.
_LUA_RATE_LIMITED = (
    _LUA_COMMON
    + """
local window, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local now = store_now()
local st = state()
local episodes = num(redis.call('HGET', S, 'episodes'), 0)
local given = nil
if ARGV[1] ~= '' then given = math.min(tonumber(ARGV[1]), window) end
touch(ttl)
if now < st.pause_until or (ARGV[2] ~= '' and tonumber(ARGV[2]) <= st.episode_at) then
  if given then
    local pause_until = math.max(st.pause_until, now + given)
    redis.call('HSET', S, 'pause_until', fmt(pause_until), 'recover_from', fmt(math.max(st.recover_from, pause_until)))
    st.pause_until = pause_until
  end
  return {0, fmt(math.max(0, st.pause_until - now)), fmt(factor(st, now, window))}
end
local f = factor(st, now, window)
if f < 1 then episodes = episodes + 1 else episodes = 1 end
local pause = given
if not pause then pause = math.min(tonumber(ARGV[5]) * 2 ^ (episodes - 1), window) end
local f0 = math.max(tonumber(ARGV[7]), f * tonumber(ARGV[6]))
local pause_until = math.max(st.pause_until, now + pause)
redis.call('HSET', S, 'pause_until', fmt(pause_until), 'f0', fmt(f0), 'recover_from', fmt(pause_until),
  'episode_at', fmt(now), 'episodes', episodes)
redis.call('HINCRBY', S, 'rate_limited', 1)
-- Every request still waiting in the line, in its order, is planned again after the pause at
-- the slowed pace (their owners see the new time at their next renewal).
local qpm, tpm, margin = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
replan(now, qpm, tpm, window, window + margin, tonumber(ARGV[11]), tonumber(ARGV[12]))
return {1, fmt(pause), fmt(f0)}
"""
)

# ARGV: span, window. Returns usage for snapshot().
_LUA_SNAPSHOT = (
    _LUA_COMMON
    + """
local span, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = store_now()
local inside = redis.call('ZRANGEBYSCORE', C, '(' .. fmt(now - span), fmt(now))
local tokens = 0
for _, member in ipairs(inside) do tokens = tokens + member_cost(member) end
local st = state()
local counts = redis.call('HMGET', S, 'granted', 'rate_limited')
return {#inside, tokens, redis.call('ZCARD', L), fmt(math.max(0, st.pause_until - now)),
  fmt(factor(st, now, window)), num(counts[1], 0), num(counts[2], 0)}
"""
)


# -------------------------------------------------------------------- redis clients: one per URL and process,
# -------------------------------------------------------------------- and one per URL and event loop

_SCRIPTS: tuple[tuple[str, str], ...] = (
    ("book", _LUA_BOOK),
    ("renew", _LUA_RENEW),
    ("settle", _LUA_SETTLE),
    ("release", _LUA_RELEASE),
    ("rate_limited", _LUA_RATE_LIMITED),
    ("snapshot", _LUA_SNAPSHOT),
)


@dataclass(frozen=True)
class _Store:
    """A redis client for one URL and the limiter's scripts registered on it."""

    client: Any
    scripts: dict[str, Any]


def _connect(url: str, *, asynchronous: bool) -> _Store:
    """A new client for ``url``: ``redis.Redis`` (thread-safe pool) or ``redis.asyncio.Redis``
    (its pool belongs to the event loop it first runs in), with the same options and scripts."""
    # lazy: redis is the optional [redis] extra, needed only with extra.budget_store
    import redis
    import redis.asyncio
    import redis.asyncio.retry
    import redis.retry
    from redis.backoff import NoBackoff

    kind, retry = (redis.asyncio.Redis, redis.asyncio.retry.Retry) if asynchronous else (redis.Redis, redis.retry.Retry)
    client = kind.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        health_check_interval=30,
        # One quick retry covers a pooled connection the server closed; an unreachable
        # store must fail the call within seconds, not after a long backoff.
        retry=retry(NoBackoff(), 1),
    )
    return _Store(client, {name: client.register_script(text) for name, text in _SCRIPTS})


_clients: dict[str, _Store] = {}
_clients_lock = threading.Lock()


def _redis_store(url: str) -> _Store:
    """The process's sync client for ``url`` (thread-safe connection pool; fork-safe)."""
    with _clients_lock:
        store = _clients.get(url)
        if store is None:
            store = _clients[url] = _connect(url, asynchronous=False)
        return store


@dataclass
class _LoopStores:
    """The async clients of one event loop, and the task that closes them when the loop ends."""

    stores: dict[str, _Store] = field(default_factory=dict)
    keeper: asyncio.Task[None] | None = None


# Held weakly: a loop dropped without being shut down takes its clients with it.
_loop_stores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopStores] = weakref.WeakKeyDictionary()
_inherited: list[Any] = []  # async clients a forked child got from its parent: kept, never closed


async def _close_at_loop_end(held: _LoopStores) -> None:
    """Sleeps until the loop's end cancels it (``asyncio.run``, ``Runner.close``), then closes
    the loop's clients; in a forked child it only forgets them (the sockets are the parent's)."""
    loop, pid = asyncio.get_running_loop(), os.getpid()
    try:
        await loop.create_future()
    finally:
        if _loop_stores.get(loop) is held:
            del _loop_stores[loop]
        stores = list(held.stores.values())
        held.stores.clear()
        for store in stores if os.getpid() == pid else ():
            with contextlib.suppress(Exception):
                await store.client.aclose()


def _aredis_store(url: str) -> _Store:
    """The running loop's async client for ``url``, made on first use in that loop.

    Never blocks the loop: making the client opens no connection (the first call does, awaited).
    """
    loop = asyncio.get_running_loop()
    held = _loop_stores.get(loop)
    if held is None:
        held = _loop_stores[loop] = _LoopStores()
        held.keeper = loop.create_task(_close_at_loop_end(held), name="clova-budget-store-clients")
    store = held.stores.get(url)
    if store is None:
        store = held.stores[url] = _connect(url, asynchronous=True)
    return store


def _store_errors() -> tuple[type[BaseException], ...]:
    # lazy: redis is the optional [redis] extra, needed only with extra.budget_store
    import redis

    return (redis.RedisError, OSError)


def check_store(settings: StoreSettings) -> str:
    """For the connection's Test button: reach the store and run a script on it.

    The limiter books through Lua scripts, so a store that answers PING but refuses EVAL (a
    proxy or managed service with scripting off) would fail every task; the check runs one.
    Returns a short description, or raises :class:`ClovaStudioBudgetStoreError` naming the fix
    (the password never appears).
    """
    failures: tuple[type[BaseException], ...] = (*_store_errors(), ValueError)
    try:
        client = _redis_store(settings.url).client
        client.ping()
        if client.eval("return 1", 0) != 1:
            raise ValueError("the store ran a script but did not return its answer")
    except failures as exc:
        reason = _scrub(f"{type(exc).__name__}: {exc}", settings.url).rstrip(".")
        raise ClovaStudioBudgetStoreError(
            f"budget store {settings.display} (extra.budget_store) cannot be used: {reason}. Fix: start Redis "
            "(with scripting enabled) or correct the URL and password in the connection's extra.budget_store"
        ) from None
    try:  # the limiter never needs INFO; a store whose ACL refuses it still passes
        version = client.info("server").get("redis_version", "unknown version")
    except failures:
        version = "version unknown (INFO not allowed)"
    return f"budget store {settings.display}: OK, Redis {version}, scripts run (fallback: {settings.fallback})"


# -------------------------------------------------------------------- the limiter


@dataclass
class _Booking:
    """A request's place in the shared line, until it is committed and sent."""

    member: str
    cost: int
    #: Store clock time it joined the line (a 429 episode after it makes it plan again).
    made: float
    committed_at: float = 0.0
    #: The store's count of requests that left the line, when this one last looked.
    removed: int = 0


class StoreReservation:
    """A sent booking in the shared window; correct it once the response is in (as :class:`Reservation`)."""

    __slots__ = ("_cost", "_entry", "_limiter", "_live", "estimate", "granted_at")

    def __init__(self, limiter: StoreLimiter, booking: _Booking) -> None:
        self._limiter = limiter
        self._entry = booking.member.rpartition("|")[0]
        self._cost = booking.cost
        self._live = True
        #: The cost reserved at booking.
        self.estimate = booking.cost
        #: Store clock time the request was committed (sent).
        self.granted_at = booking.committed_at

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
        change = self._settling(actual_cost)
        if change:
            self._limiter._write("settle", change)

    async def asettle(self, actual_cost: int) -> None:
        """As :meth:`settle`, awaited on the running loop's client."""
        change = self._settling(actual_cost)
        if change:
            await self._limiter._awrite("settle", change)

    def _settling(self, actual_cost: int) -> list[Any]:
        """The settle script's arguments (old member, new member, cost delta); empty: nothing to do."""
        if isinstance(actual_cost, bool) or not isinstance(actual_cost, int) or actual_cost < 0:
            raise ValueError(f"actual_cost must be a non-negative integer, got {actual_cost!r}")
        if not self._live or actual_cost == self._cost:
            return []
        old = self.member
        delta, self._cost = actual_cost - self._cost, actual_cost
        return [old, self.member, delta]

    def release(self) -> None:
        """The request did not count (never sent, or refused with 429). Idempotent."""
        if self._releasing():
            self._limiter._write("release", self._limiter._release_args(self.member))

    async def arelease(self) -> None:
        """As :meth:`release`, awaited on the running loop's client."""
        if self._releasing():
            await self._limiter._awrite("release", self._limiter._release_args(self.member))

    def _releasing(self) -> bool:
        live, self._live = self._live, False
        return live

    def __repr__(self) -> str:
        return f"StoreReservation(cost={self.cost}, granted_at={self.granted_at:.3f}, released={self.released})"


@dataclass(frozen=True)
class _Io:
    """The I/O of one wait: how to run a script on the store, sleep, and wait on the fallback
    limiter instead. Blocking functions wrapped by ``as_async`` or real awaitables."""

    run: Callable[[str, list[Any]], Awaitable[Any]]
    sleep: Callable[[float], Awaitable[Any]]
    local: Callable[[RateLimiter, int], Awaitable[Reservation]]


class StoreLimiter(PacedWindow):
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
        if not math.isfinite(poll_seconds) or poll_seconds <= 0:
            raise ClovaStudioConfigError(f"poll_seconds must be a positive number, got {poll_seconds!r}")
        self._poll = float(poll_seconds)
        self._sleep = sleep
        self._asleep = asleep
        self._lock = threading.Lock()
        self._down_until = -math.inf
        self._budget = budget
        self._window = window_seconds
        self._margin = 0.0
        self.reconfigure(budget, window_seconds=window_seconds)
        # One hash tag: every key of a budget lands on the same Redis Cluster slot.
        base = f"{KEY_PREFIX}:{{{':'.join(key)}}}"
        self._keys = [f"{base}:plan", f"{base}:leases", f"{base}:sent", f"{base}:state"]

    def reconfigure(self, budget: Budget | None = None, *, window_seconds: float | None = None) -> None:
        """Change the budget or window; every call sends them, so the store keeps no stale copy."""
        self._budget, self._window, self._margin = self._check_window(
            budget if budget is not None else self._budget,
            window_seconds if window_seconds is not None else self._window,
        )

    @property
    def renew_seconds(self) -> float:
        """How often a waiting owner renews its booking (and notices a 429 pause)."""
        return min(self._poll, RENEW_FRACTION * self._window)

    @property
    def lease_seconds(self) -> float:
        """A booking whose owner has not renewed it for this long is dropped (a killed worker)."""
        return LEASE_RENEWALS * self.renew_seconds

    def _ttl(self) -> int:
        return math.ceil(TTL_SPANS * self.span_seconds + 60)

    # ---------------------------------------------------------------- store calls

    def _run(self, name: str, args: list[Any]) -> Any:
        """Run script ``name`` on this budget's keys with the process's sync client."""
        store = _redis_store(self.settings.url)
        return store.scripts[name](keys=self._keys, args=args, client=store.client)

    async def _arun(self, name: str, args: list[Any]) -> Any:
        """As :meth:`_run`, awaited on the running loop's async client (no thread hop)."""
        store = _aredis_store(self.settings.url)
        return await store.scripts[name](keys=self._keys, args=args, client=store.client)

    def _unreachable(self, exc: BaseException) -> RateLimiter:
        """The fallback limiter, or :class:`ClovaStudioBudgetStoreError` naming the fix."""
        reason = _scrub(f"{type(exc).__name__}: {exc}", self.settings.url).rstrip(".")
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

    def _figures(self) -> list[Any]:
        return [self._budget.qpm, self._budget.tpm, repr(self._window), repr(self._margin)]

    # ---------------------------------------------------------------- the wait: decisions without I/O

    def _call_for(self, booking: _Booking | None, cost: int) -> tuple[str, list[Any], _Booking]:
        """The next script of the wait and its arguments: join the line (no booking yet), or
        renew the booking's lease and commit it once due. Returns the booking the reply is for."""
        if booking is None:
            entry = os.urandom(8).hex()
            booking = _Booking(f"{entry}|{cost}", cost, made=0.0)
            args = [
                cost,
                *self._figures(),
                repr(self.lease_seconds),
                entry,
                self._ttl(),
                repr(REQUEST_CREDIT),
                repr(TOKEN_BURST_FRACTION),
            ]
            return "book", args, booking
        args = [
            booking.member,
            repr(booking.made),
            booking.cost,
            *self._figures(),
            repr(self.lease_seconds),
            repr(REQUEST_CREDIT),
            self._ttl(),
            booking.removed,
            repr(TOKEN_BURST_FRACTION),
            repr(self.renew_seconds / 2),
        ]
        return "renew", args, booking

    def _step(self, name: str, booking: _Booking, reply: Any) -> tuple[_Booking | None, float, bool]:
        """The store's reply to ``_call_for``'s script, decided: (booking, seconds to sleep, send now?).

        A booking of None means its lease lapsed and the next step books again.
        """
        if name == "book":
            status, left, made, removed = reply
            booking.made, booking.removed = float(made), int(removed)
            if status == 2:
                booking.committed_at = booking.made
        elif not reply[0]:
            log.debug("%s: planned request %s; booking again", self.name, reply[1].decode())
            return None, 0.0, False
        else:
            status, left = reply[0], reply[1]
            if status == 2:
                booking.committed_at = float(reply[2])
            else:
                booking.removed = int(reply[2])
        if status == 2:
            return booking, 0.0, True
        return booking, max(_MIN_SLEEP, min(self.renew_seconds, max(0.0, float(left)))), False

    async def _acquire(self, cost: int, io: _Io) -> StoreReservation | Reservation:
        """The one wait, run by ``acquire`` (blocking I/O) and ``aacquire`` (awaited I/O)."""
        fallen = self._fallen_back()
        if fallen is not None:
            return await io.local(fallen, cost)
        self._check_cost(cost)
        booking: _Booking | None = None
        started, logged = time.monotonic(), False
        try:
            while True:
                name, args, booking = self._call_for(booking, cost)  # interrupted from here on: released
                try:
                    reply = await io.run(name, args)
                except _store_errors() as exc:
                    booking = None
                    return await io.local(self._unreachable(exc), cost)
                booking, wait, go = self._step(name, booking, reply)
                if go and booking is not None:
                    reservation, booking = StoreReservation(self, booking), None
                    return reservation
                logged = self._log_wait(started, logged)
                await io.sleep(max(_MIN_SLEEP, wait))
        finally:
            if booking is not None:  # interrupted while waiting: give the slot back
                with contextlib.suppress(*_store_errors()):
                    await io.run("release", self._release_args(booking.member))

    def _release_args(self, member: str) -> list[Any]:
        return [member, repr(REQUEST_CREDIT)]

    # ---------------------------------------------------------------- public calls

    def acquire(self, cost: int) -> StoreReservation | Reservation:
        """Block until a request of ``cost`` tokens may be sent; book it in the shared window."""
        io = _Io(as_async(self._run), as_async(self._sleep), as_async(lambda local, cost: local.acquire(cost)))
        return run_blocking(self._acquire(cost, io))

    async def aacquire(self, cost: int) -> StoreReservation | Reservation:
        """Await until a request of ``cost`` tokens may be sent; the store is awaited on this
        loop's async client, so no store call waits for a thread of the default executor."""
        return await self._acquire(cost, _Io(self._arun, self._asleep, lambda local, cost: local.aacquire(cost)))

    def _log_wait(self, started: float, logged: bool) -> bool:
        if not logged and time.monotonic() - started >= _LOG_WAIT_SECONDS:
            log.info("%s: waiting for budget in the shared store %s", self.name, self.settings.display)
            return True
        return logged

    def on_rate_limited(self, retry_after: float | None = None, *, reservation: Any = None) -> None:
        """The service answered 429: pause and slow down every caller of this budget, everywhere."""
        if not self._fallback_429(retry_after, reservation):
            self._said_429(self._write("rate_limited", self._rate_limited_args(retry_after, reservation)))

    async def aon_rate_limited(self, retry_after: float | None = None, *, reservation: Any = None) -> None:
        """As :meth:`on_rate_limited`, awaited on the running loop's client."""
        if not self._fallback_429(retry_after, reservation):
            self._said_429(await self._awrite("rate_limited", self._rate_limited_args(retry_after, reservation)))

    def _fallback_429(self, retry_after: float | None, reservation: Any) -> bool:
        """A 429 for a request the static fallback let through is that limiter's to handle."""
        if isinstance(reservation, Reservation) and self._fallback_factory is not None:
            self._fallback_factory().on_rate_limited(retry_after, reservation=reservation)
            return True
        return False

    def _rate_limited_args(self, retry_after: float | None, reservation: Any) -> list[Any]:
        given = (
            repr(float(retry_after))
            if isinstance(retry_after, (int, float))
            and not isinstance(retry_after, bool)
            and math.isfinite(retry_after)
            and retry_after >= 0
            else ""
        )
        granted = repr(reservation.granted_at) if isinstance(reservation, StoreReservation) else ""
        return [
            given,
            granted,
            repr(self._window),
            self._ttl(),
            repr(BACKOFF_BASE_SECONDS),
            repr(SLOWDOWN_FACTOR),
            repr(MIN_RATE_FACTOR),
            *self._figures()[:2],
            repr(self._margin),
            repr(REQUEST_CREDIT),
            repr(TOKEN_BURST_FRACTION),
        ]

    def _said_429(self, reply: Any) -> None:
        if reply is None:  # not recorded (the store is down): already logged
            return
        new, pause, slowed_to = reply
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

    _WRITES = {"settle": "settle a booking", "release": "release a booking", "rate_limited": "record a 429"}

    def _write(self, name: str, args: list[Any]) -> Any:
        """Run a script that corrects the shared window; a store error is logged, not raised
        (the answer is in, and the window heals within a span): None then."""
        try:
            return self._run(name, args)
        except _store_errors() as exc:
            self._not_written(name, exc)
            return None

    async def _awrite(self, name: str, args: list[Any]) -> Any:
        """As :meth:`_write`, awaited on the running loop's client."""
        try:
            return await self._arun(name, args)
        except _store_errors() as exc:
            self._not_written(name, exc)
            return None

    def _not_written(self, name: str, exc: BaseException) -> None:
        log.warning("%s: could not %s in the budget store (%s)", self.name, self._WRITES[name], type(exc).__name__)

    def snapshot(self) -> dict[str, Any]:
        """Usage of the shared window now, as :meth:`RateLimiter.snapshot` reports it."""
        return self._usage(self._run("snapshot", self._snapshot_args()))

    async def asnapshot(self) -> dict[str, Any]:
        """As :meth:`snapshot`, awaited on the running loop's client (and readies it for ``aacquire``)."""
        return self._usage(await self._arun("snapshot", self._snapshot_args()))

    def _snapshot_args(self) -> list[Any]:
        return [repr(self.span_seconds), repr(self._window)]

    def _usage(self, reply: Any) -> dict[str, Any]:
        used_q, used_t, waiting, paused, factor, granted, limited = reply
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
    """Forget every store-backed limiter and sync redis client of this process (tests).

    Async clients belong to their event loop and are closed when it ends.
    """
    with _registry_lock:
        _registry.clear()
    with _clients_lock:
        for store in _clients.values():
            with contextlib.suppress(Exception):
                store.client.close()
        _clients.clear()


def _after_fork_in_child() -> None:
    global _registry_lock, _clients_lock
    _registry_lock = threading.Lock()
    _clients_lock = threading.Lock()
    _registry.clear()
    _clients.clear()
    _inherited.append(dict(_loop_stores))
    _loop_stores.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
