"""ClovaStudioChatCompletionOperator through the real hook and client, HTTP mocked with respx:
v1/v3 routing by (base) model, tuned tasks, parameter errors before any request, pool share."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from airflow_provider_clova.client import client as client_module
from airflow_provider_clova.client import limiter as limiter_module
from airflow_provider_clova.client.errors import ClovaStudioConfigError
from airflow_provider_clova.operators.chat import ClovaStudioChatCompletionOperator
from airflow_provider_clova.pools import pool_name
from airflow_provider_clova.testing.samples import ok, task_json

HOST = "https://clova.chattest.invalid"
API_KEY = "nv-chat-op-api-key-0123456789abcdef"
ROOMY = {"HCX-003": {"qpm": 100000, "tpm": 10**8}, "HCX-005": {"qpm": 100000, "tpm": 10**8}}
V1_RESULT = {
    "message": {"role": "assistant", "content": "v1 says hi"},
    "stopReason": "stop_before",
    "inputLength": 12,
    "outputLength": 4,
}
V3_RESULT = {
    "message": {"role": "assistant", "content": "v3 says hi"},
    "finishReason": "stop",
    "usage": {"promptTokens": 9, "completionTokens": 3, "totalTokens": 12},
}
TASK = task_json("tunedab1", "SUCCEEDED", name="t", model="HCX-003")


@pytest.fixture(autouse=True)
def connection(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"auth_type": "bearer", "limits": ROOMY, "pool_slots": 4}
    body = {"conn_type": "clova_studio", "host": HOST, "password": API_KEY, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_CLOVA_STUDIO_DEFAULT", json.dumps(body))
    limiter_module.clear_shared_limiters()


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=HOST, assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def shares(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The share every chat call's limiter was configured with."""
    seen: list[float] = []
    real = limiter_module.shared_limiter

    def spy(key: Any, budget: Any, *, window_seconds: float = 60.0, share: float = 1.0) -> Any:
        seen.append(share)
        return real(key, budget, window_seconds=window_seconds, share=share)

    monkeypatch.setattr(client_module, "shared_limiter", spy)  # patched where the client looks it up
    return seen


def body_of(route: respx.Route, index: int = -1) -> dict[str, Any]:
    return dict(json.loads(route.calls[index].request.content))


def test_template_fields_are_a_tuple_with_the_request() -> None:
    fields = ClovaStudioChatCompletionOperator.template_fields
    assert isinstance(fields, tuple)
    for name in ("messages", "prompt", "system_prompt", "model", "tuning_task_id", "parameters", "clova_conn_id"):
        assert name in fields


def test_v3_model_goes_to_v3_and_returns_the_documented_shape(api: respx.MockRouter) -> None:
    route = api.post("/v3/chat-completions/HCX-005").mock(return_value=ok(V3_RESULT))
    op = ClovaStudioChatCompletionOperator(
        task_id="chat",
        model="HCX-005",
        messages=[{"role": "user", "content": "hello"}],
        parameters={"temperature": 0.3, "max_tokens": 64},
    )
    result = op.execute({})
    assert result == {
        "content": "v3 says hi",
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        "model": "HCX-005",
        "tuning_task_id": None,
        "thinking_content": None,
    }
    sent = body_of(route)
    assert sent["messages"] == [{"role": "user", "content": "hello"}]
    assert sent["temperature"] == 0.3 and sent["maxTokens"] == 64
    assert route.calls[0].request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert API_KEY not in json.dumps(result)


def test_a_reasoning_model_returns_its_thinking_content(api: respx.MockRouter) -> None:
    answer = {
        "message": {"role": "assistant", "content": "42", "thinkingContent": "6 x 7 = 42"},
        "finishReason": "stop",
        "usage": {"promptTokens": 9, "completionTokens": 30, "totalTokens": 39},
    }
    route = api.post("/v3/chat-completions/HCX-007").mock(return_value=ok(answer))
    op = ClovaStudioChatCompletionOperator(
        task_id="chat",
        model="HCX-007",
        prompt="6 x 7?",
        parameters={"thinking": {"effort": "medium"}, "maxCompletionTokens": 2048, "temperature": 0},
    )
    result = op.execute({})
    assert (result["content"], result["thinking_content"]) == ("42", "6 x 7 = 42")
    sent = body_of(route)
    assert sent["thinking"] == {"effort": "medium"} and sent["maxCompletionTokens"] == 2048
    assert sent["temperature"] == 0.0


def test_a_reasoning_model_refuses_max_tokens_before_sending(api: respx.MockRouter) -> None:
    route = api.post("/v3/chat-completions/HCX-007").mock(return_value=ok(V3_RESULT))
    op = ClovaStudioChatCompletionOperator(task_id="chat", model="HCX-007", prompt="hi", parameters={"maxTokens": 64})
    with pytest.raises(ClovaStudioConfigError, match="rename maxTokens to maxCompletionTokens"):
        op.execute({})
    assert not route.called


