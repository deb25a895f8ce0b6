"""How close the provider's limiter runs to CLOVA Studio's QPM/TPM budgets, and at what cost in 429s.

One run starts the bundled emulator (a subprocess on loopback, ``--port 0``) with a shortened
rate window and custom limits, so that a run of several windows takes seconds, and measures:

(a) QPM-bound mix (short prompts, maxTokens 16) through the provider's async client, one process;
(b) TPM-bound mix (Korean prompts, maxTokens 500-1000) the same way;
(c) both mixes again split over K processes that share a pool of S slots: each process takes
    S/K slots and paces at ``budget x slots / S`` (``pools.share_for_pool``), as Airflow tasks
    in a CLOVA pool do; the processes start together at an agreed wall-clock time;
(d) both mixes from a naive client: raw httpx, the same concurrency, fire at will, retry a 429
    after a short random backoff.

Measures, per scenario: achieved rate / limit = (served / elapsed) / (budget / window), for
requests (QPM) and tokens charged (TPM = input tokens + maxTokens); elapsed runs from the
first send to the last answer. Each mix is sized to at least ``WINDOWS`` windows of its binding
budget. The emulator's own ``/_emulator/stats`` gives the 429 count and the most requests and
tokens it ever saw in one rolling window; for the provider these must never exceed the limit.

"steady" is the same rate counted over whole windows after the first one, which removes the
naive client's free initial burst (a client that fires a window's budget at t=0 looks faster
than the limit over a short run) and start-up effects from the comparison.

Cold start: every client first makes one read that spends no budget (a tuning list page), so
the connection and lazily imported modules are ready when the timed run begins. With the
real 60 s window the limiter's 1 s margin easily absorbs a first request's set-up; with the
bench's shortened window the margin is 2.5% of it (75 ms at 3 s), less than the set-up of a
cold process on a loaded machine, which is an artefact of shortening the window.

Goals: >= 0.97 of the binding limit with zero 429s in one process; >= 0.90 with zero 429s
across processes. Note that a burst-free limiter cannot beat ``window / (window + margin)``
(its jitter margin, 2.5% of a short window), and that a naive client looks faster than the
limit on this measure because it spends the first window's whole budget at t=0.

    python bench/rate_budget.py [--window 3] [--windows 6] [--processes 3] [--slots 3]

``--deployment`` runs the scenarios of a real deployment instead (issue 12), each with and
without the shared budget store (a real ``redis-server`` started here, ``extra.budget_store``):
the limiter alone in one process; one task alone in the default 4-slot pool (statically it
paces at a quarter of the budget); ten worker processes in one 10-slot pool. Goals: with the
store a lone task >= 0.95 of the budget and ten processes >= 0.97 together with zero 429s;
without it, zero 429s. Run it at the real 60 s window too (a few minutes per row):

    python bench/rate_budget.py --deployment [--window 4] [--windows 6] [--mixes qpm,tpm]
    python bench/rate_budget.py --deployment --qpm 80 --window 4 --windows 6
    python bench/rate_budget.py --deployment --qpm 80 --window 60 --windows 3 --mixes qpm
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

READY = re.compile(r"CLOVA Studio emulator listening on (http://\S+)")
ACCESS_KEY, SECRET_KEY, API_KEY = "AK", "SK", "KEY"
CONCURRENCY = 16
#: Emulator speed: a chat answer takes 0.05 x (0.3 s + 10 ms per output token).
TIME_SCALE = 0.05
QPM_MODEL, TPM_MODEL = "HCX-005", "HCX-DASH-002"
GOAL_ONE, GOAL_MANY = 0.97, 0.90

KOREAN = "하이퍼클로바엑스는네이버의대규모언어모델입니다에어플로우로배치추론을돌립니다"


def limits_for(window: float, qpm: int = 48) -> dict[str, dict[str, int]]:
    """Budgets per window. QPM divisible by common process counts, so shares are whole requests."""
    del window
    return {QPM_MODEL: {"qpm": qpm, "tpm": 1_000_000}, TPM_MODEL: {"qpm": 600, "tpm": 24_000}}


@dataclass(frozen=True)
class Request:
    messages: list[dict[str, str]]
    max_tokens: int


@dataclass(frozen=True)
class Mix:
    name: str
    model: str
    binding: str  # "qpm" or "tpm"
    requests: list[Request]


def make_mixes(limits: dict[str, dict[str, int]], windows: int) -> dict[str, Mix]:
    rng = random.Random(7)
    qpm = limits[QPM_MODEL]["qpm"]
    small = [Request([{"role": "user", "content": f"Say hi to user {i}"}], 16) for i in range(qpm * windows)]
    tpm = limits[TPM_MODEL]["tpm"]
    big: list[Request] = []
    total = 0
    while total < tpm * windows:
        text = "".join(rng.choice(KOREAN) for _ in range(rng.randint(20, 120)))
        request = Request([{"role": "user", "content": text}], rng.randint(500, 1000))
        big.append(request)
        total += 4 + len(text) + request.max_tokens  # the emulator's count: 4 + one token per Hangul
    return {"qpm": Mix("QPM", QPM_MODEL, "qpm", small), "tpm": Mix("TPM", TPM_MODEL, "tpm", big)}


# -- emulator ---------------------------------------------------------------------------------


@dataclass
class Emulator:
    url: str
    process: subprocess.Popen[str]

    def call(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(f"{self.url}{path}", method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def start_emulator(limits: dict[str, Any], window: float) -> Emulator:
    with tempfile.NamedTemporaryFile("w", prefix="bench-limits-", suffix=".json", delete=False) as handle:
        json.dump(limits, handle)
    argv = [sys.executable, "-m", "airflow_provider_clova.testing.emulator", "--host", "127.0.0.1", "--port", "0"]
    argv += ["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY, "--api-key", API_KEY]
    argv += ["--limits", handle.name, "--rate-window-seconds", str(window), "--time-scale", str(TIME_SCALE)]
    argv += ["--log-level", "warning"]
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    for line in process.stdout:
        found = READY.search(line)
        if found:
            # keep draining so the child never blocks on a full pipe
            threading.Thread(target=lambda: [None for _ in process.stdout or ()], daemon=True).start()
            return Emulator(found.group(1), process)
        if time.monotonic() > deadline:
            break
    process.kill()
    raise RuntimeError("the emulator did not start")


# -- clients ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    started: float
    ended: float = 0.0
    served: int = 0
    tokens: int = 0
    client_429s: int = 0
    #: (wall time of the answer, tokens charged) per request, for the steady-state rate.
    done: list[tuple[float, int]] = field(default_factory=list)


async def _pump(requests: list[Request], send: Callable[[Request], Any], outcome: Outcome, concurrency: int) -> None:
    queue: asyncio.Queue[Request] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)

    async def worker() -> None:
        while not queue.empty():
            request = queue.get_nowait()
            prompt = await send(request)
            outcome.served += 1
            outcome.tokens += prompt + request.max_tokens
            outcome.ended = time.time()
            outcome.done.append((outcome.ended, prompt + request.max_tokens))

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def run_provider(
    url: str,
    mix: Mix,
    limits: dict[str, Any],
    window: float,
    *,
    share: float = 1.0,
    start_at: float | str | None = None,
    store: str | None = None,
) -> Outcome:
    """Send ``mix`` through the provider's async client and its limiter (shared store if given)."""
    from airflow_provider_clova.client.client import AsyncClovaStudioClient
    from airflow_provider_clova.client.config import config_from_connection

    extra: dict[str, Any] = {"limits": limits, "rate_window_seconds": window}
    if store:
        extra["budget_store"] = store
    # chat takes the API key: signature v2 is for the tuning API only
    config = config_from_connection(host=url, login=None, password=API_KEY, extra=extra)
    config = replace(config, rate_share=share)
    async with AsyncClovaStudioClient(config) as client:
        # Warm up (connection, lazily imported modules) with a read that spends no budget:
        # see "Cold start" in the module docstring.
        await client.list_tuning_tasks_page(0, 1)
        if store:  # and this loop's client of the store, with a call that books nothing
            call = client._chat_call([{"role": "user", "content": "."}], mix.model, None, {})
            await client._limiter_for(call).asnapshot()
        if start_at == "stdin":  # a child of run_processes: report ready, read the common start
            print("READY", flush=True)
            start_at = float(await asyncio.to_thread(sys.stdin.readline))
        if start_at is not None:
            await asyncio.sleep(max(0.0, float(start_at) - time.time()))
        outcome = Outcome(started=time.time())

        async def send(request: Request) -> int:
            result = await client.chat_completion(request.messages, model=mix.model, maxTokens=request.max_tokens)
            return result.usage.prompt_tokens

        await _pump(mix.requests, send, outcome, CONCURRENCY)
    return outcome


