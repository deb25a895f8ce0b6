"""Calls and typed models: paths, bodies, parameter rules and how answers are read."""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import parse_qs

import httpx
import pendulum
import pytest
import respx

from airflow_provider_clova.client import calls
from airflow_provider_clova.client.calls import TuningDataset, tuning_body
from airflow_provider_clova.client.catalog import known_models, model_info, tunable_models
from airflow_provider_clova.client.client import AsyncClovaStudioClient, ClovaStudioClient
from airflow_provider_clova.client.errors import ClovaStudioConfigError
from airflow_provider_clova.client.models import (
    ChatResult,
    StatusInfo,
    TokenUsage,
    TuningStatus,
    TuningTask,
    TuningTaskPage,
)
from airflow_provider_clova.client.params import camel_case, normalize_chat_params
from airflow_provider_clova.testing.samples import ok, running_json, task_json

from .conftest import FakeLimiter, make_config

DATASET = TuningDataset(bucket="my-bucket", key="data/train.jsonl", access_key="os-access", secret_key="os-secret-xyz")
V1_RESULT = {
    "message": {"role": "assistant", "content": "안녕하세요"},
    "stopReason": "stop_before",
    "inputLength": 12,
    "outputLength": 5,
    "seed": 42,
    "aiFilter": [],
}
V3_RESULT = {
    "message": {"role": "assistant", "content": "안녕하세요"},
    "finishReason": "stop",
    "usage": {"promptTokens": 12, "completionTokens": 5, "totalTokens": 17},
    "seed": 42,
    "aiFilter": [],
}
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "안녕"}]


# -- the seed's task --------------------------------------------------------------------------


def test_seed_sample_response_parses() -> None:
    # The sample response of seeds/001_6e35bba000361450.txt, verbatim.
    seed_answer = json.loads(
        """{
  "status": {"code": "20000", "message": "OK"},
  "result": {
    "id": "czf9fbky", "name": "230821-130704", "model": "HCX-003", "method": "LoRA",
    "taskType": "GENERATION", "trainEpochs": 8, "learningRate": 1.0E-4, "status": "WAIT",
    "statusInfo": {"label": null, "dataRows": null, "numOfTokens": null, "currStep": null,
      "totalTrainSteps": null, "currEpoch": null, "totalTrainEpochs": null, "estimatedTime": null,
      "trainLoss": null, "sendWeightSuccess": null, "failureReason": null, "message":null,
      "endDatetime": null},
    "createdClientType": "API",
    "createdDate": "2023-08-21T13:07:06+0900",
    "updatedDate": "2023-08-21T13:07:06+0900"
  }
}"""
    )
    assert seed_answer["result"] == task_json()
    task = TuningTask.from_api(seed_answer["result"])
    assert task.id == "czf9fbky"
    assert task.name == "230821-130704"
    assert task.model == "HCX-003"
    assert task.method == "LoRA"
    assert task.task_type == "GENERATION"
    assert task.train_epochs == 8
    assert task.learning_rate == pytest.approx(1e-4)
    assert task.status is TuningStatus.WAIT
    assert not task.is_terminal
    assert task.created_client_type == "API"
    assert task.status_info == StatusInfo()
    assert task.status_info.progress is None
    assert task.status_info.eta_seconds is None
    assert isinstance(task.created_date, pendulum.DateTime)
    assert task.created_date.utcoffset() == pendulum.duration(hours=9)
    assert task.created_date == pendulum.datetime(2023, 8, 21, 4, 7, 6, tz="UTC")
    assert task.updated_date == task.created_date
    assert task.to_dict() == task_json()
    assert task.summary() == "task czf9fbky WAIT"
    json.dumps(task.to_dict())  # JSON-safe for XCom and trigger events


@pytest.mark.parametrize(
    ("status", "terminal"),
    [("WAIT", False), ("RUNNING", False), ("SUCCEEDED", True), ("FAILED", True)],
)
def test_status_enum_and_terminal(status: str, terminal: bool) -> None:
    assert TuningStatus(status).is_terminal is terminal
    assert TuningTask.from_api(task_json(status=status)).is_terminal is terminal
    assert TuningStatus(status) == status  # str enum compares to the wire value


def test_running_status_info_progress_eta_and_summary() -> None:
    task = TuningTask.from_api(running_json(trainLoss=0.81234))
    info = task.status_info
    assert info.data_rows == 1200
    assert info.num_of_tokens == 345678
    assert info.progress == pytest.approx(0.25)
    assert info.eta_seconds == 3725.0
    assert info.train_loss == pytest.approx(0.81234)
    assert task.summary() == "task czf9fbky RUNNING, step 150/600 (25%), epoch 2/8, loss 0.8123, ETA 1h02m"


