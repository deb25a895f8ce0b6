"""Embedding throughput against the emulator, as a share of the limit-implied maximum.

One run starts the bundled emulator (a subprocess on loopback, ``--port 0``) with a shortened
rate window and a small embedding-v2 budget, writes ``--rows`` short documents, and measures,
``--repeat`` times (the emulator's counters and windows reset between runs):

(a) ``ClovaStudioEmbeddingOperator`` (the batch engine: async client, shared limiter,
    ``--concurrency`` in flight, journal, output file), timed from ``execute`` to its return;
(b) a naive client in the same process: raw ``httpx.AsyncClient``, the same concurrency, fire
    at will, retry a 429 after a short random backoff (50-150 ms), vectors kept in memory.

Figures per run: rows/s, share = (rows / elapsed) / (QPM / window) (QPM binds: TPM is set out
of reach; each row is one request), and the 429s the emulator answered. ``elapsed`` runs from
the first request to the last answer (the operator's ``sending_seconds``; the naive loop's
gather); the provider's rate including its start-up (connection, reading and indexing the
input, writing the output; about a second) is printed beside it, since a short bench run
weighs that second far more than a real batch of hours does. The medians of the
runs are printed with the ratio provider / naive. A naive client can show a share near or
above 1.0 over a short run only by spending a whole window's budget at t=0 and then hammering
the 429 wall; the provider is burst-free, so its ceiling is ``window / (window + margin)``
(97.6% here), less its start-up (reading the input, the connection, the first handshake).
The window is 8 s: the limiter's margin for arrival jitter is 2.5% of a shortened window
(200 ms here; 1 s at the real 60 s), and at 4 s (100 ms) one request in 10,000 arrived late
enough on a loaded machine to meet a 429. The limit is kept low (30 rows/s by default) so that
the emulator and the client, sharing a loaded machine, are not what binds: at ~100 rows/s on
2 busy cores the JSON of 1,024-float vectors costs more CPU than the machine has, and both
clients fall short of the limit.

Goal: provider >= 0.95 of the limit with zero 429s.

    python bench/embedding_throughput.py [--rows 600] [--window 8] [--qpm 240] [--repeat 3]

(~2 minutes with the defaults; ``--rows 10000 --repeat 1`` for the issue's 10,000-row figure
takes ~11 minutes at 30 rows/s.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airflow_provider_clova.testing.servers import ClovaEmulator, start_emulator  # noqa: E402

MODEL, EMULATOR_MODEL = "embedding-v2", "bge-m3"
GOAL = 0.95


def write_rows(path: Path, rows: int) -> list[str]:
    texts = [f"Document {i}: how to care for the product, warranty terms and store hours" for i in range(rows)]
    with path.open("w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"id": i, "text": text}) + "\n")
    return texts


def refused(emulator: ClovaEmulator) -> int:
    return int(emulator.stats()["requests"].get("embedding", {}).get("429", 0))


def run_provider(source: Path, out_dir: Path, concurrency: int) -> tuple[float, float]:
    from airflow_provider_clova.client.limiter import clear_shared_limiters
    from airflow_provider_clova.operators.embedding import ClovaStudioEmbeddingOperator

    clear_shared_limiters()
    output = out_dir / f"vectors-{time.monotonic_ns()}.jsonl"
    operator = ClovaStudioEmbeddingOperator(
        task_id="bench",
        input_path=str(source),
        output_path=str(output),
        max_concurrency=concurrency,
        progress_interval=3600,
    )
    started = time.monotonic()
    summary = operator.execute({})
    elapsed = time.monotonic() - started
    assert summary["ok"] == summary["rows"], summary
    return summary["sending_seconds"], elapsed


async def naive(url: str, api_key: str, texts: list[str], concurrency: int) -> tuple[float, float]:
    import httpx

    queue: asyncio.Queue[str] = asyncio.Queue()
    for text in texts:
        queue.put_nowait(text)
    vectors: list[Any] = []
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:

        async def worker() -> None:
            while not queue.empty():
                text = queue.get_nowait()
                while True:
                    response = await http.post("/v1/api-tools/embedding/v2", json={"text": text})
                    if response.status_code != 429:
                        response.raise_for_status()
                        vectors.append(response.json()["result"]["embedding"])
                        break
                    await asyncio.sleep(random.uniform(0.05, 0.15))

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    assert len(vectors) == len(texts)
    return elapsed, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--qpm", type=int, default=240, help="requests per window")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    limits = {MODEL: {"qpm": args.qpm, "tpm": 10**9}}
    emulator = start_emulator(limits=limits, rate_window_seconds=args.window)
    limit_rate = args.qpm / args.window
    results: dict[str, list[tuple[float, int]]] = {"provider": [], "naive": []}
    try:
        os.environ.update(emulator.env(limits=limits, rate_window_seconds=args.window))
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "docs.jsonl"
            texts = write_rows(source, args.rows)
            print(
                f"embedding throughput: {args.rows} rows, limit {args.qpm} requests per {args.window:g} s window "
                f"({limit_rate:.1f} rows/s), concurrency {args.concurrency}, {args.repeat} repeats"
            )
            for attempt in range(1, args.repeat + 1):
                for name in ("provider", "naive"):
                    emulator.reset()
                    if name == "provider":
                        sending, wall = run_provider(source, Path(tmp), args.concurrency)
                    else:
                        sending, wall = asyncio.run(naive(emulator.url, emulator.api_key, texts, args.concurrency))
                    rate = args.rows / sending
                    results[name].append((rate, refused(emulator)))
                    print(
                        f"  run {attempt} {name:8s}: {rate:7.1f} rows/s, share of limit {rate / limit_rate:.3f}, "
                        f"429s {results[name][-1][1]}; with start-up {args.rows / wall:.1f} rows/s "
                        f"({args.rows / wall / limit_rate:.3f})"
                    )
    finally:
        emulator.stop()

    medians = {name: statistics.median(rate for rate, _ in runs) for name, runs in results.items()}
    for name, runs in results.items():
        print(
            f"median {name:8s}: {medians[name]:7.1f} rows/s, share of limit {medians[name] / limit_rate:.3f}, "
            f"429s {statistics.median(count for _, count in runs):g} (per run: {[count for _, count in runs]})"
        )
    print(f"ratio provider / naive (rows/s): {medians['provider'] / medians['naive']:.2f}")
    share = medians["provider"] / limit_rate
    zero = all(count == 0 for _, count in results["provider"])
    verdict = "met" if share >= GOAL and zero else "NOT met"
    print(f"goal (provider >= {GOAL} of the limit, zero 429s): {verdict}")
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    raise SystemExit(main())
