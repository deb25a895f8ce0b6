"""The openai SDK's calls are paced: each attempt books its cost on the connection's limiter,
settles at the answer's usage, releases what was refused or never sent, and a budget 429
pauses the budget. Driven through the real SDK on an in-memory transport of its own HTTP
library (openai 3.x ships a fork of httpx), so nothing leaves the process."""

from __future__ import annotations

import importlib
import json
from dataclasses import replace
from typing import Any

import openai
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from airflow_provider_clova.client import openai_pacing
from airflow_provider_clova.client.errors import ClovaStudioBudgetError
from airflow_provider_clova.client.openai_pacing import (
    AsyncPacedTransport,
    Booking,
    PacedTransport,
    booking_for,
)
from airflow_provider_clova.client.params import DEFAULT_MAX_TOKENS, THINKING_EFFORT_DEFAULT_TOKENS
from airflow_provider_clova.client.tokens import estimate_input_tokens
from airflow_provider_clova.testing.samples import openai_completion, openai_error
from tests.unit.client.conftest import FakeLimiter, make_config

HTTP = importlib.import_module(openai.DefaultHttpxClient.__mro__[1].__module__.split(".")[0])
BASE = "https://clova.pacing.invalid"
CHAT = f"{BASE}/v1/openai/chat/completions"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me about Seoul."}]
COMPLETION = openai_completion("A city.", prompt_tokens=9, completion_tokens=3)


def settings_with(**changes: Any) -> Any:
    """The client settings of a Bearer connection, with ``changes``."""
    return replace(make_config(auth="bearer"), **changes)


def answer_with(*responses: Any) -> tuple[list[Any], Any]:
    """An inner transport answering ``responses`` in turn (an exception is raised); records requests."""
    seen: list[Any] = []
    queue = list(responses)

    def answer(request: Any) -> Any:
        seen.append(request)
        item = queue.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    return seen, HTTP.MockTransport(answer)


@pytest.fixture
def limiter(monkeypatch: pytest.MonkeyPatch) -> FakeLimiter:
    fake = FakeLimiter()
    models: list[str] = []

    def limiter_for(config: Any, budget_model: str | None) -> FakeLimiter:
        models.append(str(budget_model))
        return fake

    monkeypatch.setattr(openai_pacing, "limiter_for", limiter_for)
    fake.models = models
    return fake


def sdk(inner: Any, **config: Any) -> openai.OpenAI:
    not_sent = (HTTP.ConnectError, HTTP.ConnectTimeout, HTTP.PoolTimeout)
    paced = PacedTransport(inner, settings_with(**config), not_sent)
    return openai.OpenAI(
        api_key="nv-test", base_url=f"{BASE}/v1/openai/", max_retries=0, http_client=HTTP.Client(transport=paced)
    )


# -- what a request costs -----------------------------------------------------------------------


def body(**fields: Any) -> bytes:
    return json.dumps({"model": "HCX-005", "messages": MESSAGES, **fields}).encode()


def test_a_chat_books_its_input_estimate_plus_the_requested_output() -> None:
    config = settings_with()
    booked = booking_for(config, "POST", "/v1/openai/chat/completions", body(max_tokens=40))
    assert booked == Booking("HCX-005", estimate_input_tokens(MESSAGES) + 40, 40, streaming=False)
    # max_completion_tokens counts the same; none given: the service's default output
    assert (
        booking_for(config, "POST", "/v1/openai/chat/completions", body(max_completion_tokens=7)).reserved_output_tokens
        == 7
    )
    plain = booking_for(config, "POST", "/v1/openai/chat/completions", body(stream=True))
    assert plain is not None and plain.reserved_output_tokens == DEFAULT_MAX_TOKENS and plain.streaming


@pytest.mark.parametrize("bad", ["40", -5, 0, True, 2.5, None])
def test_a_malformed_max_tokens_books_the_default_and_the_service_judges_it(bad: Any) -> None:
    booked = booking_for(settings_with(), "POST", "/v1/openai/chat/completions", body(max_tokens=bad))
    assert booked is not None and booked.reserved_output_tokens == DEFAULT_MAX_TOKENS