def test_status_info_progress_is_clamped_and_needs_total() -> None:
    assert StatusInfo(curr_step=700, total_train_steps=600).progress == 1.0
    assert StatusInfo(curr_step=5, total_train_steps=0).progress is None
    assert StatusInfo(curr_step=None, total_train_steps=10).progress is None
    assert StatusInfo(estimated_time=-5).eta_seconds == 0.0
    assert StatusInfo(estimated_time=65).eta_seconds == 65.0


def test_failed_task_summary_names_the_reason_and_end_time() -> None:
    task = TuningTask.from_api(
        task_json(
            status="FAILED",
            statusInfo={
                "failureReason": "file.format",
                "message": "Invalid dataset: column order",
                "endDatetime": "2023-08-21T15:00:00+0900",
                "estimatedTime": 100,
            },
        )
    )
    assert task.is_terminal
    assert task.status_info.failure_reason == "file.format"
    assert task.status_info.end_datetime == pendulum.datetime(2023, 8, 21, 6, 0, 0, tz="UTC")
    assert task.status_info.end_datetime.utcoffset() == pendulum.duration(hours=9)
    summary = task.summary()
    assert "failureReason file.format: Invalid dataset: column order" in summary
    assert "ETA" not in summary  # no ETA for a finished task


def test_dates_with_colon_offset_and_missing_dates() -> None:
    task = TuningTask.from_api(task_json(createdDate="2024-01-02T03:04:05+09:00", updatedDate=None))
    assert task.created_date == pendulum.datetime(2024, 1, 1, 18, 4, 5, tz="UTC")
    assert task.updated_date is None


# -- chat results -------------------------------------------------------------------------


def test_chat_result_usage_same_shape_for_v1_and_v3() -> None:
    v1 = ChatResult.from_api(V1_RESULT, api="v1")
    v3 = ChatResult.from_api(V3_RESULT, api="v3")
    for result in (v1, v3):
        assert result.usage == TokenUsage(prompt_tokens=12, completion_tokens=5)
        assert result.usage.total_tokens == 17
        assert result.content == "안녕하세요"
        assert result.role == "assistant"
        assert result.seed == 42
    assert (
        v1.to_dict()["usage"]
        == v3.to_dict()["usage"]
        == {
            "prompt_tokens": 12,
            "completion_tokens": 5,
            "total_tokens": 17,
        }
    )
    assert v1.finish_reason == "stop_before"
    assert v3.finish_reason == "stop"
    assert v1.api == "v1" and v3.api == "v3"
    json.dumps(v1.to_dict())


# -- paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "path", "api_result"),
    [
        ("HCX-003", "/v1/chat-completions/HCX-003", V1_RESULT),
        ("HCX-DASH-001", "/v1/chat-completions/HCX-DASH-001", V1_RESULT),
        ("HCX-005", "/v3/chat-completions/HCX-005", V3_RESULT),
        ("HCX-DASH-002", "/v3/chat-completions/HCX-DASH-002", V3_RESULT),
        ("HCX-007", "/v3/chat-completions/HCX-007", V3_RESULT),
    ],
)
def test_chat_path_by_model(
    api: respx.MockRouter, fake_limiter: FakeLimiter, model: str, path: str, api_result: dict[str, Any]
) -> None:
    route = api.post(path).mock(return_value=ok(api_result))
    with ClovaStudioClient(make_config()) as client:
        result = client.chat_completion(MESSAGES, model=model)
    assert route.called
    assert result.usage.prompt_tokens == 12
    assert json.loads(route.calls.last.request.content)["messages"] == MESSAGES


@pytest.mark.parametrize(
    ("model", "path", "api_result"),
    [
        ("HCX-003", "/v1/tasks/abcd1234/chat-completions", V1_RESULT),
        ("HCX-005", "/v3/tasks/abcd1234/chat-completions", V3_RESULT),
        ("HCX-DASH-002", "/v3/tasks/abcd1234/chat-completions", V3_RESULT),
    ],
)
def test_tuned_chat_path_by_base_model(
    api: respx.MockRouter, fake_limiter: FakeLimiter, model: str, path: str, api_result: dict[str, Any]
) -> None:
    route = api.post(path).mock(return_value=ok(api_result))
    with ClovaStudioClient(make_config()) as client:
        client.chat_completion(MESSAGES, model=model, task_id="abcd1234")
    assert route.call_count == 1
    # A tuned model is charged as its base model.
    assert fake_limiter.models == [model]  # type: ignore[attr-defined]


def test_tuned_chat_without_model_looks_up_the_task_once(api: respx.MockRouter, fake_limiter: FakeLimiter) -> None:
    get = api.get("/tuning/v2/tasks/abcd1234").mock(return_value=ok(task_json("abcd1234", model="HCX-005")))
    chat = api.post("/v3/tasks/abcd1234/chat-completions").mock(return_value=ok(V3_RESULT))
    with ClovaStudioClient(make_config()) as client:
        client.chat_completion(MESSAGES, task_id="abcd1234")
        client.chat_completion(MESSAGES, task_id="abcd1234")
    assert get.call_count == 1
    assert chat.call_count == 2
    assert fake_limiter.models == ["HCX-005", "HCX-005"]  # type: ignore[attr-defined]


