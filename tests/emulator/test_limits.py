"""Rule 4: QPM/TPM per (account, model, app type) over a rolling window, refused requests not counted."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_clova.client.catalog import known_models
from airflow_provider_clova.client.limits import lookup_budget
from airflow_provider_clova.testing.emulator.envelope import ApiError
from airflow_provider_clova.testing.emulator.ratelimit import Budget, RateLimiter
from airflow_provider_clova.testing.waiting import wait_until
from tests.emulator.conftest import Api

TOKEN = re.compile(r"[A-Za-z]{1,4}|[0-9]{1,3}|[^\sA-Za-z0-9]")
ASK = [{"role": "user", "content": "How many tokens is this?"}]
ASK_TOKENS = 4 + len(TOKEN.findall(ASK[0]["content"]))
CHAT = "/v3/chat-completions/HCX-005"


def code(response: httpx.Response) -> str:
    return response.json()["status"]["code"]


@pytest.mark.integration
def test_qpm(make_api: Callable[..., Api]) -> None:
    api = make_api(limits={"HCX-005": {"qpm": 3}})
    assert [api.post(CHAT, {"messages": ASK}).status_code for _ in range(3)] == [200] * 3
    refused = api.post(CHAT, {"messages": ASK})
    assert (refused.status_code, code(refused)) == (429, "42901")
    assert "QPM 3" in refused.json()["status"]["message"]
    (window,) = api.stats()["windows"]
    assert window == {
        "account": "default",
        "model": "HCX-005",
        "app_type": "test",
        "max_requests_in_window": 3,
        "max_tokens_in_window": 3 * (ASK_TOKENS + 100),
        "served": 3,
        "refused": 1,
        "budget": {"qpm": 3, "tpm": lookup_budget("HCX-005", "test").tpm},
    }
    assert api.stats()["requests"]["chat.v3"] == {"200": 3, "429": 1}


@pytest.mark.integration
def test_tpm_counts_input_plus_max_tokens(make_api: Callable[..., Api]) -> None:
    budget = 3 * (ASK_TOKENS + 100) + ASK_TOKENS + 10
    api = make_api(limits={"HCX-005": {"tpm": budget}})
    for _ in range(3):
        assert api.post(CHAT, {"messages": ASK}).status_code == 200  # maxTokens defaults to 100
    refused = api.post(CHAT, {"messages": ASK, "maxTokens": 11})  # 1 token over the budget
    assert (refused.status_code, code(refused)) == (429, "42901")
    assert "TPM" in refused.json()["status"]["message"]
    assert api.post(CHAT, {"messages": ASK, "maxTokens": 10}).status_code == 200  # exactly fits
    (window,) = api.stats()["windows"]
    assert window["max_tokens_in_window"] == budget
    assert (window["served"], window["refused"]) == (4, 1)


@pytest.mark.integration
def test_window_rolls_and_refusals_are_not_counted(make_api: Callable[..., Api]) -> None:
    api = make_api(limits={"HCX-005": {"qpm": 2}}, rate_window_seconds=0.5)
    assert [api.post(CHAT, {"messages": ASK}).status_code for _ in range(2)] == [200, 200]
    # Keep knocking: refused attempts must not extend the wait, so this succeeds ~0.5 s later.
    wait_until(lambda: api.post(CHAT, {"messages": ASK}).status_code == 200, timeout=5, interval=0.02)
    (window,) = api.stats()["windows"]
    assert window["served"] == 3 and window["refused"] >= 1
    assert window["max_requests_in_window"] == 2


@pytest.mark.integration
def test_budgets_are_per_account_model_and_app_type(make_api: Callable[..., Api]) -> None:
    api = make_api(limits={"HCX-005": {"qpm": 1}, "HCX-DASH-002": {"qpm": 1}})
    assert api.post(CHAT, {"messages": ASK}).status_code == 200
    assert api.post(CHAT, {"messages": ASK}).status_code == 429
    assert api.post("/v3/chat-completions/HCX-DASH-002", {"messages": ASK}).status_code == 200
    assert api.post(CHAT, {"messages": ASK}, {"Authorization": "Bearer KEY2"}).status_code == 200
    assert api.post(CHAT, {"messages": ASK}, {"Authorization": "Bearer SVC2"}).status_code == 200
    keys = {(w["account"], w["model"], w["app_type"]) for w in api.stats()["windows"]}
    assert keys == {
        ("default", "HCX-005", "test"),
        ("default", "HCX-DASH-002", "test"),
        ("other", "HCX-005", "test"),
        ("other", "HCX-005", "service"),
    }


@pytest.mark.integration
def test_default_budgets_come_from_the_limits_table(api: Api) -> None:
    budgets = api.stats()["budgets"]
    for model in known_models():
        for app_type in ("test", "service"):
            expected = lookup_budget(model, app_type)
            assert budgets[model][app_type] == {"qpm": expected.qpm, "tpm": expected.tpm}


@pytest.mark.integration
async def test_concurrent_requests_are_counted_atomically(make_api: Callable[..., Api]) -> None:
    api = make_api(limits={"HCX-005": {"qpm": 10}})
    async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": "Bearer KEY"}, timeout=30) as client:
        responses = await asyncio.gather(*(client.post(CHAT, json={"messages": ASK}) for _ in range(25)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 10 + [429] * 15
    (window,) = api.stats()["windows"]
    assert (window["served"], window["refused"], window["max_requests_in_window"]) == (10, 15, 10)


# -- the limiter itself, on a fake clock ---------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def brute_force_max(events: list[tuple[float, int]], window: float) -> tuple[int, int]:
    """Most requests / tokens in any window (t - window, t]: try every right edge."""
    best_n = best_t = 0
    for right, _ in events:
        inside = [tokens for t, tokens in events if right - window < t <= right]
        best_n, best_t = max(best_n, len(inside)), max(best_t, sum(inside))
    return best_n, best_t


@settings(max_examples=200, deadline=None)
@given(
    arrivals=st.lists(st.tuples(st.floats(0, 3), st.integers(1, 50)), max_size=60),
    qpm=st.integers(1, 8),
    tpm=st.integers(50, 200),
)
def test_window_maxima_are_exact_and_within_budget(arrivals: list[tuple[float, int]], qpm: int, tpm: int) -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, lambda model, app_type: Budget(qpm=qpm, tpm=tpm), clock)
    served: list[tuple[float, int]] = []
    for gap, tokens in arrivals:
        clock.now += gap / 4
        try:
            limiter.admit("acct", "HCX-005", "test", tokens)
        except ApiError as exc:
            assert (exc.http_status, exc.code) == (429, "42901")
            # refused only when serving it would have broken a budget
            inside = [t for t in served if clock.now - 1.0 < t[0] <= clock.now]
            assert len(inside) + 1 > qpm or sum(t[1] for t in inside) + tokens > tpm
        else:
            served.append((clock.now, tokens))
    most_n, most_t = brute_force_max(served, 1.0)
    assert most_n <= qpm and most_t <= tpm
    snapshot = limiter.snapshot()
    if served:
        (entry,) = snapshot
        assert (entry["max_requests_in_window"], entry["max_tokens_in_window"]) == (most_n, most_t)
        assert entry["served"] == len(served) and entry["refused"] == len(arrivals) - len(served)
    else:
        assert all(entry["served"] == 0 for entry in snapshot)


def test_window_edge_is_half_open() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60.0, lambda model, app_type: Budget(qpm=1, tpm=1000), clock)
    limiter.admit("a", "m", "test", 1)
    clock.now = 59.999
    with pytest.raises(ApiError):
        limiter.admit("a", "m", "test", 1)
    clock.now = 60.0  # the first request has left the window (t - 60, t]
    limiter.admit("a", "m", "test", 1)