def test_a_reasoning_model_books_its_effort_default() -> None:
    config = settings_with()
    raw = json.dumps({"model": "HCX-007", "messages": MESSAGES, "reasoning_effort": "high"}).encode()
    booked = booking_for(config, "POST", "/v1/openai/chat/completions", raw)
    assert booked is not None and booked.reserved_output_tokens == THINKING_EFFORT_DEFAULT_TOKENS["high"]


def test_embeddings_book_their_input_under_the_embedding_models_own_row() -> None:
    config = settings_with()
    raw = json.dumps({"model": "bge-m3", "input": "서울은 한국의 수도이다"}).encode()
    booked = booking_for(config, "POST", "/v1/openai/embeddings", raw)
    assert booked is not None and booked.budget_model == "embedding-v2" and booked.reserved_output_tokens == 0
    assert booked.estimated_cost >= 10
    unknown = json.dumps({"model": "text-embedding-3-small", "input": "x"}).encode()
    assert booking_for(config, "POST", "/v1/openai/embeddings", unknown) is None  # refused unread, free


@pytest.mark.parametrize(
    ("method", "path", "raw"),
    [
        ("GET", "/v1/openai/models", b""),
        ("POST", "/v1/openai/chat/completions", b"not json"),
        ("POST", "/v1/openai/chat/completions", b'{"messages": []}'),  # no model
        ("POST", "/v1/openai/chat/completions", b'["HCX-005"]'),
        ("POST", "/v3/chat-completions/HCX-005", body()),  # not this API: the client meters it itself
    ],
)
def test_requests_that_spend_no_budget_are_not_booked(method: str, path: str, raw: bytes) -> None:
    assert booking_for(settings_with(), method, path, raw) is None


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
        max_leaves=20,
    ),
    st.sampled_from(["/v1/openai/chat/completions", "/v1/openai/embeddings"]),
)
def test_any_json_body_is_booked_or_passed_through_never_an_exception(value: Any, path: str) -> None:
    for candidate in (value, {"model": "HCX-005", "messages": value}, {"model": "bge-m3", "input": value}):
        booked = booking_for(settings_with(), "POST", path, json.dumps(candidate).encode())
        assert booked is None or (booked.estimated_cost >= 1 and booked.reserved_output_tokens >= 0)


# -- one attempt, through the real SDK ----------------------------------------------------------


def test_an_answer_settles_at_its_prompt_tokens_plus_the_requested_output(limiter: FakeLimiter) -> None:
    seen, inner = answer_with(HTTP.Response(200, json=COMPLETION))
    answer = sdk(inner).chat.completions.create(model="HCX-005", messages=MESSAGES, max_tokens=40)
    assert answer.choices[0].message.content == "A city."  # the body read here still reaches the SDK
    (reservation,) = limiter.reservations
    assert reservation.cost == estimate_input_tokens(MESSAGES) + 40 and reservation.settled == 9 + 40
    assert limiter.models == ["HCX-005"] and len(seen) == 1


def test_a_budget_429_releases_and_pauses_the_budget(limiter: FakeLimiter) -> None:
    refused = openai_error("42901", "Too many requests", "rate_limit")
    _, inner = answer_with(HTTP.Response(429, json=refused, headers={"Retry-After": "999"}))
    with pytest.raises(openai.RateLimitError):
        sdk(inner, rate_window_seconds=6.0).chat.completions.create(model="HCX-005", messages=MESSAGES)
    (reservation,) = limiter.reservations
    assert reservation.released and reservation.settled is None
    assert limiter.rate_limited == [6.0]  # Retry-After capped at one budget window
    assert limiter.rate_limited_reservations == [reservation]


def test_an_overload_429_releases_without_pausing_the_budget(limiter: FakeLimiter) -> None:
    refused = openai_error("42902", "overloaded", "rate_limit")
    _, inner = answer_with(HTTP.Response(429, json=refused))
    with pytest.raises(openai.RateLimitError):
        sdk(inner).chat.completions.create(model="HCX-005", messages=MESSAGES)
    assert limiter.reservations[0].released and limiter.rate_limited == []


def test_a_server_error_keeps_the_estimate_the_service_may_have_counted(limiter: FakeLimiter) -> None:
    _, inner = answer_with(HTTP.Response(500, json=openai_error("50000", "boom", "server_error")))
    with pytest.raises(openai.InternalServerError):
        sdk(inner).chat.completions.create(model="HCX-005", messages=MESSAGES)
    (reservation,) = limiter.reservations
    assert not reservation.released and reservation.settled is None