async def test_async_tuned_chat_without_model(api: respx.MockRouter, fake_limiter: FakeLimiter) -> None:
    api.get("/tuning/v2/tasks/abcd1234").mock(return_value=ok(task_json("abcd1234", model="HCX-003")))
    chat = api.post("/v1/tasks/abcd1234/chat-completions").mock(return_value=ok(V1_RESULT))
    async with AsyncClovaStudioClient(make_config()) as client:
        result = await client.chat_completion(MESSAGES, task_id="abcd1234")
    assert chat.called
    assert result.api == "v1"


def test_chat_needs_a_model_or_a_task() -> None:
    with ClovaStudioClient(make_config()) as client, pytest.raises(ClovaStudioConfigError, match="base model"):
        client.chat_completion(MESSAGES)


async def test_async_chat_needs_a_model_or_a_task() -> None:
    async with AsyncClovaStudioClient(make_config()) as client:
        with pytest.raises(ClovaStudioConfigError, match="Fix: pass model="):
            await client.chat_completion(MESSAGES)


async def test_a_tuned_task_without_a_model_is_a_config_error_naming_the_field_and_fix(
    api: respx.MockRouter,
) -> None:
    """Both clients resolve the base model the same way: no bare KeyError, nothing sent to chat."""
    get = api.get("/tuning/v2/tasks/abcd1234").mock(return_value=ok(task_json("abcd1234", model=None)))
    chat = api.post(url__regex=r".*/chat-completions.*").mock(return_value=ok(V3_RESULT))
    with ClovaStudioClient(make_config()) as client, pytest.raises(ClovaStudioConfigError) as sync_error:
        client.chat_completion(MESSAGES, task_id="abcd1234")
    async with AsyncClovaStudioClient(make_config()) as aclient:
        with pytest.raises(ClovaStudioConfigError) as async_error:
            await aclient.chat_completion(MESSAGES, task_id="abcd1234")
    message = str(sync_error.value)
    assert str(async_error.value) == message
    assert "abcd1234" in message and "`model`" in message and "Fix: pass model=" in message
    assert get.call_count == 2 and chat.call_count == 0


async def test_base_model_is_the_given_model_or_the_tasks_fetched_once(api: respx.MockRouter) -> None:
    get = api.get("/tuning/v2/tasks/abcd1234").mock(return_value=ok(task_json("abcd1234", model="HCX-DASH-002")))
    async with AsyncClovaStudioClient(make_config()) as client:
        assert await client.base_model("HCX-005", "abcd1234") == "HCX-005"
        assert get.call_count == 0
        assert await client.base_model(None, "abcd1234") == "HCX-DASH-002"
        assert await client.base_model(tuning_task_id="abcd1234") == "HCX-DASH-002"
    assert get.call_count == 1


@pytest.mark.parametrize(
    ("app_type", "prefix"),
    [("test", "/testapp"), ("service", "/serviceapp")],
)
def test_legacy_prefix(api: respx.MockRouter, fake_limiter: FakeLimiter, app_type: str, prefix: str) -> None:
    base = api.post(f"{prefix}/v1/chat-completions/HCX-003").mock(return_value=ok(V1_RESULT))
    tuned = api.post(f"{prefix}/v1/tasks/abcd1234/chat-completions").mock(return_value=ok(V1_RESULT))
    with ClovaStudioClient(make_config(auth="legacy_keys", app_type=app_type)) as client:
        client.chat_completion(MESSAGES, model="HCX-003")
        client.chat_completion(MESSAGES, model="HCX-003", task_id="abcd1234")
    assert base.called and tuned.called


@pytest.mark.parametrize(("app_type", "prefix"), [("test", "/testapp"), ("service", "/serviceapp")])
def test_legacy_prefix_on_token_count(api: respx.MockRouter, app_type: str, prefix: str) -> None:
    route = api.post(f"{prefix}/v1/api-tools/chat-tokenize/HCX-003").mock(return_value=ok({"totalTokens": 5}))
    with ClovaStudioClient(make_config(auth="legacy_keys", app_type=app_type)) as client:
        assert client.count_tokens(MESSAGES, "HCX-003") == 5
    assert route.called


def test_count_tokens_path_and_total(api: respx.MockRouter) -> None:
    v3 = api.post("/v3/api-tools/chat-tokenize/HCX-005").mock(
        return_value=ok({"messages": [{"role": "user", "content": "x", "count": 7}, {"count": 3}]})
    )
    v1 = api.post("/v1/api-tools/chat-tokenize/HCX-003").mock(return_value=ok({"totalTokens": 9}))
    with ClovaStudioClient(make_config()) as client:
        assert client.count_tokens(MESSAGES, "HCX-005") == 10
        assert client.count_tokens(MESSAGES, "HCX-003") == 9
    assert v3.called and v1.called


