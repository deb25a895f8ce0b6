"""Embedding calls in the core client: paths, the typed result, pacing by the embedding model's
budget (reserved by estimate, settled with ``inputTokens``), refusal of texts proven too long
before anything is sent, and the limits table's rows and alias for the embedding tools."""

from __future__ import annotations

import json

import pytest
import respx

from airflow_provider_clova.client import calls
from airflow_provider_clova.client.client import AsyncClovaStudioClient, ClovaStudioClient
from airflow_provider_clova.client.embeddings import content_hash, embedding_model, estimate_tokens, least_tokens
from airflow_provider_clova.client.errors import ClovaStudioBadRequestError, ClovaStudioConfigError
from airflow_provider_clova.client.limits import Budget, lookup_budget
from airflow_provider_clova.client.models import EmbeddingResult
from airflow_provider_clova.testing.samples import fail, ok

from .conftest import FakeLimiter, make_config

VECTOR = [0.25, -0.5, 0.75]


def answer(tokens: int = 3) -> dict[str, object]:
    return {"embedding": VECTOR, "inputTokens": tokens}


@pytest.mark.parametrize(
    ("model", "path", "budget_model"),
    [
        ("embedding-v2", "/v1/api-tools/embedding/v2", "embedding-v2"),
        ("bge-m3", "/v1/api-tools/embedding/v2", "embedding-v2"),
        ("clir-emb-dolphin", "/v1/api-tools/embedding/clir-emb-dolphin", "clir-emb-dolphin"),
        ("CLIR-STS-DOLPHIN", "/v1/api-tools/embedding/clir-sts-dolphin", "clir-sts-dolphin"),
    ],
)
def test_embedding_call_shape(model: str, path: str, budget_model: str) -> None:
    call = calls.embedding("안녕 hello", model=model)
    assert (call.method, call.path, call.json, call.idempotent) == ("POST", path, {"text": "안녕 hello"}, True)
    assert call.budget_model == budget_model
    assert call.estimated_cost == 7 and call.reserved_output_tokens == 0  # non-whitespace characters


def test_sync_embed_settles_with_input_tokens(
    api: respx.MockRouter, sleeps: list[float], fake_limiter: FakeLimiter
) -> None:
    route = api.post("/v1/api-tools/embedding/v2").mock(return_value=ok(answer(2)))
    with ClovaStudioClient(make_config(auth="bearer")) as client:
        result = client.embed("hello world")
    assert result == EmbeddingResult(VECTOR, 2)
    assert json.loads(route.calls[0].request.content) == {"text": "hello world"}
    assert route.calls[0].request.headers["Authorization"].startswith("Bearer ")
    (reservation,) = fake_limiter.reservations
    assert reservation.cost == 10 and reservation.settled == 2  # estimate, then the real input tokens
    assert fake_limiter.key == ("acct-test", "embedding-v2", "test")


async def test_async_embed_retries_a_429_and_releases_the_refused_reservation(
    api: respx.MockRouter, sleeps: list[float], fake_limiter: FakeLimiter
) -> None:
    api.post("/v1/api-tools/embedding/clir-emb-dolphin").mock(
        side_effect=[fail(429, "42901", headers={"Retry-After": "1"}), ok(answer(4))]
    )
    async with AsyncClovaStudioClient(make_config(auth="bearer")) as client:
        result = await client.embed("four token text", "clir-emb-dolphin")
    assert result.input_tokens == 4 and result.embedding == VECTOR
    first, second = fake_limiter.reservations
    assert first.released and second.settled == 4 and fake_limiter.async_acquires == 2
    # Every correction was awaited (a budget store's is a round trip that must not block the loop).
    assert first.awaited and second.awaited and fake_limiter.async_rate_limited == 1
    assert sleeps == [1.0]


def test_the_service_refusal_is_a_typed_error(api: respx.MockRouter, fake_limiter: FakeLimiter) -> None:
    api.post("/v1/api-tools/embedding/clir-sts-dolphin").mock(return_value=fail(400, "40003", "Text too long"))
    with ClovaStudioClient(make_config(auth="bearer")) as client, pytest.raises(ClovaStudioBadRequestError) as caught:
        client.embed("word " * 520, "clir-sts-dolphin")
    assert caught.value.code == "40003" and "split the text" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "model", "fragment"),
    [
        ("x" * (16 * 500 + 1), "clir-emb-dolphin", "at least 501 tokens"),
        ("가" * (16 * 8192 + 16), "embedding-v2", "at least 8193 tokens"),
        ("   ", "embedding-v2", "empty"),
        (42, "embedding-v2", "must be a string"),
        ("hi", "text-embedding-3-small", "unknown model"),
    ],
)
def test_refused_before_sending(api: respx.MockRouter, text: object, model: str, fragment: str) -> None:
    with ClovaStudioClient(make_config(auth="bearer")) as client, pytest.raises(ClovaStudioConfigError) as caught:
        client.embed(text, model)  # type: ignore[arg-type]
    assert fragment in str(caught.value) and "Fix:" in str(caught.value)
    assert not api.calls


def test_a_text_near_the_limit_is_sent_not_guessed() -> None:
    info = embedding_model("clir-emb-dolphin")
    text = "x" * (16 * 500)  # could be 500 tokens: only the service can tell
    assert least_tokens(text, info) == 500 and estimate_tokens(text) == 8000
    assert calls.embedding(text, model="clir-emb-dolphin").json == {"text": text}


def test_content_hash_is_per_text_and_model() -> None:
    assert content_hash("a", "bge-m3") == content_hash("a", "embedding-v2")
    assert content_hash("a", "embedding-v2") != content_hash("a", "clir-emb-dolphin")
    assert content_hash("a", "embedding-v2") != content_hash("a ", "embedding-v2")
    assert len(content_hash("a", "embedding-v2")) == 64


def test_embedding_limits_are_conservative_defaults_that_overrides_and_aliases_reach() -> None:
    floor = Budget(qpm=60, tpm=10_000)
    for model in ("embedding-v2", "bge-m3", "clir-emb-dolphin", "clir-sts-dolphin"):
        assert lookup_budget(model) == floor and lookup_budget(model, "service") == floor
    assert lookup_budget("bge-m3", overrides={"embedding-v2": {"qpm": 600}}) == Budget(qpm=600, tpm=10_000)
    assert lookup_budget("embedding-v2", overrides={"BGE-M3": {"tpm": 500_000}}) == Budget(qpm=60, tpm=500_000)
    # an override for one embedding model does not leak to another
    assert lookup_budget("clir-emb-dolphin", overrides={"embedding-v2": {"qpm": 600}}) == floor