def test_a_connect_failure_releases_a_read_failure_keeps(limiter: FakeLimiter) -> None:
    _, inner = answer_with(HTTP.ConnectError("refused"), HTTP.ReadTimeout("no answer"))
    client = sdk(inner)
    for _ in range(2):
        with pytest.raises((openai.APIConnectionError, openai.APITimeoutError)):
            client.chat.completions.create(model="HCX-005", messages=MESSAGES)
    never_sent, maybe_counted = limiter.reservations
    assert never_sent.released and not maybe_counted.released


def test_every_sdk_retry_books_again(limiter: FakeLimiter) -> None:
    refused = openai_error("42902", "overloaded", "rate_limit")
    _, inner = answer_with(HTTP.Response(429, json=refused), HTTP.Response(200, json=COMPLETION))
    paced = PacedTransport(inner, settings_with(), (HTTP.ConnectError,))
    client = openai.OpenAI(
        api_key="nv-test", base_url=f"{BASE}/v1/openai/", max_retries=1, http_client=HTTP.Client(transport=paced)
    )
    client.with_options(timeout=5).chat.completions.create(model="HCX-005", messages=MESSAGES)
    first, second = limiter.reservations
    assert first.released and second.settled == 9 + DEFAULT_MAX_TOKENS


def test_a_streamed_answer_keeps_its_estimate_and_streams(limiter: FakeLimiter) -> None:
    chunks = (
        "".join(
            f"data: {json.dumps(chunk)}\n\n"
            for chunk in (
                {
                    "id": "c",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": "HCX-005",
                    "choices": [
                        {"index": 0, "delta": {"role": "assistant", "content": "A city."}, "finish_reason": None}
                    ],
                },
            )
        )
        + "data: [DONE]\n\n"
    )
    _, inner = answer_with(HTTP.Response(200, content=chunks.encode(), headers={"content-type": "text/event-stream"}))
    stream = sdk(inner).chat.completions.create(model="HCX-005", messages=MESSAGES, stream=True)
    assert "".join(part.choices[0].delta.content or "" for part in stream) == "A city."
    (reservation,) = limiter.reservations
    assert reservation.settled is None and not reservation.released


def test_a_request_that_can_never_fit_fails_before_it_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    seen, inner = answer_with(HTTP.Response(200, json=COMPLETION))
    tiny = {"HCX-005": {"qpm": 10, "tpm": 50}}
    with pytest.raises(ClovaStudioBudgetError, match="can never fit"):  # the SDK lets it through as it is
        sdk(inner, limits=tiny).chat.completions.create(model="HCX-005", messages=MESSAGES, max_tokens=400)
    assert seen == []


async def test_the_async_transport_books_without_blocking_the_loop(limiter: FakeLimiter) -> None:
    seen: list[Any] = []

    async def answer(request: Any) -> Any:
        seen.append(request)
        return HTTP.Response(200, json=COMPLETION)

    paced = AsyncPacedTransport(HTTP.MockTransport(answer), settings_with(), (HTTP.ConnectError,))
    client = openai.AsyncOpenAI(
        api_key="nv-test", base_url=f"{BASE}/v1/openai/", max_retries=0, http_client=HTTP.AsyncClient(transport=paced)
    )
    answer_ = await client.chat.completions.create(model="HCX-005", messages=MESSAGES, max_tokens=5)
    await client.close()
    assert answer_.usage is not None and answer_.usage.prompt_tokens == 9
    assert limiter.async_acquires == 1 and limiter.reservations[0].settled == 9 + 5 and len(seen) == 1
    assert limiter.reservations[0].awaited  # settled through the awaited twin


def test_a_success_without_a_readable_body_keeps_the_estimate(limiter: FakeLimiter) -> None:
    """Garbage from the service never settles a reservation low: the estimate stands."""
    _, inner = answer_with(HTTP.Response(200, content=b"<html>gateway</html>"))
    raw = sdk(inner).chat.completions.with_raw_response.create(model="HCX-005", messages=MESSAGES, max_tokens=4)
    assert raw.http_response.content == b"<html>gateway</html>"  # what the SDK makes of it is its own business
    (reservation,) = limiter.reservations
    assert reservation.settled is None and not reservation.released
