"""A worker process for the budget-store tests: ``python _budget_worker.py MODE JSON``.

``chat``: send chats through the provider's async client and the shared store, after a
common start time read from stdin; prints one JSON line with the answer times.
``hold``: plan many requests in the store and report each commit, until killed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any


async def chat(spec: dict[str, Any]) -> None:
    from airflow_provider_clova.client.client import AsyncClovaStudioClient
    from airflow_provider_clova.client.config import config_from_connection

    extra = {"limits": spec["limits"], "rate_window_seconds": spec["window"], "budget_store": spec["store"]}
    config = config_from_connection(host=spec["url"], login=None, password=spec["api_key"], extra=extra)
    async with AsyncClovaStudioClient(config) as client:
        await client.list_tuning_tasks_page(0, 1)  # warm up: connection and imports ...
        call = client._chat_call([{"role": "user", "content": "."}], spec["model"], None, {})
        await client._limiter_for(call).asnapshot()  # ... and this loop's client of the store
        print("READY", flush=True)
        start = float(await asyncio.to_thread(sys.stdin.readline))
        await asyncio.sleep(max(0.0, start - time.time()))
        todo = list(range(spec["requests"]))
        done: list[float] = []

        async def worker() -> None:
            while todo:
                todo.pop()
                await client.chat_completion([{"role": "user", "content": "hi"}], model=spec["model"], maxTokens=8)
                done.append(time.time())

        await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
    print(json.dumps({"done": done}), flush=True)


async def hold(spec: dict[str, Any]) -> None:
    from airflow_provider_clova.client.budget_store import StoreLimiter, StoreSettings
    from airflow_provider_clova.client.limits import Budget

    limiter = StoreLimiter(
        tuple(spec["key"]), Budget(**spec["budget"]), StoreSettings(spec["store"]), window_seconds=spec["window"]
    )

    async def one() -> None:
        await limiter.aacquire(1)
        print("COMMITTED", flush=True)
        await asyncio.sleep(3600)  # in flight until killed: never settled

    await asyncio.gather(*(one() for _ in range(spec["concurrency"])))


if __name__ == "__main__":
    mode, spec = sys.argv[1], json.loads(sys.argv[2])
    asyncio.run(chat(spec) if mode == "chat" else hold(spec))
