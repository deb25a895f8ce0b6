"""A thousand tuning waits in one event loop, the way Airflow's triggerer runs them.

One run starts a moto S3 server and the bundled CLOVA Studio emulator (subprocesses on loopback),
uploads a dataset and creates a few tuning tasks that stay in WAIT for the whole run. Then, for
each N (100, 500, 1,000) and each repeat, two fresh child interpreters run N waits in one loop,
one after the other (the order alternates per repeat):

* provider: N concurrent ``ClovaStudioTuningTrigger.run()``, each reading its connection
  (``AIRFLOW_CONN_*``) through the hook as the triggerer does;
* bare (baseline): N loops of ``httpx.AsyncClient`` (one client per wait, all sharing one SSL
  context built once) doing ``GET /tuning/v2/tasks/{id}`` + ``response.json()`` every
  ``poll_interval``, no jitter.

Both use the same Bearer connection and ``poll_interval``. A 10 ms ticker in the same loop records
how late it wakes (loop lag). Each child reports, for its N waits:

* RSS per wait: (RSS at the end of the steady phase - RSS before the first wait) / N, after the
  same imports on both sides;
* longest start-up block: the largest ticker lag from the start until every wait has polled once
  (``poll_interval`` + 1 s);
* loop lag p50 / p99 / max over the steady phase that follows (``--steady`` seconds);
* the same two lags counted in the loop thread's own CPU time (``time.thread_time`` between
  ticks beyond 10 ms): what an idle machine would show, robust to other processes' load;
* CPU per poll: the child's user+system CPU over the steady phase / the status GETs the emulator
  answered in it (``/_emulator/stats``), ticker included on both sides.

Printed: per N the median over repeats of each figure for both sides and the ratio provider /
bare. Goal at N = 1,000: RSS per wait <= 50 KB, longest start-up block < 1 s, loop-lag p99 < 50 ms.

The emulator keeps its tasks in memory, so it runs as one uvicorn process (h11, one thread); it
cannot use workers. That process is what limits the poll rate: keep N / poll_interval within what
one core serves (see the printed "emulator" line: GETs answered per second of its CPU).

    python bench/triggerer_scale.py [--n 100 500 1000] [--repeats 3] [--poll-interval 10] [--steady 20]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

BUCKET = "triggerer-scale"
CONN_ID = "clova_studio_bench"
TASKS = 10  # the waits poll these tasks round-robin
MODEL = "HCX-003"  # a tunable model (the emulator refuses the others)
SIDES = ("provider", "bare")
GOALS = {"rss_kb": 50.0, "start_block_ms": 1000.0, "lag_p99_ms": 50.0}


# -- child: N waits in one loop --------------------------------------------------------------------
def rss_kb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return float(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def status_gets(url: str) -> int:
    with urllib.request.urlopen(f"{url}/_emulator/stats", timeout=30) as response:
        stats = json.loads(response.read())
    return int(sum(stats["requests"].get("tuning.get", {}).values()))


def emulator_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def ticker(samples: list[tuple[float, float, float]]) -> None:
    """Wake every 10 ms; record (when, how late, the loop thread's CPU since the last tick beyond 10 ms).

    The last figure is the lag an otherwise idle machine would show: on a loaded one the wall
    clock lag also counts the time the OS gave the CPU to other processes.
    """
    loop = asyncio.get_running_loop()
    cpu = time.thread_time()
    while True:
        due = loop.time() + 0.01
        await asyncio.sleep(0.01)
        now, cpu_now = loop.time(), time.thread_time()
        samples.append((now, now - due, max(0.0, cpu_now - cpu - 0.01)))
        cpu = cpu_now


async def provider_wait(task_id: str, poll_interval: float) -> None:
    from airflow_provider_clova.triggers.tuning import ClovaStudioTuningTrigger

    trigger = ClovaStudioTuningTrigger(
        tuning_task_id=task_id, clova_conn_id=CONN_ID, poll_interval=poll_interval, max_poll_interval=poll_interval
    )
    async for event in trigger.run():
        raise RuntimeError(f"a wait ended early: {event.payload}")


async def bare_wait(url: str, api_key: str, task_id: str, poll_interval: float, context: Any) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=url, verify=context, headers=headers, timeout=60) as http:
        while True:
            response = await http.get(f"/tuning/v2/tasks/{task_id}")
            status = response.json()["result"]["status"]
            if status in ("SUCCEEDED", "FAILED"):
                raise RuntimeError(f"a wait ended early: {status}")
            await asyncio.sleep(poll_interval)


async def child(
    side: str, n: int, url: str, api_key: str, ids: list[str], poll_interval: float, steady: float
) -> dict[str, Any]:
    # The same imports on both sides before the first RSS reading: per-wait cost only.
    import httpx

    import airflow_provider_clova.client.client
    import airflow_provider_clova.client.polling
    import airflow_provider_clova.client.pool
    import airflow_provider_clova.hooks.clova_studio
    import airflow_provider_clova.triggers.tuning  # noqa: F401
    from airflow_provider_clova._compat import aget_connection

    # A running triggerer has read connections before: warm Airflow's connection machinery
    # (its imports, the secrets backends). Our SSL context and clients are not built here.
    await aget_connection(CONN_ID)
    loop = asyncio.get_running_loop()
    samples: list[tuple[float, float, float]] = []
    tick = asyncio.create_task(ticker(samples))
    await asyncio.sleep(0.5)
    gc.collect()
    rss_before = rss_kb()
    started = loop.time()
    if side == "provider":
        waits = [asyncio.create_task(provider_wait(ids[i % len(ids)], poll_interval)) for i in range(n)]
    else:
        context = httpx.create_ssl_context()  # one context, shared by every client
        waits = [
            asyncio.create_task(bare_wait(url, api_key, ids[i % len(ids)], poll_interval, context)) for i in range(n)
        ]
    await asyncio.sleep(poll_interval + 1.0)
    start_end = loop.time()
    gets_before = await asyncio.to_thread(status_gets, url)
    cpu_before = cpu_seconds()
    steady_from = loop.time()
    await asyncio.sleep(steady)
    cpu_after = cpu_seconds()
    steady_to = loop.time()
    gets_after = await asyncio.to_thread(status_gets, url)
    rss_after = rss_kb()
    failed = [w for w in waits if w.done()]
    for w in [*waits, tick]:
        w.cancel()
    await asyncio.gather(*waits, tick, return_exceptions=True)
    if failed:
        raise RuntimeError(f"{len(failed)} waits ended early: {failed[0].exception()!r}")
    start_lags = [lag for when, lag, _ in samples if started <= when <= start_end]
    start_cpu = [busy for when, _, busy in samples if started <= when <= start_end]
    steady_lags = sorted(lag for when, lag, _ in samples if steady_from <= when <= steady_to)
    steady_cpu = sorted(busy for when, _, busy in samples if steady_from <= when <= steady_to)
    polls = gets_after - gets_before
    return {
        "rss_kb": (rss_after - rss_before) / n,
        "start_block_ms": 1000 * max(start_lags),
        "lag_p50_ms": 1000 * steady_lags[len(steady_lags) // 2],
        "lag_p99_ms": 1000 * steady_lags[int(len(steady_lags) * 0.99)],
        "lag_max_ms": 1000 * steady_lags[-1],
        "start_block_cpu_ms": 1000 * max(start_cpu),
        "lag_p99_cpu_ms": 1000 * steady_cpu[int(len(steady_cpu) * 0.99)],
        "cpu_per_poll_ms": 1000 * (cpu_after - cpu_before) / max(polls, 1),
        "polls_per_s": polls / steady,
    }


# -- parent: servers, tasks, children, table --------------------------------------------------------
def dataset(rows: int) -> bytes:
    lines = [
        json.dumps({"System_Prompt": "", "C_ID": i, "T_ID": 0, "Text": f"question {i}?", "Completion": f"answer {i}."})
        for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


def create_tasks(url: str, endpoint: str) -> list[str]:
    from airflow_provider_clova.client.calls import TuningDataset
    from airflow_provider_clova.client.client import ClovaStudioClient
    from airflow_provider_clova.client.config import config_from_connection

    config = config_from_connection(host=url, login="AK", password="SK", extra=None)
    data = TuningDataset(BUCKET, "bench.jsonl", "testing", "testing")
    with ClovaStudioClient(config) as client:
        return [client.create_tuning_task(MODEL, data, name=f"scale-{i}").id for i in range(TASKS)]


def run_child(side: str, n: int, url: str, api_key: str, ids: list[str], args: argparse.Namespace) -> dict[str, Any]:
    conn = {"conn_type": "clova_studio", "host": url, "password": api_key}
    env = dict(os.environ, **{f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(conn)})
    env.setdefault("AIRFLOW_HOME", args.airflow_home)
    argv = [sys.executable, __file__, "--child", side, str(n), url, ",".join(ids)]
    argv += ["--poll-interval", str(args.poll_interval), "--steady", str(args.steady)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{side} N={n} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--poll-interval", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument("--steady", type=float, default=20.0, help="seconds measured after start-up (default 20)")
    parser.add_argument("--child", nargs=4, metavar=("SIDE", "N", "URL", "IDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.airflow_home = tempfile.mkdtemp(prefix="triggerer-scale-airflow-")
    if args.child:
        side, n, url, ids = args.child
        result = asyncio.run(child(side, int(n), url, "KEY", ids.split(","), args.poll_interval, args.steady))
        print(json.dumps(result))
        return 0

    from airflow_provider_clova.testing.servers import start_emulator, start_moto_server

    moto = start_moto_server()
    emulator = None
    try:
        s3 = moto.s3_client()
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="bench.jsonl", Body=dataset(200))
        # time-scale 1000: a task waits 30,000 s in WAIT, far longer than the run.
        emulator = start_emulator(
            object_storage_endpoint=moto.endpoint, time_scale=1000.0, extra_args=["--log-level", "warning"]
        )
        ids = create_tasks(emulator.url, moto.endpoint)
        results: dict[tuple[str, int], list[dict[str, Any]]] = {}
        served = cpu = 0.0
        for repeat in range(args.repeats):
            for n in args.n:
                order = SIDES if repeat % 2 == 0 else SIDES[::-1]
                for side in order:
                    cpu0, gets0 = emulator_cpu(emulator.process.pid), status_gets(emulator.url)
                    result = run_child(side, n, emulator.url, emulator.api_key, ids, args)
                    cpu += emulator_cpu(emulator.process.pid) - cpu0
                    served += status_gets(emulator.url) - gets0
                    results.setdefault((side, n), []).append(result)
                    print(
                        f"  repeat {repeat + 1} N={n:>5} {side:>8}: "
                        + json.dumps({k: round(v, 2) for k, v in result.items()}),
                        flush=True,
                    )
    finally:
        if emulator is not None:
            emulator.stop()
        moto.stop()

    print(f"\nmedians of {args.repeats} repeats; poll_interval {args.poll_interval} s, steady phase {args.steady} s")
    print(f"emulator: one uvicorn process; {served / max(cpu, 1e-9):.0f} status GETs per CPU second served")
    rows = [
        ("RSS per wait (KB)", "rss_kb"),
        ("longest start-up block (ms)", "start_block_ms"),
        ("loop lag p50 (ms)", "lag_p50_ms"),
        ("loop lag p99 (ms)", "lag_p99_ms"),
        ("loop lag max (ms)", "lag_max_ms"),
        ("start-up block, loop CPU (ms)", "start_block_cpu_ms"),
        ("loop lag p99, loop CPU (ms)", "lag_p99_cpu_ms"),
        ("CPU per poll (ms)", "cpu_per_poll_ms"),
        ("polls per second", "polls_per_s"),
    ]
    ok = True
    for n in args.n:
        print(f"\nN = {n:,}")
        print(f"  {'':30} {'provider':>10} {'bare httpx':>11} {'ratio':>7} {'goal':>8}")
        for label, key in rows:
            ours = statistics.median(r[key] for r in results[("provider", n)])
            base = statistics.median(r[key] for r in results[("bare", n)])
            goal = GOALS.get(key) if n == max(args.n) else None
            mark = ""
            if goal is not None:
                met = ours <= goal if key == "rss_kb" else ours < goal
                ok &= met
                mark = f"{'<=' if key == 'rss_kb' else '<'}{goal:g} {'ok' if met else 'MISS'}"
            print(f"  {label:30} {ours:10.2f} {base:11.2f} {ours / base if base else float('nan'):7.2f} {mark:>8}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