# -- listing -------------------------------------------------------------------------------


def _pages(total: int, per_page: int) -> Any:
    tasks = [task_json(f"task{i:04d}", name=f"run-{i}") for i in range(total)]
    pages = max(1, -(-total // per_page))

    def answer(request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.url.query.decode())
        page, size = int(query["page"][0]), int(query["size"][0])
        content = tasks[page * size : (page + 1) * size]
        return ok({"content": content, "totalPages": pages, "totalElements": total, "size": size, "number": page})

    return answer


def test_list_iterates_all_pages_and_stops(api: respx.MockRouter) -> None:
    route = api.get("/tuning/v2/tasks").mock(side_effect=_pages(7, 3))
    with ClovaStudioClient(make_config()) as client:
        tasks = list(client.list_tuning_tasks(page_size=3))
    assert [t.id for t in tasks] == [f"task{i:04d}" for i in range(7)]
    requested = [parse_qs(call.request.url.query.decode()) for call in route.calls]
    assert [q["page"] for q in requested] == [["0"], ["1"], ["2"]]
    assert all(q["size"] == ["3"] for q in requested)


def test_list_is_lazy(api: respx.MockRouter) -> None:
    route = api.get("/tuning/v2/tasks").mock(side_effect=_pages(10, 2))
    with ClovaStudioClient(make_config()) as client:
        iterator = client.list_tuning_tasks(page_size=2)
        assert next(iterator).id == "task0000"
        assert route.call_count == 1


def test_list_empty_account(api: respx.MockRouter) -> None:
    route = api.get("/tuning/v2/tasks").mock(
        return_value=ok({"content": [], "totalPages": 0, "totalElements": 0, "size": 50, "number": 0})
    )
    with ClovaStudioClient(make_config()) as client:
        assert list(client.list_tuning_tasks()) == []
    assert route.call_count == 1


async def test_async_list_iterates_all_pages(api: respx.MockRouter) -> None:
    route = api.get("/tuning/v2/tasks").mock(side_effect=_pages(5, 2))
    async with AsyncClovaStudioClient(make_config()) as client:
        ids = [task.id async for task in client.list_tuning_tasks(page_size=2)]
    assert ids == [f"task{i:04d}" for i in range(5)]
    assert route.call_count == 3


def test_list_page_size_bounds() -> None:
    with pytest.raises(ClovaStudioConfigError, match="1-100"):
        calls.list_tuning_tasks_page(0, 0)
    with pytest.raises(ClovaStudioConfigError, match="1-100"):
        calls.list_tuning_tasks_page(0, 101)


def test_task_page_parsing() -> None:
    page = TuningTaskPage.from_api(
        {"content": [task_json()], "totalPages": 4, "totalElements": 31, "size": 10, "number": 2}
    )
    assert [t.id for t in page.tasks] == ["czf9fbky"]
    assert (page.total_pages, page.total_elements, page.size, page.number) == (4, 31, 10, 2)


@pytest.mark.parametrize("bad", ["", "  ", "../etc", "abc/def", "a b", "abc?x=1"])
def test_task_ids_are_validated_before_building_a_path(bad: str) -> None:
    with pytest.raises(ClovaStudioConfigError, match="task id"):
        calls.get_tuning_task(bad)


# -- create body ---------------------------------------------------------------------------


def test_create_body_maps_snake_case_and_sends_json(api: respx.MockRouter) -> None:
    route = api.post("/tuning/v2/tasks").mock(return_value=ok(task_json()))
    with ClovaStudioClient(make_config()) as client:
        client.create_tuning_task(
            "HCX-003",
            DATASET,
            name="daily",
            task_type="GENERATION",
            train_epochs=4,
            learning_rate=2e-5,
            validation_split_ratio=0.05,
            lora_r=16,
            lora_alpha=32,
            tuning_type="PEFT",
        )
    request = route.calls.last.request
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "model": "HCX-003",
        "name": "daily",
        "taskType": "GENERATION",
        "trainEpochs": 4,
        "learningRate": 2e-5,
        "validationSplitRatio": 0.05,
        "loraR": 16,
        "loraAlpha": 32,
        "tuningType": "PEFT",
        "trainingDatasetBucket": "my-bucket",
        "trainingDatasetFilePath": "data/train.jsonl",
        "trainingDatasetAccessKey": "os-access",
        "trainingDatasetSecretKey": "os-secret-xyz",
    }


def test_create_body_drops_none_and_accepts_camel_case() -> None:
    body = tuning_body("HCX-003", None, {"trainEpochs": 3, "learningRate": None})
    assert body == {"model": "HCX-003", "trainEpochs": 3}


def test_create_body_sends_no_task_type_unless_given() -> None:
    # taskType left the commercial create body: only what the user sets is sent.
    assert "taskType" not in tuning_body("HCX-003", DATASET, {"train_epochs": 2})


@pytest.mark.parametrize(("field", "value"), [("lora_r", 1), ("lora_r", 128), ("lora_alpha", 513), ("lora_alpha", 1)])
def test_lora_values_pass_through_for_the_service_to_judge(field: str, value: int) -> None:
    # The pages disagree on loraR's range (2-64 / 2-8) and loraAlpha's is unreadable: no range check here.
    body = tuning_body("HCX-003", DATASET, {field: str(value)})
    assert body["loraR" if field == "lora_r" else "loraAlpha"] == value


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("train_epochs", 0, "trainEpochs=0 is out of range; expected a number in [1, 20]"),
        ("train_epochs", 21, "trainEpochs=21 is out of range; expected a number in [1, 20]"),
        ("learning_rate", 0, "learningRate=0.0 is out of range; expected a number in (0, 1]"),
        ("learning_rate", 1.5, "learningRate=1.5 is out of range; expected a number in (0, 1]"),
        ("validation_split_ratio", 0.2, "validationSplitRatio=0.2 is out of range; expected a number in [0, 0.1]"),
        ("validation_split_ratio", -0.01, "validationSplitRatio=-0.01 is out of range"),
        ("lora_r", 2.5, "loraR=2.5 is not valid; expected a int"),
        ("lora_alpha", "many", "loraAlpha='many' is not valid; expected a int"),
        ("task_type", "CHAT", "taskType='CHAT' is not valid; expected one of GENERATION, CLASSIFICATION"),
        ("tuning_type", "FULL", "tuningType='FULL' is not valid; expected one of PEFT"),
        ("train_epochs", True, "trainEpochs=True is not valid"),
        ("train_epochs", 2.5, "trainEpochs=2.5 is not valid"),
    ],
)
def test_tuning_parameter_errors_name_field_and_range(field: str, value: Any, expected: str) -> None:
    with pytest.raises(ClovaStudioConfigError) as info:
        tuning_body("HCX-003", DATASET, {field: value})
    assert "create tuning task" in str(info.value)
    assert expected in str(info.value)