async def run_naive(url: str, mix: Mix) -> Outcome:
    """Raw httpx, same concurrency, no pacing: on 429 wait 50-250 ms and try again."""
    import httpx

    rng = random.Random(1)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        (await http.get("/tuning/v2/tasks", params={"page": 0, "size": 1})).raise_for_status()  # same warm-up
        outcome = Outcome(started=time.time())

        async def send(request: Request) -> int:
            body = {"messages": request.messages, "maxTokens": request.max_tokens}
            while True:
                response = await http.post(f"/v3/chat-completions/{mix.model}", json=body)
                if response.status_code != 429:
                    break
                outcome.client_429s += 1
                await asyncio.sleep(rng.uniform(0.05, 0.25))
            response.raise_for_status()
            return int(response.json()["result"]["usage"]["promptTokens"])

        await _pump(mix.requests, send, outcome, CONCURRENCY)
    return outcome


def run_processes(
    url: str,
    mix_key: str,
    processes: int,
    pool_size: int,
    window: float,
    windows: int,
    *,
    qpm: int = 48,
    store: str | None = None,
    task_slots: int | None = None,
) -> tuple[Outcome, float]:
    """``processes`` children, each with ``task_slots`` (default ``pool_size // processes``) slots
    of a pool of ``pool_size``; with ``store`` they draw from the shared budget store instead."""
    from airflow_provider_clova.pools import share_for_pool

    limits = limits_for(window, qpm)
    mix = make_mixes(limits, windows)[mix_key]
    slots = task_slots or pool_size // processes
    share = share_for_pool(mix.model, "test", slots, limits, slots=pool_size)

    def argv(k: int) -> list[str]:
        return [
            *(sys.executable, __file__, "--child", url, "--mix", mix_key, "--share", repr(share)),
            *("--part", f"{k}/{processes}", "--start-at", "stdin"),
            *("--window", str(window), "--windows", str(windows), "--qpm", str(qpm)),
            *(("--store", store) if store else ()),
        ]

    children = [
        subprocess.Popen(argv(k), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for k in range(processes)
    ]
    # Every child imports, connects and warms up first (seconds on a loaded machine), says
    # READY, and only then are all told one common start time.
    for child in children:
        assert child.stdout is not None
        line = child.stdout.readline()
        if line.strip() != "READY":
            raise RuntimeError(f"child did not get ready: {line!r}")
    start_at = time.time() + 0.5
    for child in children:
        assert child.stdin is not None
        child.stdin.write(f"{start_at!r}\n")
        child.stdin.flush()
    results = []
    for child in children:
        out, _ = child.communicate(timeout=60 * window + 600)
        if child.returncode != 0:
            raise RuntimeError(f"child failed with {child.returncode}: {out[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    total = Outcome(started=start_at)
    total.ended = max(r["ended"] for r in results)
    total.served = sum(r["served"] for r in results)
    total.tokens = sum(r["tokens"] for r in results)
    total.done = sorted((at, tokens) for r in results for at, tokens in r["done"])
    return total, share


def child_main(args: argparse.Namespace) -> None:
    limits = limits_for(args.window, args.qpm)
    mix = make_mixes(limits, args.windows)[args.mix]
    k, count = (int(x) for x in args.part.split("/"))
    mine = replace(mix, requests=mix.requests[k::count])
    outcome = asyncio.run(
        run_provider(args.child, mine, limits, args.window, share=args.share, start_at=args.start_at, store=args.store)
    )
    print(
        json.dumps({"ended": outcome.ended, "served": outcome.served, "tokens": outcome.tokens, "done": outcome.done})
    )


# -- report -----------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    mix: Mix
    outcome: Outcome
    stats: dict[str, Any]
    budget: dict[str, int]
    window: float
    provider: bool
    #: The share of the limit this scenario must reach (None: the default goals).
    goal: float | None = None

    @property
    def elapsed(self) -> float:
        return self.outcome.ended - self.outcome.started

    @property
    def req_ratio(self) -> float:
        return (self.outcome.served / self.elapsed) / (self.budget["qpm"] / self.window)

    @property
    def tok_ratio(self) -> float:
        return (self.outcome.tokens / self.elapsed) / (self.budget["tpm"] / self.window)

    @property
    def ratio(self) -> float:
        return self.req_ratio if self.mix.binding == "qpm" else self.tok_ratio

    @property
    def steady(self) -> float:
        """The binding rate / limit over whole windows after the first one.

        Counting from the end of the first window to the last whole window boundary removes
        the naive client's free initial burst and the fencepost of its burst-per-window pattern
        (the rate of a client that gets Q requests at the start of every window is Q per
        window, not Q x windows / (windows - 1)).
        """
        whole = int((self.outcome.ended - self.outcome.started) // self.window)
        if whole < 2:
            return self.ratio
        low, high = self.outcome.started + self.window, self.outcome.started + whole * self.window
        inside = [tokens for at, tokens in self.outcome.done if low <= at < high]
        seconds = high - low
        if self.mix.binding == "qpm":
            return (len(inside) / seconds) / (self.budget["qpm"] / self.window)
        return (sum(inside) / seconds) / (self.budget["tpm"] / self.window)

    @property
    def window_stats(self) -> dict[str, Any]:
        return next(w for w in self.stats["windows"] if w["model"] == self.mix.model)

    @property
    def emulator_429s(self) -> int:
        return sum(int(codes.get("429", 0)) for codes in self.stats["requests"].values())


def measure(emulator: Emulator, scenario: str, mix: Mix, run: Callable[[], Outcome], **info: Any) -> Row:
    emulator.call("/_emulator/reset", "POST")
    outcome = run()
    stats = emulator.call("/_emulator/stats")
    row = Row(
        scenario, mix, outcome, stats, info["limits"][mix.model], info["window"], info["provider"], info.get("goal")
    )
    print(
        f"  {scenario:<44} {mix.name}: {outcome.served} requests in {row.elapsed:.2f} s, "
        f"{row.ratio:.3f} of the {mix.binding.upper()} limit, {row.emulator_429s} x 429",
        flush=True,
    )
    return row


def report(rows: list[Row], window: float, margin: float, emulator: Emulator, limits: dict[str, Any]) -> int:
    print()
    header = (
        f"{'scenario':<44} {'mix':<4} {'N':>4} {'elapsed':>8} {'req/limit':>9} {'tok/limit':>9} "
        f"{'steady':>6} {'429s':>5} {'max req/win':>11} {'max tok/win':>13}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        win = row.window_stats
        print(
            f"{row.scenario:<44} {row.mix.name:<4} {row.outcome.served:>4} {row.elapsed:>7.2f}s "
            f"{row.req_ratio:>9.3f} {row.tok_ratio:>9.3f} {row.steady:>6.3f} {row.emulator_429s:>5} "
            f"{win['max_requests_in_window']:>5}/{row.budget['qpm']:<5} "
            f"{win['max_tokens_in_window']:>6}/{row.budget['tpm']:<6}"
        )
    print()
    ceiling = window / (window + margin)
    print(
        f"window {window:g} s, limiter margin {margin:g} s: a burst-free pacer's ceiling is {ceiling:.3f} of the limit"
    )
    failures = 0
    for row in rows:
        if not row.provider:
            continue
        win = row.window_stats
        over = win["max_requests_in_window"] > row.budget["qpm"] or win["max_tokens_in_window"] > row.budget["tpm"]
        goal = row.goal if row.goal is not None else GOAL_ONE if "1 process" in row.scenario else GOAL_MANY
        ok = row.ratio >= goal and row.emulator_429s == 0 and not over
        failures += not ok
        print(
            f"{'PASS' if ok else 'FAIL'} {row.scenario} {row.mix.name}: {row.ratio:.3f} >= {goal} of the limit, "
            f"{row.emulator_429s} x 429, window maxima {'over' if over else 'within'} the limit"
        )
    naive = {row.mix.name: row for row in rows if not row.provider}
    for row in rows:
        if row.provider and "1 process" in row.scenario and row.mix.name in naive:
            other = naive[row.mix.name]
            print(
                f"vs naive, {row.mix.name} mix: provider {row.ratio:.3f} (steady {row.steady:.3f}) with "
                f"{row.emulator_429s} x 429; naive {other.ratio:.3f} (steady {other.steady:.3f}) with "
                f"{other.emulator_429s} x 429; provider/naive: {row.ratio / other.ratio:.2f} overall, "
                f"{row.steady / other.steady:.2f} steady; naive wasted "
                f"{other.emulator_429s / max(1, other.outcome.served):.1f} refused calls per request"
            )
    return failures


def _provider(url: str, mix: Mix, limits: dict[str, Any], window: float) -> Outcome:
    return asyncio.run(run_provider(url, mix, limits, window))


def _naive(url: str, mix: Mix) -> Outcome:
    return asyncio.run(run_naive(url, mix))


def _processes(url: str, key: str, processes: int, slots: int, window: float, windows: int, **kw: Any) -> Outcome:
    return run_processes(url, key, processes, slots, window, windows, **kw)[0]


def _deployment_plan(
    url: str, store: str, mixes: dict[str, Mix], keys: list[str], window: float, windows: int, qpm: int, only: str
) -> list[tuple[str, Mix, Callable[[], Outcome], dict[str, Any]]]:
    """The issue-12 table: (label, mix, run, info) per row; goal None means only "0 x 429"."""
    plan: list[tuple[str, Mix, Callable[[], Outcome], dict[str, Any]]] = []
    for key in keys:
        mix = mixes[key]
        rows: list[tuple[str, Callable[[], Outcome], dict[str, Any]]] = [
            ("1 process, limiter alone", partial(_provider, url, mix, limits_for(window, qpm), window), {"goal": 0.95}),
        ]
        for label, store_url, goal in (("static split", None, 0.0), ("budget store", store, 0.95)):
            lone = partial(_processes, url, key, 1, 4, window, windows, qpm=qpm, store=store_url, task_slots=1)
            rows.append((f"1 task alone, 4-slot pool, {label}", lone, {"goal": goal}))
        for label, store_url, goal in (("static split", None, 0.0), ("budget store", store, 0.97)):
            ten = partial(_processes, url, key, 10, 10, window, windows, qpm=qpm, store=store_url)
            rows.append((f"10 processes, 10-slot pool, {label}", ten, {"goal": goal}))
        wanted = [part for part in only.split(",") if part] or [""]
        plan += [(label, mix, run, info) for label, run, info in rows if any(part in label for part in wanted)]
    return plan


def run_deployment(args: argparse.Namespace) -> int:
    """The deployment scenarios, with and without the shared budget store (see the docstring)."""
    from airflow_provider_clova.client.limiter import default_margin
    from airflow_provider_clova.testing.servers import start_redis_server

    window, windows, qpm = args.window, args.windows, args.qpm
    limits = limits_for(window, qpm)
    mixes = make_mixes(limits, windows)
    began = time.monotonic()
    emulator = start_emulator(limits, window)
    redis_server = start_redis_server(password="bench-redis-pw")
    print(f"emulator at {emulator.url}; redis at {redis_server.host}:{redis_server.port}; window {window:g} s; ")
    print(f"limits {json.dumps(limits)}; concurrency {CONCURRENCY} per process")
    rows: list[Row] = []
    try:
        keys = [key.strip() for key in args.mixes.split(",") if key.strip()]
        for label, mix, run, extra in _deployment_plan(
            emulator.url, redis_server.url, mixes, keys, window, windows, qpm, args.only
        ):
            redis_server.flush()
            info = {"limits": limits, "window": window, "provider": True, **extra}
            rows.append(measure(emulator, label, mix, run, **info))
        failures = report(rows, window, default_margin(window), emulator, limits)
    finally:
        emulator.stop()
        redis_server.stop()
    print(f"bench took {time.monotonic() - began:.0f} s")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=3.0, help="emulator/limiter window, seconds (default 3)")
    parser.add_argument("--windows", type=int, default=6, help="windows of work per scenario (default 6)")
    parser.add_argument("--processes", type=int, default=3, help="processes sharing the pool (default 3)")
    parser.add_argument("--slots", type=int, default=3, help="pool size S (default 3)")
    parser.add_argument("--deployment", action="store_true", help="the deployment scenarios, with/without the store")
    parser.add_argument("--mixes", default="qpm,tpm", help="with --deployment: mixes to run (default qpm,tpm)")
    parser.add_argument("--only", default="", help="with --deployment: only rows whose label has one of these (a,b)")
    parser.add_argument("--qpm", type=int, default=48, help="QPM budget of the QPM mix per window (default 48)")
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--mix", help=argparse.SUPPRESS)
    parser.add_argument("--share", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return 0
    if args.deployment:
        return run_deployment(args)

    from airflow_provider_clova.client.limiter import default_margin

    window, windows = args.window, args.windows
    limits = limits_for(window)
    mixes = make_mixes(limits, windows)
    began = time.monotonic()
    emulator = start_emulator(limits, window)
    print(f"emulator at {emulator.url}; window {window:g} s; limits {json.dumps(limits)}; concurrency {CONCURRENCY}")
    info = {"limits": limits, "window": window}
    plan: list[tuple[str, Mix, Callable[[], Outcome], bool]] = []
    for key in ("qpm", "tpm"):
        plan.append(
            (
                "(a/b) provider, 1 process",
                mixes[key],
                partial(_provider, emulator.url, mixes[key], limits, window),
                True,
            )
        )
    for key in ("qpm", "tpm"):
        label = f"(c) provider, {args.processes} proc, pool {args.slots}"
        spread = partial(_processes, emulator.url, key, args.processes, args.slots, window, windows)
        plan.append((label, mixes[key], spread, True))
    for key in ("qpm", "tpm"):
        plan.append(("(d) naive httpx + retry on 429", mixes[key], partial(_naive, emulator.url, mixes[key]), False))
    rows: list[Row] = []
    try:
        for label, mix, run, provider in plan:
            rows.append(measure(emulator, label, mix, run, provider=provider, **info))
        failures = report(rows, window, default_margin(window), emulator, limits)
    finally:
        emulator.stop()
    print(f"bench took {time.monotonic() - began:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