def test_v1_model_goes_to_v1_with_prompt_and_system_prompt(api: respx.MockRouter) -> None:
    route = api.post("/v1/chat-completions/HCX-003").mock(return_value=ok(V1_RESULT))
    op = ClovaStudioChatCompletionOperator(
        task_id="chat", model="HCX-003", prompt="What is Airflow?", system_prompt="Answer briefly."
    )
    result = op.execute({})
    assert result["content"] == "v1 says hi"
    assert result["finish_reason"] == "stop_before"
    assert result["usage"] == {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}
    assert body_of(route)["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is Airflow?"},
    ]


def test_tuned_task_with_its_base_model_needs_no_lookup(api: respx.MockRouter) -> None:
    lookup = api.get("/tuning/v2/tasks/tunedab1").mock(return_value=ok(TASK))
    route = api.post("/v3/tasks/tunedab1/chat-completions").mock(return_value=ok(V3_RESULT))
    op = ClovaStudioChatCompletionOperator(task_id="chat", tuning_task_id="tunedab1", model="HCX-005", prompt="hi")
    result = op.execute({})
    assert route.call_count == 1 and lookup.call_count == 0
    assert result["model"] == "HCX-005" and result["tuning_task_id"] == "tunedab1"


def test_tuned_task_without_model_is_routed_by_its_base_model(api: respx.MockRouter) -> None:
    lookup = api.get("/tuning/v2/tasks/tunedab1").mock(return_value=ok(TASK))
    route = api.post("/v1/tasks/tunedab1/chat-completions").mock(return_value=ok(V1_RESULT))
    op = ClovaStudioChatCompletionOperator(
        task_id="chat", tuning_task_id="tunedab1", prompt="hi", parameters={"repeatPenalty": 2.0}
    )
    result = op.execute({})
    assert lookup.call_count == 1 and route.call_count == 1
    assert result["model"] == "HCX-003" and result["content"] == "v1 says hi"
    assert body_of(route)["repeatPenalty"] == 2.0


@pytest.mark.parametrize(
    ("model", "parameters", "named"),
    [
        ("HCX-005", {"temperature": 2}, "temperature"),
        ("HCX-005", {"topK": 500}, "topK"),
        ("HCX-003", {"maxTokens": 5000}, "maxTokens"),
        ("HCX-005", {"repeatPenalty": 1.0}, "repetitionPenalty"),  # v1 name on a v3 model: suggests the v3 one
        ("HCX-003", {"repetitionPenalty": 1.0}, "repeatPenalty"),
        ("HCX-005", {"maxTokens": 10, "maxCompletionTokens": 10}, "maxCompletionTokens"),
        ("HCX-005", {"temperature": "hot"}, "temperature"),
    ],
)
def test_bad_parameters_fail_naming_the_field_before_any_request(
    api: respx.MockRouter, model: str, parameters: dict[str, Any], named: str
) -> None:
    op = ClovaStudioChatCompletionOperator(task_id="chat", model=model, prompt="hi", parameters=parameters)
    with pytest.raises(ClovaStudioConfigError, match=named):
        op.execute({})
    assert not api.calls


def test_bad_parameter_of_a_tuned_task_fails_after_the_lookup_but_before_chat(api: respx.MockRouter) -> None:
    api.get("/tuning/v2/tasks/tunedab1").mock(return_value=ok(TASK))
    chat = api.post(url__regex=r".*/chat-completions.*").mock(return_value=ok(V1_RESULT))
    op = ClovaStudioChatCompletionOperator(
        task_id="chat", tuning_task_id="tunedab1", prompt="hi", parameters={"temperature": 0}
    )
    with pytest.raises(ClovaStudioConfigError, match=r"chat completion \(v1\): temperature=0(\.0)? is out of range"):
        op.execute({})
    assert chat.call_count == 0


def test_bad_messages_fail_before_any_request(api: respx.MockRouter) -> None:
    op = ClovaStudioChatCompletionOperator(
        task_id="chat", model="HCX-005", messages=[{"role": "robot", "content": "beep"}]
    )
    with pytest.raises(ClovaStudioConfigError, match=r"messages\[0\]\.role"):
        op.execute({})
    op = ClovaStudioChatCompletionOperator(task_id="chat", model="HCX-005", messages="not json")
    with pytest.raises(ClovaStudioConfigError, match="messages"):
        op.execute({})
    assert not api.calls


def test_messages_and_parameters_may_arrive_as_json_strings(api: respx.MockRouter) -> None:
    route = api.post("/v3/chat-completions/HCX-005").mock(return_value=ok(V3_RESULT))
    op = ClovaStudioChatCompletionOperator(
        task_id="chat",
        model="HCX-005",
        messages=json.dumps([{"role": "user", "content": "from xcom"}]),
        parameters='{"maxTokens": "32"}',
    )
    op.execute({})
    assert body_of(route)["messages"][0]["content"] == "from xcom"
    assert body_of(route)["maxTokens"] == 32


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model": "HCX-005"},
        {"model": "HCX-005", "prompt": "a", "messages": [{"role": "user", "content": "b"}]},
        {"prompt": "a"},
        {"model": "HCX-005", "messages": [{"role": "user", "content": "b"}], "system_prompt": "s"},
    ],
)
def test_constructor_rejects_ambiguous_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ClovaStudioChatCompletionOperator(task_id="chat", **kwargs)