def test_unknown_tuning_parameter_suggests_the_right_one() -> None:
    with pytest.raises(ClovaStudioConfigError, match="did you mean 'trainEpochs'"):
        tuning_body("HCX-003", DATASET, {"train_epoch": 3})


@pytest.mark.parametrize("model", ["HCX-005", "HCX-DASH-002", "HCX-007", "HCX-DASH-001"])
def test_non_tunable_model_rejected(model: str) -> None:
    with pytest.raises(ClovaStudioConfigError) as info:
        tuning_body(model, DATASET, {})
    text = str(info.value)
    assert f"model {model!r} cannot be tuned; tunable models: HCX-003." in text
    assert f'extra.models to {{"{model}": {{"tunable": true}}}}' in text


def test_unknown_model_lists_tunable_ones() -> None:
    with pytest.raises(
        ClovaStudioConfigError, match=r"'HCX-999' is not a CLOVA Studio model .*tunable models: HCX-003\."
    ):
        tuning_body("HCX-999", DATASET, {})


def test_chat_with_unknown_model_lists_known_ones() -> None:
    with pytest.raises(ClovaStudioConfigError, match=r"unknown CLOVA Studio model 'HCX-999'; known models: .*HCX-005"):
        calls.chat_completion(MESSAGES, model="HCX-999", task_id=None, params={})


def test_catalog_facts() -> None:
    # The 2026 pages: HCX-005, HCX-DASH-002 and HCX-007 do not support training.
    assert tunable_models() == ["HCX-003"]
    assert set(known_models()) >= {"HCX-003", "HCX-DASH-001", "HCX-005", "HCX-DASH-002", "HCX-007"}
    assert model_info("HCX-003").api == "v1"
    assert model_info("HCX-007").max_output_tokens == 32768
    assert model_info("HCX-007").reasoning and not model_info("HCX-005").reasoning


def test_connection_override_opens_a_model_to_tuning() -> None:
    overrides = {"HCX-005": {"tunable": True}}
    assert tunable_models(overrides) == ["HCX-003", "HCX-005"]
    assert tuning_body("HCX-005", DATASET, {}, models=overrides)["model"] == "HCX-005"
    assert model_info("HCX-005", overrides).api == "v3"  # the other facts stay


