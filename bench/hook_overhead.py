"""Overhead of the provider's client over raw httpx, against a real loopback HTTP server.

The same N ``GET /tuning/v2/tasks/{id}`` requests are sent two ways in one run:

* client: ``ClovaStudioClient.get_tuning_task`` with signature v2 auth (fresh timestamp and
  HMAC per request, request id header, envelope parsing, retry wrapper, typed TuningTask);
* raw:    ``httpx.Client.get`` on the same path, then ``response.json()``.

Both use one pooled keep-alive connection to a uvicorn+starlette server running in its own
process (``bench/_loopback_server.py``). The two sides alternate in short rounds (order flipped
every round) so that load from other processes hits both alike. Printed: the rate of each side,
the ratio of total times, and the median of the per-round ratios (robust to a burst of outside
load landing in one round). Goal: client time / raw time <= 1.10, judged on the median.

    python bench/hook_overhead.py [-n 2000] [--rounds 40] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loopback_server import serve

from airflow_provider_clova.client.client import ClovaStudioClient
from airflow_provider_clova.client.config import config_from_connection

GOAL = 1.10
TASK_ID = "czf9fbky"
PATH = f"/tuning/v2/tasks/{TASK_ID}"


def run_client(client: ClovaStudioClient, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        task = client.get_tuning_task(TASK_ID)
    elapsed = time.perf_counter() - start
    assert task.id == TASK_ID
    return elapsed


def run_raw(http: httpx.Client, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        response = http.get(PATH)
        response.raise_for_status()
        body = response.json()
    elapsed = time.perf_counter() - start
    assert body["result"]["id"] == TASK_ID
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--requests", type=int, default=2000, help="requests per side (default 2000)")
    parser.add_argument("--rounds", type=int, default=40, help="alternating rounds (default 40)")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up requests per side (default 200)")
    parser.add_argument("--profile", action="store_true", help="also cProfile the client side and print the top")
    args = parser.parse_args(argv)
    rounds = max(1, min(args.rounds, args.requests))
    per_round = [args.requests // rounds + (1 if i < args.requests % rounds else 0) for i in range(rounds)]

    with serve() as url:
        config = config_from_connection(host=url, login="AK-bench", password="SK-bench-secret", extra=None)
        assert config.auth_type == "apigw_v2"
        with ClovaStudioClient(config) as client, httpx.Client(base_url=url) as http:
            run_client(client, args.warmup)
            run_raw(http, args.warmup)
            client_total = raw_total = 0.0
            round_ratios: list[float] = []
            gc.collect()
            for index, count in enumerate(per_round):
                if index % 2 == 0:
                    client_time = run_client(client, count)
                    raw_time = run_raw(http, count)
                else:
                    raw_time = run_raw(http, count)
                    client_time = run_client(client, count)
                client_total += client_time
                raw_total += raw_time
                round_ratios.append(client_time / raw_time)

            n = args.requests
            ratio = client_total / raw_total
            median = statistics.median(round_ratios)
            print(f"hook_overhead: {n} GET {PATH} per side, {rounds} alternating rounds, loopback uvicorn at {url}")
            print(f"  client (signature v2, ClovaStudioClient.get_tuning_task): {n / client_total:8.0f} req/s")
            print(f"  raw    (httpx.Client.get + .json())                     : {n / raw_total:8.0f} req/s")
            print(
                f"  per request: client {1e6 * client_total / n:.0f} us, raw {1e6 * raw_total / n:.0f} us, "
                f"overhead {1e6 * (client_total - raw_total) / n:.0f} us"
            )
            print(f"  ratio client/raw time: {ratio:.3f} (totals), {median:.3f} (median of rounds)")
            verdict = "OK" if median <= GOAL else "MISSED"
            print(f"  goal: ratio <= {GOAL:.2f} -> {verdict}")

            if args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                run_client(client, n)
                profiler.disable()
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
                print(out.getvalue())
    return 0 if median <= GOAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
