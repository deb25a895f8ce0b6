"""Rule 2 (API side): create checks, the task object's exact shape, paging, delete."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_clova.testing.samples import TASK_FIELDS, status_info
from tests.emulator.conftest import Api, create_body

pytestmark = pytest.mark.integration

ISO_KST = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0900$")


def create(api: Api, **fields: Any) -> dict[str, Any]:
    response = api.post("/tuning/v2/tasks", create_body("bucket", "data.jsonl", **fields))
    assert response.status_code == 200, response.text
    return response.json()["result"]


def test_create_answers_the_seed_shape(api: Api) -> None:
    before = datetime.now(timezone(timedelta(hours=9))).replace(microsecond=0)
    response = api.post("/tuning/v2/tasks", create_body("bucket", "data.jsonl", model="HCX-003"))
    assert response.json()["status"] == {"code": "20000", "message": "OK"}
    task = response.json()["result"]
    assert list(task) == list(TASK_FIELDS)
    assert re.fullmatch(r"[a-z0-9]{8}", task["id"])
    assert re.fullmatch(r"\d{6}-\d{6}", task["name"])
    created = datetime.strptime(task["createdDate"], "%Y-%m-%dT%H:%M:%S%z")
    assert task["name"] == created.strftime("%y%m%d-%H%M%S")
    assert ISO_KST.match(task["createdDate"]) and task["updatedDate"] == task["createdDate"]
    assert before <= created <= before + timedelta(seconds=5)
    assert (task["model"], task["method"], task["taskType"]) == ("HCX-003", "LoRA", "GENERATION")
    assert (task["trainEpochs"], task["learningRate"]) == (8, 1e-4)
    assert (task["status"], task["createdClientType"]) == ("WAIT", "API")
    assert task["statusInfo"] == status_info()
    assert "testing" not in response.text  # the dataset keys are never echoed


def test_create_keeps_name_and_fields(api: Api) -> None:
    task = create(api, name="my-run", taskType="CLASSIFICATION", trainEpochs=3, learningRate=0.5)
    assert (task["name"], task["taskType"], task["trainEpochs"], task["learningRate"]) == (
        "my-run",
        "CLASSIFICATION",
        3,
        0.5,
    )


@pytest.mark.parametrize(
    ("field", "value", "expect"),
    [
        ("trainEpochs", 0, "1 to 20"),
        ("trainEpochs", 21, "1 to 20"),
        ("trainEpochs", 2.5, "1 to 20"),
        ("learningRate", 0, "greater than 0"),
        ("learningRate", 1.5, "at most 1"),
        ("loraR", 1, "2 to 64"),
        ("loraR", 65, "2 to 64"),
        ("loraAlpha", 0, "integer from 1"),
        ("loraAlpha", "many", "integer from 1"),
        ("validationSplitRatio", 0.2, "at most 0.1"),
        ("validationSplitRatio", -0.1, "at least 0"),
        ("tuningType", "FULL", "PEFT"),
        ("taskType", "SUMMARY", "GENERATION, CLASSIFICATION"),
        ("model", None, "required"),
    ],
)
def test_create_rejects_out_of_range(api: Api, field: str, value: Any, expect: str) -> None:
    body = create_body("bucket", "data.jsonl")
    if value is None:
        body.pop(field)
    else:
        body[field] = value
    response = api.post("/tuning/v2/tasks", body)
    assert response.status_code == 400
    status = response.json()["status"]
    assert status["code"] == "40001"
    assert field in status["message"] and expect in status["message"]
    assert api.stats()["tuning_tasks_created"] == []


@pytest.mark.parametrize("model", ["HCX-005", "HCX-DASH-002", "HCX-007", "HCX-DASH-001"])
def test_training_an_untunable_model_is_unsupported(api: Api, model: str) -> None:
    # The current pages: HCX-005, HCX-DASH-002 and HCX-007 do not support training; only HCX-003 does.
    response = api.post("/tuning/v2/tasks", create_body("bucket", "data.jsonl", model=model))
    assert response.status_code == 400
    assert response.json()["status"] == {
        "code": "40009",
        "message": f"Unsupported function: {model} does not support tuning; tunable models: HCX-003",
    }
    assert api.stats()["tuning_tasks_created"] == []


def test_training_an_unknown_model_is_model_not_found(api: Api) -> None:
    response = api.post("/tuning/v2/tasks", create_body("bucket", "data.jsonl", model="HCX-999"))
    assert (response.status_code, response.json()["status"]["code"]) == (400, "40080")
    assert "tunable models: HCX-003" in response.json()["status"]["message"]


def test_commercial_create_fields_are_accepted(api: Api) -> None:
    # validationSplitRatio, loraR and loraAlpha are in the 2026 create table; taskType is only on the
    # Gov page but still taken; a loraAlpha with no documented range is left to the service.
    body = create_body("b", "d.jsonl", validationSplitRatio=0.1, loraR=16, loraAlpha=1024, taskType="GENERATION")
    assert api.post("/tuning/v2/tasks", body).status_code == 200
    assert api.post("/tuning/v2/tasks", create_body("b", "d.jsonl")).json()["result"]["taskType"] == "GENERATION"


def test_edges_of_ranges_are_accepted(api: Api) -> None:
    for fields in (
        {"trainEpochs": 1, "learningRate": 1, "loraR": 2, "loraAlpha": 2, "validationSplitRatio": 0.0},
        {"trainEpochs": 20, "learningRate": 1e-9, "loraR": 64, "loraAlpha": 512, "validationSplitRatio": 0.1},
        {"trainEpochs": "8", "learningRate": "1e-5f"},  # the guide types these as strings
    ):
        create(api, **fields)


@pytest.mark.parametrize("missing", ["trainingDatasetBucket", "trainingDatasetFilePath", "trainingDatasetSecretKey"])
def test_dataset_fields_come_together(api: Api, missing: str) -> None:
    body = create_body("bucket", "data.jsonl")
    del body[missing]
    response = api.post("/tuning/v2/tasks", body)
    assert response.status_code == 400
    assert response.json()["status"]["code"] == "40001"
    assert missing in response.json()["status"]["message"]


def test_body_must_be_json(api: Api) -> None:
    bad = api.http.post("/tuning/v2/tasks", content=b"{nope", headers={"Authorization": "Bearer KEY"})
    assert (bad.status_code, bad.json()["status"]["code"]) == (400, "40000")
    form = api.http.post(
        "/tuning/v2/tasks",
        content=b"model=HCX-005",
        headers={"Authorization": "Bearer KEY", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (form.status_code, form.json()["status"]["code"]) == (415, "41500")


def test_list_pages_newest_first(api: Api) -> None:
    ids = [create(api, name=f"t{i}")["id"] for i in range(5)]
    first = api.get("/tuning/v2/tasks?page=0&size=2").json()["result"]
    assert (first["totalPages"], first["totalElements"], first["size"], first["number"]) == (3, 5, 2, 0)
    pages = [api.get(f"/tuning/v2/tasks?page={p}&size=2").json()["result"] for p in range(4)]
    seen = [t["id"] for page in pages for t in page["content"]]
    assert seen == ids[::-1]
    assert pages[3]["content"] == [] and pages[3]["number"] == 3
    default = api.get("/tuning/v2/tasks").json()["result"]
    assert (default["size"], default["number"], len(default["content"])) == (20, 0, 5)


@pytest.mark.parametrize("query", ["size=0", "size=101", "size=-1", "size=abc", "page=-1", "page=x"])
def test_list_rejects_bad_paging(api: Api, query: str) -> None:
    response = api.get(f"/tuning/v2/tasks?{query}")
    assert (response.status_code, response.json()["status"]["code"]) == (400, "40001")
    assert query.split("=")[0] in response.json()["status"]["message"]


def test_list_accepts_size_100(api: Api) -> None:
    assert api.get("/tuning/v2/tasks?size=100").status_code == 200


def test_delete_answers_status_only_then_404(api: Api) -> None:
    task_id = create(api)["id"]
    deleted = api.delete(f"/tuning/v2/tasks/{task_id}")
    assert deleted.status_code == 200
    assert deleted.json() == {"status": {"code": "20000", "message": "OK"}}
    gone = api.get(f"/tuning/v2/tasks/{task_id}")
    assert (gone.status_code, gone.json()["status"]["code"]) == (404, "40400")
    again = api.delete(f"/tuning/v2/tasks/{task_id}")
    assert (again.status_code, again.json()["status"]["code"]) == (404, "40400")
    assert api.get("/tuning/v2/tasks").json()["result"]["totalElements"] == 0
    # the history of creations is kept for inspection
    assert [t["id"] for t in api.stats()["tuning_tasks_created"]] == [task_id]


def test_unknown_task_is_404(api: Api) -> None:
    response = api.get("/tuning/v2/tasks/zzzzzzzz")
    assert (response.status_code, response.json()["status"]["code"]) == (404, "40400")


def test_task_ids_replay_with_the_seed(make_api: Any) -> None:
    first = [create(make_api(seed=5))["id"] for _ in range(1)]
    again = [create(make_api(seed=5))["id"] for _ in range(1)]
    other = [create(make_api(seed=6))["id"] for _ in range(1)]
    assert first == again != other