def test_connection_override_describes_a_new_model() -> None:
    overrides = {"HCX-008": {"api": "v3", "max_output_tokens": 8192}}
    info = model_info("HCX-008", overrides)
    assert (info.api, info.tunable, info.max_output_tokens, info.context_tokens) == ("v3", False, 8192, 128000)
    call = calls.chat_completion(MESSAGES, model="HCX-008", task_id=None, params={"max_tokens": 8000}, models=overrides)
    assert call.path == "/v3/chat-completions/HCX-008"


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"HCX-005": {"tunable": "yes"}}, r"extra.models.HCX-005.tunable must be true or false"),
        ({"HCX-005": {"tuneable": True}}, r"extra.models.HCX-005: unknown field\(s\) tuneable"),
        ({"HCX-005": {"max_output_tokens": 0}}, r"max_output_tokens must be a whole number >= 1"),
        ({"HCX-005": {"api": "v2"}}, r"extra.models.HCX-005.api must be 'v1' or 'v3'"),
        ({"HCX-008": {"tunable": True}}, r"'HCX-008' is not in the provider's catalog, so give at least its chat API"),
        ({"HCX-005": True}, r"extra.models.HCX-005 must be an object"),
        (["HCX-005"], r"extra.models must be an object"),
    ],
)
def test_catalog_overrides_are_validated(overrides: Any, match: str) -> None:
    from airflow_provider_clova.client.catalog import validate_overrides

    with pytest.raises(ClovaStudioConfigError, match=match):
        validate_overrides(overrides)


@pytest.mark.parametrize(
    "partial",
    [
        {"trainingDatasetBucket": "b"},
        {"training_dataset_bucket": "b", "training_dataset_file_path": "k"},
        {
            "trainingDatasetBucket": "b",
            "trainingDatasetFilePath": "k",
            "trainingDatasetAccessKey": "a",
        },
    ],
)
def test_dataset_fields_come_four_together(partial: dict[str, str]) -> None:
    with pytest.raises(ClovaStudioConfigError, match="go together"):
        tuning_body("HCX-003", None, partial)


