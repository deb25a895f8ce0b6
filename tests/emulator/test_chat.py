"""Rule 3: chat v1/v3, token counting, deterministic replies, limits of context and parameters."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.emulator.conftest import Api

pytestmark = pytest.mark.integration

# The documented tokenizer, restated here on purpose (not imported from the emulator).
TOKEN = re.compile(r"[A-Za-z]{1,4}|[0-9]{1,3}|[^\sA-Za-z0-9]")


def tokens(messages: list[dict[str, Any]]) -> int:
    return sum(4 + len(TOKEN.findall(m["content"])) for m in messages)


ASK = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Tell me about Seoul, 2024!"}]


def status(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["status"]["code"]


def test_v1_result_shape(api: Api) -> None:
    response = api.post("/v1/chat-completions/HCX-003", {"messages": ASK})
    assert response.status_code == 200
    result = response.json()["result"]
    assert set(result) == {"message", "stopReason", "inputLength", "outputLength", "seed", "aiFilter"}
    assert result["message"]["role"] == "assistant" and result["message"]["content"]
    assert result["stopReason"] == "end_token"  # a natural end; stop_before only when a stopBefore hit
    assert result["inputLength"] == tokens(ASK)
    assert result["outputLength"] == len(TOKEN.findall(result["message"]["content"])) <= 100
    assert isinstance(result["seed"], int) and result["seed"] > 0
    assert {f["groupName"] for f in result["aiFilter"]} == {"curse", "unsafeContents"}


def test_v3_result_shape(api: Api) -> None:
    result = api.post("/v3/chat-completions/HCX-005", {"messages": ASK, "includeAiFilters": False}).json()["result"]
    assert set(result) == {"message", "finishReason", "usage", "seed", "aiFilter"}
    assert result["finishReason"] == "stop" and result["aiFilter"] is None
    usage = result["usage"]
    assert usage["promptTokens"] == tokens(ASK)
    assert usage["completionTokens"] == len(TOKEN.findall(result["message"]["content"]))
    assert usage["totalTokens"] == usage["promptTokens"] + usage["completionTokens"]


def test_replies_are_deterministic(api: Api, make_api: Any) -> None:
    first = api.post("/v3/chat-completions/HCX-005", {"messages": ASK}).json()["result"]
    again = api.post("/v3/chat-completions/HCX-005", {"messages": ASK}).json()["result"]
    elsewhere = make_api().post("/v3/chat-completions/HCX-005", {"messages": ASK}).json()["result"]
    assert first == again == elsewhere
    seeded = api.post("/v3/chat-completions/HCX-005", {"messages": ASK, "seed": 42}).json()["result"]
    assert seeded["seed"] == 42 and seeded["message"] != first["message"]
    other_model = api.post("/v3/chat-completions/HCX-DASH-002", {"messages": ASK}).json()["result"]
    assert other_model["message"] != first["message"]


@pytest.mark.parametrize(
    ("path", "field", "reason_field"),
    [
        ("/v1/chat-completions/HCX-003", "outputLength", "stopReason"),
        ("/v3/chat-completions/HCX-005", None, "finishReason"),
    ],
)
def test_output_is_cut_at_max_tokens(api: Api, path: str, field: str | None, reason_field: str) -> None:
    result = api.post(path, {"messages": ASK, "maxTokens": 5}).json()["result"]
    assert len(TOKEN.findall(result["message"]["content"])) == 5
    assert result[reason_field] == "length"
    if field:
        assert result[field] == 5
    else:
        assert result["usage"]["completionTokens"] == 5


def test_max_completion_tokens_is_the_v3_alternative(api: Api) -> None:
    result = api.post("/v3/chat-completions/HCX-005", {"messages": ASK, "maxCompletionTokens": 3}).json()["result"]
    assert result["usage"]["completionTokens"] == 3 and result["finishReason"] == "length"
    both = api.post("/v3/chat-completions/HCX-005", {"messages": ASK, "maxTokens": 10, "maxCompletionTokens": 10})
    assert status(both) == (400, "40001")
    assert "maxCompletionTokens" in both.json()["status"]["message"]


def test_stop_sequences(api: Api) -> None:
    full = api.post("/v1/chat-completions/HCX-003", {"messages": ASK}).json()["result"]["message"]["content"]
    stop = full.split(".")[0][-3:]
    v1 = api.post("/v1/chat-completions/HCX-003", {"messages": ASK, "stopBefore": [stop]}).json()["result"]
    assert v1["message"]["content"] == full[: full.index(stop)] and v1["stopReason"] == "stop_before"
    full3 = api.post("/v3/chat-completions/HCX-005", {"messages": ASK}).json()["result"]["message"]["content"]
    v3 = api.post("/v3/chat-completions/HCX-005", {"messages": ASK, "stop": ["."]}).json()["result"]
    assert v3["message"]["content"] == full3[: full3.index(".")] and v3["finishReason"] == "stop"


def test_v3_temperature_zero_is_valid(api: Api) -> None:
    response = api.post("/v3/chat-completions/HCX-005", {"messages": ASK, "temperature": 0})
    assert response.status_code == 200, response.text
    v1 = api.post("/v1/chat-completions/HCX-003", {"messages": ASK, "temperature": 0})
    assert status(v1) == (400, "40001")  # v1 keeps (0, 1]


def test_hcx_007_reasons_and_returns_thinking_content(api: Api) -> None:
    body = {"messages": ASK, "thinking": {"effort": "high"}, "maxCompletionTokens": 400}
    result = api.post("/v3/chat-completions/HCX-007", body).json()["result"]
    thinking, content = result["message"]["thinkingContent"], result["message"]["content"]
    assert thinking and content
    # maxCompletionTokens budgets the reasoning and the answer together
    assert result["usage"]["completionTokens"] == len(TOKEN.findall(thinking)) + len(TOKEN.findall(content))
    none = api.post("/v3/chat-completions/HCX-007", {"messages": ASK, "thinking": {"effort": "none"}}).json()
    assert "thinkingContent" not in none["result"]["message"]
    plain = api.post("/v3/chat-completions/HCX-005", {"messages": ASK}).json()["result"]
    assert "thinkingContent" not in plain["message"]


def test_hcx_007_takes_max_completion_tokens_only(api: Api) -> None:
    refused = api.post("/v3/chat-completions/HCX-007", {"messages": ASK, "maxTokens": 100})
    assert status(refused) == (400, "40001")
    assert "maxTokens" in refused.json()["status"]["message"] and "maxCompletionTokens" in refused.text
    over = api.post("/v3/chat-completions/HCX-007", {"messages": ASK, "maxCompletionTokens": 32769})
    assert status(over) == (400, "40001")
    # Only HCX-007 reasons: thinking is refused elsewhere.
    other = api.post("/v3/chat-completions/HCX-005", {"messages": ASK, "thinking": {"effort": "low"}})
    assert status(other) == (400, "40001") and "HCX-007" in other.text


@pytest.mark.parametrize(("effort", "default"), [("none", 512), ("low", 5120), ("medium", 10240), ("high", 20480)])
def test_hcx_007_default_budget_follows_effort(api: Api, effort: str, default: int) -> None:
    body = {"messages": ASK, "thinking": {"effort": effort}}
    assert api.post("/v3/chat-completions/HCX-007", body).status_code == 200
    (window,) = api.stats()["windows"]
    assert window["max_tokens_in_window"] == tokens(ASK) + default  # TPM: input + maxCompletionTokens


def test_default_max_tokens_is_100(api: Api) -> None:
    api.post("/v3/chat-completions/HCX-005", {"messages": ASK})
    (window,) = api.stats()["windows"]
    assert window["max_tokens_in_window"] == tokens(ASK) + 100


def long_message(n_tokens: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": "a " * (n_tokens - 4)}]  # 4 = per-message overhead


def test_context_limits(api: Api) -> None:
    assert api.post("/v1/chat-completions/HCX-003", {"messages": long_message(7600), "maxTokens": 1}).status_code == 200
    over_input = api.post("/v1/chat-completions/HCX-003", {"messages": long_message(7601), "maxTokens": 1})
    assert status(over_input) == (400, "40003")
    fits = api.post("/v1/chat-completions/HCX-003", {"messages": long_message(7000), "maxTokens": 1192})
    assert fits.status_code == 200
    over_total = api.post("/v1/chat-completions/HCX-003", {"messages": long_message(7000), "maxTokens": 1193})
    assert status(over_total) == (400, "40003")
    dash = api.post("/v3/chat-completions/HCX-DASH-002", {"messages": long_message(31990), "maxTokens": 11})
    assert status(dash) == (400, "40003")
    # a refused request spends no budget
    assert {w["served"] for w in api.stats()["windows"]} == {2}


V1_BAD = [
    ("temperature", 0),
    ("temperature", 1.01),
    ("topK", -1),
    ("topK", 129),
    ("topK", 1.5),
    ("topP", 0),
    ("topP", 1.1),
    ("repeatPenalty", 0),
    ("repeatPenalty", 10.5),
    ("maxTokens", 0),
    ("maxTokens", 4097),
    ("stopBefore", "x"),
    ("includeAiFilters", "yes"),
    ("seed", -1),
    ("temperature", "0.5"),
]
V3_BAD = [
    ("temperature", 1.5),
    ("topP", 0),
    ("topK", 200),
    ("repetitionPenalty", 0),
    ("repetitionPenalty", 2.1),
    ("maxTokens", 0),
    ("maxTokens", 4097),
    ("stop", [1]),
    ("thinking", {"effort": "huge"}),
]


@pytest.mark.parametrize(("field", "value"), V1_BAD)
def test_v1_parameter_ranges(api: Api, field: str, value: Any) -> None:
    response = api.post("/v1/chat-completions/HCX-003", {"messages": ASK, field: value})
    assert status(response) == (400, "40001")
    assert field in response.json()["status"]["message"]


@pytest.mark.parametrize(("field", "value"), V3_BAD)
def test_v3_parameter_ranges(api: Api, field: str, value: Any) -> None:
    response = api.post("/v3/chat-completions/HCX-005", {"messages": ASK, field: value})
    assert status(response) == (400, "40001")
    assert field in response.json()["status"]["message"]


def test_parameter_edges_accepted(api: Api) -> None:
    edges_v1 = {"temperature": 1, "topK": 128, "topP": 1, "repeatPenalty": 10, "maxTokens": 4096}
    assert api.post("/v1/chat-completions/HCX-003", {"messages": long_message(10), **edges_v1}).status_code == 200
    edges_v3 = {"temperature": 0, "topK": 0, "repetitionPenalty": 2, "thinking": {"effort": "low"}}
    assert api.post("/v3/chat-completions/HCX-007", {"messages": ASK, **edges_v3}).status_code == 200
    big = api.post("/v3/chat-completions/HCX-007", {"messages": ASK, "maxCompletionTokens": 32768})
    assert big.status_code == 200


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ([], "messages"),
        (None, "messages"),
        ([{"role": "robot", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": 3}], "messages[0].content"),
        ([{"role": "user", "content": [{"type": "text", "text": "x"}]}], "messages[0].content"),  # v1: strings only
    ],
)
def test_messages_are_checked(api: Api, messages: Any, field: str) -> None:
    response = api.post("/v1/chat-completions/HCX-003", {"messages": messages})
    assert status(response) == (400, "40001")
    assert field in response.json()["status"]["message"]


def test_v3_content_parts(api: Api) -> None:
    parts = [{"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": " you"}]}]
    result = api.post("/v3/chat-completions/HCX-005", {"messages": parts}).json()["result"]
    assert result["usage"]["promptTokens"] == 4 + 3


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1/chat-completions/{}", "HCX-005"),
        ("/v3/chat-completions/{}", "HCX-003"),
        ("/v3/chat-completions/{}", "GPT-4"),
        ("/v1/api-tools/chat-tokenize/{}", "HCX-005"),
        ("/v3/api-tools/chat-tokenize/{}", "HCX-DASH-001"),
    ],
)
def test_wrong_api_version_or_unknown_model_is_40080(api: Api, path: str, model: str) -> None:
    response = api.post(path.format(model), {"messages": ASK})
    assert status(response) == (400, "40080")
    assert model in response.json()["status"]["message"]


def test_tokenize_result(api: Api) -> None:
    messages = [*ASK, {"role": "assistant", "content": "하이퍼클로바X입니다."}]
    response = api.post("/v1/api-tools/chat-tokenize/HCX-003", {"messages": messages})
    assert response.status_code == 200
    counted = response.json()["result"]["messages"]
    assert [(m["role"], m["content"]) for m in counted] == [(m["role"], m["content"]) for m in messages]
    assert [m["count"] for m in counted] == [4 + len(TOKEN.findall(m["content"])) for m in messages]
    assert counted[2]["count"] == 4 + 11  # 9 Hangul syllables, "X" and ".": one token each
    chat = api.post("/v1/chat-completions/HCX-003", {"messages": messages}).json()["result"]
    assert chat["inputLength"] == sum(m["count"] for m in counted)
    v3 = api.post("/v3/api-tools/chat-tokenize/HCX-005", {"messages": messages})
    assert v3.json()["result"]["messages"] == counted


def test_tokenize_does_not_spend_budget(make_api: Any) -> None:
    api = make_api(limits={"HCX-005": {"qpm": 1}})
    for _ in range(3):
        assert api.post("/v3/api-tools/chat-tokenize/HCX-005", {"messages": ASK}).status_code == 200
    assert api.post("/v3/chat-completions/HCX-005", {"messages": ASK}).status_code == 200
    assert api.stats()["windows"][0]["served"] == 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=0, max_size=80))
def test_token_count_matches_the_documented_formula(shared_api: Api, text: str) -> None:
    response = shared_api.post("/v3/api-tools/chat-tokenize/HCX-005", {"messages": [{"role": "user", "content": text}]})
    assert response.status_code == 200
    assert response.json()["result"]["messages"][0]["count"] == 4 + len(TOKEN.findall(text))
