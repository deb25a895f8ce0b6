"""The OpenAI-compatible API over raw HTTP: shapes, refusals (40002), errors, shared budgets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_clova.testing.emulator.embedding import embed_text
from tests.emulator.conftest import Api

pytestmark = pytest.mark.integration

ASK = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Tell me about Seoul, 2024!"}]
CHAT = "/v1/openai/chat/completions"


def error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


@pytest.mark.parametrize(
    ("model", "native_path"), [("HCX-005", "/v3/chat-completions/HCX-005"), ("HCX-003", "/v1/chat-completions/HCX-003")]
)
def test_chat_answers_the_native_reply_in_openai_shape(api: Api, model: str, native_path: str) -> None:
    body = {"model": model, "messages": ASK, "max_tokens": 7, "temperature": 0.5, "seed": 3}
    result = api.post(CHAT, body).json()
    assert set(result) == {"id", "object", "created", "model", "choices", "usage"}
    assert result["object"] == "chat.completion" and result["model"] == model
    assert result["id"].startswith("chatcmpl-") and isinstance(result["created"], int)
    (choice,) = result["choices"]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    # The same answer as the native API gives for the same request.
    native = api.post(native_path, {"messages": ASK, "maxTokens": 7, "temperature": 0.5, "seed": 3}).json()
    assert choice["message"]["content"] == native["result"]["message"]["content"]
    assert choice["finish_reason"] == "length"
    usage = result["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] == 7


def test_natural_end_is_stop_and_stop_strings_are_passed_on(api: Api) -> None:
    full = api.post(CHAT, {"model": "HCX-003", "messages": ASK}).json()["choices"][0]
    assert full["finish_reason"] == "stop"
    cut = api.post(CHAT, {"model": "HCX-003", "messages": ASK, "stop": "."}).json()["choices"][0]
    assert cut["message"]["content"] == full["message"]["content"].split(".")[0] and cut["finish_reason"] == "stop"


def test_clova_knobs_ride_in_the_body(api: Api) -> None:
    v3 = {"model": "HCX-005", "messages": ASK, "top_k": 5, "top_p": 0.5, "repetition_penalty": 1.5}
    assert api.post(CHAT, v3).status_code == 200
    v1 = {"model": "HCX-003", "messages": ASK, "top_k": 5, "repeat_penalty": 3}
    assert api.post(CHAT, v1).status_code == 200
    out_of_range = api.post(CHAT, {"model": "HCX-005", "messages": ASK, "temperature": 1.5})
    assert error(out_of_range) == (400, "40001")


def test_hcx_007_returns_thinking_content(api: Api) -> None:
    body = {"model": "HCX-007", "messages": ASK, "max_completion_tokens": 300, "reasoning_effort": "medium"}
    message = api.post(CHAT, body).json()["choices"][0]["message"]
    assert message["thinking_content"] and message["content"]
    native = {"model": "HCX-007", "messages": ASK, "thinking": {"effort": "none"}}
    assert "thinking_content" not in api.post(CHAT, native).json()["choices"][0]["message"]
    refused = api.post(CHAT, {"model": "HCX-007", "messages": ASK, "max_tokens": 100})
    assert error(refused) == (400, "40001")


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"frequency_penalty": 0.1}, "frequency_penalty"),
        ({"presence_penalty": 0.1}, "presence_penalty"),
        ({"logprobs": True}, "logprobs"),
        ({"logit_bias": {"1": 2}}, "logit_bias"),
        ({"n": 2}, "n"),
        ({"stream": True}, "stream"),
        ({"user": "me"}, "user"),
        ({"repeat_penalty": 2}, "repeat_penalty"),  # v1's knob, on a v3 model
        ({"reasoning_effort": "low"}, "reasoning_effort"),  # HCX-005 does not reason
    ],
)
def test_unsupported_parameters_are_40002(api: Api, extra: dict[str, Any], param: str) -> None:
    response = api.post(CHAT, {"model": "HCX-005", "messages": ASK, **extra})
    assert error(response) == (400, "40002")
    body = response.json()["error"]
    assert body["param"] == param and body["type"] == "invalid_request_error" and param in body["message"]
    assert api.stats()["windows"] == []  # refused before anything was charged


def test_unknown_model_is_40080(api: Api) -> None:
    assert error(api.post(CHAT, {"model": "gpt-4o", "messages": ASK})) == (400, "40080")


def test_embeddings(api: Api) -> None:
    body = {"model": "bge-m3", "input": "오늘 날씨가 맑습니다", "encoding_format": "float", "dimensions": 1024}
    result = api.post("/v1/openai/embeddings", body).json()
    assert result["object"] == "list" and result["model"] == "bge-m3"
    (item,) = result["data"]
    assert item == {"object": "embedding", "index": 0, "embedding": embed_text("오늘 날씨가 맑습니다")}
    assert result["usage"] == {"prompt_tokens": 9, "total_tokens": 9}
    # the same vector as the native v2 route
    native = api.post("/v1/api-tools/embedding/v2", {"text": "오늘 날씨가 맑습니다"}).json()["result"]
    assert native["embedding"] == item["embedding"]


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"encoding_format": "base64"}, "40002"),
        ({"dimensions": 256}, "40002"),
        ({"input": ["a", "b"]}, "40002"),
        ({"user": "me"}, "40002"),
        ({"model": "text-embedding-3-small"}, "40080"),
        ({"input": ""}, "40004"),
    ],
)
def test_embedding_refusals(api: Api, extra: dict[str, Any], code: str) -> None:
    response = api.post("/v1/openai/embeddings", {"model": "clir-emb-dolphin", "input": "hi", **extra})
    assert error(response) == (400, code)


def test_models_lists_chat_and_embedding_models(api: Api) -> None:
    result = api.get("/v1/openai/models").json()
    assert result["object"] == "list"
    ids = {m["id"] for m in result["data"]}
    assert {"HCX-003", "HCX-005", "HCX-007", "bge-m3", "clir-emb-dolphin"} <= ids
    assert all(m["object"] == "model" for m in result["data"])


def test_one_budget_with_the_native_api(make_api: Callable[..., Api]) -> None:
    api = make_api(limits={"HCX-005": {"qpm": 2, "tpm": 100_000}})
    assert api.post("/v3/chat-completions/HCX-005", {"messages": ASK}).status_code == 200
    assert api.post(CHAT, {"model": "HCX-005", "messages": ASK}).status_code == 200
    refused = api.post(CHAT, {"model": "HCX-005", "messages": ASK})
    assert error(refused) == (429, "42901")
    assert refused.json()["error"]["type"] == "rate_limit_error"
    (window,) = api.stats()["windows"]
    assert (window["served"], window["refused"]) == (2, 1)


def test_auth_errors_use_the_openai_shape(api: Api) -> None:
    response = api.post(CHAT, {"model": "HCX-005", "messages": ASK}, {"Authorization": "Bearer nv-nope"})
    assert error(response) == (401, "40104")
    assert response.json()["error"]["type"] == "authentication_error"
