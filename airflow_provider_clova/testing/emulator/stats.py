"""Counters a test reads from ``GET /_emulator/stats`` to check what a client really did.

Requests by route and outcome (an HTTP status, or ``dropped`` when the connection was cut),
and the tuning tasks created, in order: the one number a "never bill a second training" test
needs. Budget windows live in the rate limiter; the app merges both into one answer.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any


class Stats:
    """Thread-safe counters; cleared by ``POST /_emulator/reset``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._created: list[dict[str, str]] = []

    def record(self, route: str, outcome: int | str) -> None:
        with self._lock:
            self._requests[route][str(outcome)] += 1

    def task_created(self, task_id: str, name: str, account: str, model: str) -> None:
        with self._lock:
            self._created.append({"id": task_id, "name": name, "account": account, "model": model})

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._created.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": {route: dict(codes) for route, codes in sorted(self._requests.items())},
                "requests_total": sum(sum(codes.values()) for codes in self._requests.values()),
                "tuning_tasks_created": list(self._created),
            }
