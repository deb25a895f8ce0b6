"""QPM/TPM budgets per (account, model, app type) over a rolling window, checked atomically.

A request is admitted only if, counting it, the rolling window ending at its arrival holds at
most ``qpm`` requests and ``tpm`` tokens (input tokens + requested ``maxTokens``). A refused
request (429 ``42901``) is neither served nor counted, so a client that backs off is not
punished twice. The window length is ``--rate-window-seconds`` of wall time; ``--time-scale``
does not shrink it, because a client paces against the window it is told about
(``extra.rate_window_seconds``), not against the emulator's speed.

While admitting, the limiter also records the most requests and tokens ever seen in one
window. Every window that holds a maximum can be slid right until it ends at a served request,
so checking the window ending at each admitted request gives the exact sliding-window maximum.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_clova.client.limits import lookup_budget
from airflow_provider_clova.testing.emulator.config import APP_TYPES, AppType
from airflow_provider_clova.testing.emulator.envelope import ApiError


@dataclass(frozen=True)
class Budget:
    """Requests and tokens allowed per window."""

    qpm: int
    tpm: int


def core_budget_lookup(overrides: Mapping[str, Mapping[str, int]]) -> Callable[[str, AppType], Budget]:
    """Budgets from the core's packaged limits table, with the ``--limits`` overrides applied.

    Imported lazily so the table has exactly one home (``client/limits.py``).
    """

    def lookup(model: str, app_type: AppType) -> Budget:
        budget = lookup_budget(model, app_type, overrides or None)
        return Budget(qpm=int(budget.qpm), tpm=int(budget.tpm))

    return lookup


@dataclass
class _Window:
    budget: Budget
    events: deque[tuple[float, int]] = field(default_factory=deque)
    tokens: int = 0
    max_requests: int = 0
    max_tokens: int = 0
    served: int = 0
    refused: int = 0


class RateLimiter:
    """One lock guards every window: check-and-count is a single atomic step."""

    def __init__(
        self,
        window_seconds: float,
        budget_for: Callable[[str, AppType], Budget],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_seconds = window_seconds
        self._budget_for = budget_for
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str, str], _Window] = {}

    def budget(self, model: str, app_type: AppType) -> Budget:
        return self._budget_for(model, app_type)

    def admit(self, account: str, model: str, app_type: AppType, tokens: int) -> None:
        """Count the request, or raise 429 ``42901`` without counting it."""
        key = (account, model, app_type)
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = _Window(budget=self._budget_for(model, app_type))
            now = self._clock()
            horizon = now - self.window_seconds
            while window.events and window.events[0][0] <= horizon:
                window.tokens -= window.events.popleft()[1]
            budget = window.budget
            over = None
            if len(window.events) + 1 > budget.qpm:
                over = f"QPM {budget.qpm}"
            elif window.tokens + tokens > budget.tpm:
                over = f"TPM {budget.tpm}"
            if over is not None:
                window.refused += 1
                raise ApiError(
                    429,
                    "42901",
                    f"Too many requests - rate exceeded ({over} for {model}, {app_type} app, "
                    f"per {self.window_seconds:g} s window)",
                )
            window.events.append((now, tokens))
            window.tokens += tokens
            window.served += 1
            window.max_requests = max(window.max_requests, len(window.events))
            window.max_tokens = max(window.max_tokens, window.tokens)

    def snapshot(self) -> list[dict[str, Any]]:
        """Per (account, model, app type): window maxima, counts and the budget in force."""
        with self._lock:
            return [
                {
                    "account": account,
                    "model": model,
                    "app_type": app_type,
                    "max_requests_in_window": w.max_requests,
                    "max_tokens_in_window": w.max_tokens,
                    "served": w.served,
                    "refused": w.refused,
                    "budget": {"qpm": w.budget.qpm, "tpm": w.budget.tpm},
                }
                for (account, model, app_type), w in sorted(self._windows.items())
            ]

    def budgets(self, models: list[str]) -> dict[str, dict[str, dict[str, int]]]:
        """The budget in force for every model and app type."""
        table: dict[str, dict[str, dict[str, int]]] = {}
        for model in models:
            table[model] = {}
            for app_type in APP_TYPES:
                budget = self._budget_for(model, app_type)
                table[model][app_type] = {"qpm": budget.qpm, "tpm": budget.tpm}
        return table

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
