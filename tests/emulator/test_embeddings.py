"""Embeddings v1 and v2: shapes, token limits, budgets, and the vectors' geometry."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from airflow_provider_clova.testing.emulator.embedding import cosine, embed_text
from tests.emulator.conftest import Api

pytestmark = pytest.mark.integration


PAIRS = [
    # (source, paraphrase, unrelated)
    ("The weather is sunny today.", "Today the weather is sunny!", "Airflow schedules data pipelines."),
    ("How do I reset my password?", "How can I reset my password", "The cat sat on the mat."),
    ("오늘 서울 날씨가 맑습니다", "오늘은 서울 날씨가 맑네요", "데이터 파이프라인을 예약합니다"),
    ("튜닝 작업이 실패했습니다", "튜닝 작업 실패", "점심 메뉴는 김치찌개입니다"),
]


@pytest.mark.parametrize(("source", "paraphrase", "unrelated"), PAIRS)
def test_a_paraphrase_is_closer_than_an_unrelated_text(source: str, paraphrase: str, unrelated: str) -> None:
    v = embed_text(source)
    assert cosine(v, embed_text(paraphrase)) > cosine(v, embed_text(unrelated)) + 0.2


@pytest.mark.parametrize("text", ["hello", "안녕하세요 세계", "...", " ", "a" * 5000])
def test_vectors_are_deterministic_unit_vectors(text: str) -> None:
    v = embed_text(text)
    assert len(v) == 1024 and v == embed_text(text)
    assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-9)
    assert len(embed_text(text, dimensions=16)) == 16


def test_v2_shape_and_tokens(api: Api) -> None:
    response = api.post("/v1/api-tools/embedding/v2", {"text": "오늘 날씨가 맑습니다"})
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert set(result) == {"embedding", "inputTokens"}
    assert result["embedding"] == embed_text("오늘 날씨가 맑습니다")
    assert result["inputTokens"] == 9  # one per Hangul syllable, as the chat tokenizer counts


@pytest.mark.parametrize("model", ["clir-emb-dolphin", "clir-sts-dolphin"])
def test_v1_models(api: Api, model: str) -> None:
    result = api.post(f"/v1/api-tools/embedding/{model}", {"text": "hello"}).json()["result"]
    assert len(result["embedding"]) == 1024 and result["inputTokens"] == 2


@pytest.mark.parametrize(
    ("path", "words", "code"),
    [
        ("/v1/api-tools/embedding/clir-emb-dolphin", 500, 200),
        ("/v1/api-tools/embedding/clir-emb-dolphin", 501, 400),
        ("/v1/api-tools/embedding/v2", 8192, 200),
        ("/v1/api-tools/embedding/v2", 8193, 400),
    ],
)
def test_token_limits(make_api: Callable[..., Api], path: str, words: int, code: int) -> None:
    api = make_api(limits={"default": {"qpm": 60, "tpm": 100_000}})
    response = api.post(path, {"text": " ".join(["word"] * words)})  # one token per 4-letter word
    assert response.status_code == code
    if code == 400:
        assert response.json()["status"]["code"] == "40003"


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("/v1/api-tools/embedding/v2", {"text": "  "}, "40004"),
        ("/v1/api-tools/embedding/v2", {}, "40001"),
        ("/v1/api-tools/embedding/v2", {"text": ["a"]}, "40001"),
        ("/v1/api-tools/embedding/clir-unknown", {"text": "a"}, "40080"),
        ("/v1/api-tools/embedding/bge-m3", {"text": "a"}, "40080"),
    ],
)
def test_refusals(api: Api, path: str, body: dict[str, object], code: str) -> None:
    response = api.post(path, body)
    assert (response.status_code, response.json()["status"]["code"]) == (400, code)


def test_embeddings_are_charged_input_tokens_and_refused_over_budget(make_api: Callable[..., Api]) -> None:
    api = make_api(limits={"bge-m3": {"qpm": 2, "tpm": 1000}})
    for _ in range(2):
        assert api.post("/v1/api-tools/embedding/v2", {"text": "hello world"}).status_code == 200
    refused = api.post("/v1/api-tools/embedding/v2", {"text": "hello world"})
    assert (refused.status_code, refused.json()["status"]["code"]) == (429, "42901")
    (window,) = api.stats()["windows"]
    assert (window["model"], window["served"], window["refused"]) == ("bge-m3", 2, 1)
    assert window["max_tokens_in_window"] == 2 * 4  # "hello world": 4 tokens, no maxTokens to add