def test_templated_messages_render(api: respx.MockRouter) -> None:
    route = api.post("/v3/chat-completions/HCX-005").mock(return_value=ok(V3_RESULT))
    op = ClovaStudioChatCompletionOperator(
        task_id="chat",
        model="{{ params.model }}",
        messages=[{"role": "user", "content": "Summarise {{ params.topic }}"}],
        parameters={"maxTokens": "{{ params.n }}"},
    )
    op.render_template_fields({"params": {"model": "HCX-005", "topic": "pools", "n": 16}})  # type: ignore[arg-type]
    op.execute({})
    assert body_of(route)["messages"][0]["content"] == "Summarise pools"
    assert body_of(route)["maxTokens"] == 16


def test_in_the_models_pool_the_limiter_gets_the_pool_share(api: respx.MockRouter, shares: list[float]) -> None:
    api.post("/v3/chat-completions/HCX-005").mock(return_value=ok(V3_RESULT))
    op = ClovaStudioChatCompletionOperator(
        task_id="chat", model="HCX-005", prompt="hi", pool=pool_name("HCX-005", "test"), pool_slots=1
    )
    op.execute({})
    assert shares == [0.25]  # 1 slot of a pool of extra.pool_slots = 4
    op = ClovaStudioChatCompletionOperator(
        task_id="chat2", model="HCX-005", prompt="hi", pool=pool_name("HCX-005", "test"), pool_slots=2
    )
    op.execute({})
    assert shares[-1] == 0.5


def test_a_tuned_task_takes_the_share_of_its_base_models_pool(api: respx.MockRouter, shares: list[float]) -> None:
    api.get("/tuning/v2/tasks/tunedab1").mock(return_value=ok(TASK))
    api.post("/v1/tasks/tunedab1/chat-completions").mock(return_value=ok(V1_RESULT))
    op = ClovaStudioChatCompletionOperator(
        task_id="chat", tuning_task_id="tunedab1", prompt="hi", pool=pool_name("HCX-003", "test"), pool_slots=3
    )
    op.execute({})
    assert shares == [0.75]


def test_with_a_budget_store_the_pool_only_caps_concurrency(
    api: respx.MockRouter,
    shares: list[float],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.unit.client.conftest import FakeLimiter

    extra = {"auth_type": "bearer", "limits": ROOMY, "pool_slots": 4, "budget_store": "redis://:pw-9z@redis:6379/0"}
    body = {"conn_type": "clova_studio", "host": HOST, "password": API_KEY, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_CLOVA_STUDIO_DEFAULT", json.dumps(body))
    stores: list[dict[str, Any]] = []

    def store_limiter(key: Any, budget: Any, settings: Any, **kwargs: Any) -> FakeLimiter:
        stores.append({"budget": budget, "url": settings.url, **kwargs})
        return FakeLimiter()

    monkeypatch.setattr(client_module, "store_limiter", store_limiter)  # patched where the client looks it up
    api.post("/v3/chat-completions/HCX-005").mock(return_value=ok(V3_RESULT))
    op = ClovaStudioChatCompletionOperator(
        task_id="chat", model="HCX-005", prompt="hi", pool=pool_name("HCX-005", "test"), pool_slots=1
    )
    with caplog.at_level("INFO"):
        op.execute({})
    assert shares == []  # no process-local limiter
    # The whole budget, shared; the pool's static share only for the documented fallback.
    assert stores == [
        {"budget": stores[0]["budget"], "url": extra["budget_store"], "window_seconds": 60.0, "fallback_share": 0.25}
    ]
    assert stores[0]["budget"].qpm == ROOMY["HCX-005"]["qpm"]
    logged = caplog.text + capsys.readouterr().out  # Airflow 3 task logs go to stdout
    assert "pw-9z" not in logged and "budget store redis://:***@redis:6379/0" in logged


@pytest.mark.parametrize("pool", ["default_pool", "clova_hcx_003_test", "clova_hcx_005_service"])
def test_outside_the_models_pool_the_share_is_whole(api: respx.MockRouter, shares: list[float], pool: str) -> None:
    api.post("/v3/chat-completions/HCX-005").mock(return_value=ok(V3_RESULT))
    op = ClovaStudioChatCompletionOperator(task_id="chat", model="HCX-005", prompt="hi", pool=pool, pool_slots=2)
    op.execute({})
    assert shares == [1.0]


def test_service_errors_propagate_without_the_secret(api: respx.MockRouter) -> None:
    from airflow_provider_clova.client.errors import ClovaStudioBadRequestError

    api.post("/v3/chat-completions/HCX-005").mock(
        return_value=httpx.Response(400, json={"status": {"code": "40003", "message": "prompt too long"}})
    )
    op = ClovaStudioChatCompletionOperator(task_id="chat", model="HCX-005", prompt="hi")
    with pytest.raises(ClovaStudioBadRequestError) as caught:
        op.execute({})
    assert "40003" in str(caught.value) and API_KEY not in str(caught.value)