def test_dataset_four_fields_given_loose_are_accepted() -> None:
    body = tuning_body(
        "HCX-003",
        None,
        {
            "training_dataset_bucket": "b",
            "training_dataset_file_path": "k.jsonl",
            "training_dataset_access_key": "a",
            "training_dataset_secret_key": "s",
        },
    )
    assert body["trainingDatasetBucket"] == "b"
    assert body["trainingDatasetSecretKey"] == "s"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bucket": "", "key": "k", "access_key": "a", "secret_key": "s"}, "bucket is empty"),
        ({"bucket": "b", "key": "k", "access_key": "a", "secret_key": ""}, "secret_key is empty"),
        ({"bucket": "b", "key": "/k.jsonl", "access_key": "a", "secret_key": "s"}, "object key inside the bucket"),
        ({"bucket": "b", "key": "b/k.jsonl", "access_key": "a", "secret_key": "s"}, "without a leading"),
    ],
)
def test_tuning_dataset_rules(kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(ClovaStudioConfigError, match=match):
        TuningDataset(**kwargs)


def test_dataset_and_create_call_reprs_hide_object_storage_keys() -> None:
    assert "os-secret-xyz" not in repr(DATASET)
    assert "os-access" not in repr(DATASET)
    call = calls.create_tuning_task(tuning_body("HCX-003", DATASET, {}))
    assert "os-secret-xyz" not in repr(call)


def test_parameter_error_for_a_secret_field_does_not_echo_it() -> None:
    with pytest.raises(ClovaStudioConfigError) as info:
        tuning_body("HCX-003", None, {"trainingDatasetSecretKey": 1234567890123})
    assert "1234567890123" not in str(info.value)
    assert "trainingDatasetSecretKey" in str(info.value)


# -- chat parameters -----------------------------------------------------------------------


def test_chat_params_snake_case_to_camel_case_v1(api: respx.MockRouter, fake_limiter: FakeLimiter) -> None:
    route = api.post("/v1/chat-completions/HCX-003").mock(return_value=ok(V1_RESULT))
    with ClovaStudioClient(make_config()) as client:
        client.chat_completion(
            MESSAGES,
            model="HCX-003",
            temperature=0.3,
            top_k=10,
            top_p=0.9,
            repeat_penalty=1.2,
            stop_before=["###"],
            max_tokens=256,
            include_ai_filters=False,
            seed=7,
        )
    body = json.loads(route.calls.last.request.content)
    assert body == {
        "messages": MESSAGES,
        "temperature": 0.3,
        "topK": 10,
        "topP": 0.9,
        "repeatPenalty": 1.2,
        "stopBefore": ["###"],
        "maxTokens": 256,
        "includeAiFilters": False,
        "seed": 7,
    }
    assert fake_limiter.reservations[0].cost >= 256


def test_chat_params_v3() -> None:
    out = normalize_chat_params(
        {"repetition_penalty": 1.1, "max_completion_tokens": 500, "thinking": {"effort": "low"}, "stop": ["\n"]},
        api="v3",
        max_output_tokens=32768,
        reasoning=True,
    )
    assert out == {"repetitionPenalty": 1.1, "maxCompletionTokens": 500, "thinking": {"effort": "low"}, "stop": ["\n"]}


def test_v3_temperature_zero_is_valid_v1_is_not() -> None:
    assert normalize_chat_params({"temperature": 0}, api="v3", max_output_tokens=4096) == {"temperature": 0.0}
    with pytest.raises(ClovaStudioConfigError, match=r"temperature=0.0 is out of range; expected a number in \(0, 1\]"):
        normalize_chat_params({"temperature": 0}, api="v1", max_output_tokens=4096)
    with pytest.raises(
        ClovaStudioConfigError, match=r"temperature=1.01 is out of range; expected a number in \[0, 1\]"
    ):
        normalize_chat_params({"temperature": 1.01}, api="v3", max_output_tokens=4096)


@pytest.mark.parametrize(
    ("model", "params", "match"),
    [
        ("HCX-007", {"max_tokens": 100}, "takes maxCompletionTokens \\(1-32768\\), not maxTokens; nothing was sent"),
        (
            "HCX-007",
            {"thinking": {"effort": "extreme"}},
            "thinking.effort='extreme' is not valid; expected one of none",
        ),
        ("HCX-007", {"thinking": {"effort": "low", "budget": 10}}, "thinking takes only 'effort', not budget"),
        ("HCX-007", {"max_completion_tokens": 32769}, "maxCompletionTokens=32769 is out of range"),
        ("HCX-007", {"max_completion_tokens": 0}, "maxCompletionTokens=0 is out of range"),
        ("HCX-005", {"thinking": {"effort": "low"}}, "thinking is a reasoning model's parameter"),
    ],
)
def test_reasoning_parameters_checked_before_sending(
    api: respx.MockRouter, fake_limiter: FakeLimiter, model: str, params: dict[str, Any], match: str
) -> None:
    route = api.post(f"/v3/chat-completions/{model}").mock(return_value=ok(V3_RESULT))
    with ClovaStudioClient(make_config()) as client, pytest.raises(ClovaStudioConfigError, match=match):
        client.chat_completion(MESSAGES, model=model, **params)
    assert not route.called and fake_limiter.reservations == []


def test_reasoning_chat_returns_thinking_content_and_reserves_completion_tokens(
    api: respx.MockRouter, fake_limiter: FakeLimiter
) -> None:
    answer = {
        "message": {"role": "assistant", "content": "4", "thinkingContent": "2 + 2 is 4."},
        "finishReason": "stop",
        "usage": {"promptTokens": 12, "completionTokens": 9, "totalTokens": 21},
    }
    route = api.post("/v3/chat-completions/HCX-007").mock(return_value=ok(answer))
    with ClovaStudioClient(make_config()) as client:
        result = client.chat_completion(
            MESSAGES, model="HCX-007", thinking={"effort": "high"}, max_completion_tokens=20000
        )
        default = client.chat_completion(MESSAGES, model="HCX-007", thinking={"effort": "medium"})
    assert json.loads(route.calls[0].request.content)["maxCompletionTokens"] == 20000
    assert result.thinking_content == "2 + 2 is 4."
    assert result.to_dict()["thinking_content"] == "2 + 2 is 4."
    assert default.content == "4"
    # TPM is charged input + the requested completion tokens: maxCompletionTokens, else effort's default.
    first, second = fake_limiter.reservations
    assert first.cost >= 20000 and first.settled == 12 + 20000
    assert second.settled == 12 + 10240


def test_tuned_v3_model_takes_no_reasoning_or_tools() -> None:
    overrides = {"HCX-005": {"tunable": True}}
    with pytest.raises(ClovaStudioConfigError, match="a tuned model takes no tools"):
        calls.chat_completion(
            MESSAGES, model="HCX-005", task_id="abcd1234", params={"tools": [{"type": "function"}]}, models=overrides
        )


@pytest.mark.parametrize(
    ("api_name", "params", "expected"),
    [
        ("v1", {"temperature": 0}, "temperature=0.0 is out of range; expected a number in (0, 1]"),
        ("v1", {"top_k": 129}, "topK=129 is out of range; expected a number in [0, 128]"),
        ("v1", {"max_tokens": 0}, "maxTokens=0 is out of range; expected a number in (0, 4096]"),
        ("v1", {"max_tokens": 5000}, "maxTokens=5000 is out of range; expected a number in (0, 4096]"),
        ("v1", {"repeat_penalty": 11}, "repeatPenalty=11.0 is out of range; expected a number in (0, 10]"),
        ("v3", {"repetition_penalty": 2.5}, "repetitionPenalty=2.5 is out of range; expected a number in (0, 2]"),
        ("v3", {"max_tokens": 4097}, "maxTokens=4097 exceeds this model's output limit of 4096"),
        ("v3", {"max_tokens": 10, "max_completion_tokens": 10}, "give maxTokens or maxCompletionTokens, not both"),
        ("v1", {"repetition_penalty": 1.1}, "unknown parameter 'repetition_penalty'"),
        ("v3", {"stop_before": ["x"]}, "unknown parameter 'stop_before'"),
    ],
)
def test_chat_parameter_errors_name_field_and_range(api_name: str, params: dict[str, Any], expected: str) -> None:
    with pytest.raises(ClovaStudioConfigError) as info:
        normalize_chat_params(params, api=api_name, max_output_tokens=4096)
    assert expected in str(info.value)


def test_chat_param_error_raised_before_any_request(api: respx.MockRouter, fake_limiter: FakeLimiter) -> None:
    route = api.post("/v3/chat-completions/HCX-005").mock(return_value=ok(V3_RESULT))
    with ClovaStudioClient(make_config()) as client, pytest.raises(ClovaStudioConfigError, match="topP"):
        client.chat_completion(MESSAGES, model="HCX-005", top_p=1.5)
    assert not route.called
    assert fake_limiter.reservations == []


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([], "non-empty list"),
        ("hello", "non-empty list"),
        ([{"role": "robot", "content": "x"}], r"messages\[0\].role='robot'"),
        ([{"role": "user"}], r"messages\[0\] has no content"),
        (["hi"], r"messages\[0\] must be an object"),
    ],
)
def test_chat_messages_are_checked(messages: Any, match: str) -> None:
    with pytest.raises(ClovaStudioConfigError, match=match):
        calls.chat_completion(messages, model="HCX-005", task_id=None, params={}, prefix="")


@pytest.mark.parametrize(
    ("name", "camel"),
    [("max_tokens", "maxTokens"), ("include_ai_filters", "includeAiFilters"), ("topK", "topK"), ("seed", "seed")],
)
def test_camel_case(name: str, camel: str) -> None:
    assert camel_case(name) == camel


@pytest.mark.parametrize(
    ("text", "utc", "offset_hours"),
    [
        ("2023-08-21T13:07:06+0900", pendulum.datetime(2023, 8, 21, 4, 7, 6), 9),
        ("2023-08-21T13:07:06+09:00", pendulum.datetime(2023, 8, 21, 4, 7, 6), 9),
        ("2023-08-21T13:07:06.250+09:00", pendulum.datetime(2023, 8, 21, 4, 7, 6, 250000), 9),
        ("2023-08-21T13:07:06-0330", pendulum.datetime(2023, 8, 21, 16, 37, 6), -3.5),
        ("2023-08-21T04:07:06Z", pendulum.datetime(2023, 8, 21, 4, 7, 6), 0),
        ("2023-08-21T04:07:06", pendulum.datetime(2023, 8, 21, 4, 7, 6), 0),  # naive: UTC, as pendulum
    ],
)
def test_parse_datetime_forms(text: str, utc: pendulum.DateTime, offset_hours: float) -> None:
    from airflow_provider_clova.client.models import parse_datetime

    parsed = parse_datetime(text)
    assert isinstance(parsed, pendulum.DateTime)
    assert parsed == utc
    assert parsed.utcoffset() == pendulum.duration(seconds=int(offset_hours * 3600))
    assert parsed == pendulum.parse(text)
    assert parse_datetime(text) == parsed  # cached value is the same moment


def test_parse_datetime_rejects_garbage_as_a_response_error(api: respx.MockRouter) -> None:
    from airflow_provider_clova.client.errors import ClovaStudioResponseError
    from airflow_provider_clova.client.retry import NO_RETRY

    api.get("/tuning/v2/tasks/czf9fbky").mock(return_value=ok(task_json(createdDate="yesterday-ish")))
    with ClovaStudioClient(make_config(retry=NO_RETRY)) as client, pytest.raises(ClovaStudioResponseError):
        client.get_tuning_task("czf9fbky")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", "Infinity", "-inf"])
@pytest.mark.parametrize(
    "build",
    [
        lambda v: calls.tuning_body("HCX-003", None, {"learning_rate": v}),
        lambda v: calls.chat_completion(
            [{"role": "user", "content": "hi"}], model="HCX-005", task_id=None, params={"temperature": v}, prefix=""
        ),
        lambda v: calls.chat_completion(
            [{"role": "user", "content": "hi"}],
            model="HCX-005",
            task_id=None,
            params={"responseFormat": {"type": "json", "schema": {"maximum": float(v)}}},
            prefix="",
        ),
    ],
    ids=["tuning", "chat", "nested"],
)
def test_non_finite_numbers_are_refused_naming_the_field(build: Any, value: Any) -> None:
    field = r"(learningRate|temperature|responseFormat\.schema\.maximum)=\S+ is not a finite number. Fix:"
    with pytest.raises(ClovaStudioConfigError, match=field) as info:
        build(value)
    assert type(info.value) is ClovaStudioConfigError


def test_a_huge_integer_for_a_float_parameter_is_out_of_range_not_an_overflow() -> None:
    with pytest.raises(ClovaStudioConfigError, match="temperature"):
        calls.chat_completion(
            [{"role": "user", "content": "hi"}],
            model="HCX-005",
            task_id=None,
            params={"temperature": 10**400},
            prefix="",
        )
    with pytest.raises(ClovaStudioConfigError, match="maxTokens"):
        calls.chat_completion(
            [{"role": "user", "content": "hi"}],
            model="HCX-005",
            task_id=None,
            params={"maxTokens": "9" * 5000},
            prefix="",
        )
