"""Rule 2 (training): datasets read from a real S3 server (moto), lifecycle, every failureReason."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_clova.datasets import validate_stream
from airflow_provider_clova.testing.pytest_plugin import MotoServer
from airflow_provider_clova.testing.waiting import wait_until
from tests.emulator.conftest import Api, create_body, jsonl, rows

pytestmark = pytest.mark.integration

HEADER = "System_Prompt,C_ID,T_ID,Text,Completion"
CSV_LINES = [f",{i},0,question {i},answer {i}" for i in range(120)]


def csv_bytes(header: str = HEADER, lines: list[str] = CSV_LINES) -> bytes:
    return ("\n".join([header, *lines]) + "\n").encode("utf-8")


@pytest.fixture
def storage_api(make_api: Callable[..., Api], moto_server: MotoServer) -> Api:
    return make_api(object_storage_endpoint=moto_server.endpoint)


def upload(moto_server: MotoServer, bucket: str, key: str, data: bytes, **extra: Any) -> None:
    moto_server.s3_client().put_object(Bucket=bucket, Key=key, Body=data, **extra)


def train(api: Api, bucket: str, key: str, **fields: Any) -> dict[str, Any]:
    response = api.post("/tuning/v2/tasks", create_body(bucket, key, **fields))
    assert response.status_code == 200, response.text
    return api.wait_done(response.json()["result"]["id"])


class SteppedClock:
    """Epoch seconds that move only when the test moves them."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_success_lifecycle(make_api: Callable[..., Api], moto_server: MotoServer, bucket: str) -> None:
    """Every poll sees the task one emulated training step later (the emulator's clock is
    stepped by the test), so the whole lifecycle is observed however loaded the machine is."""
    clock = SteppedClock(time.time())
    api = make_api(object_storage_endpoint=moto_server.endpoint, time_scale=0.005, clock=clock)  # steps of 10 ms
    upload(moto_server, bucket, "train.jsonl", jsonl(rows(120)))
    created = api.post("/tuning/v2/tasks", create_body(bucket, "train.jsonl", trainEpochs=4)).json()["result"]
    assert created["status"] == "WAIT"
    seen: list[dict[str, Any]] = []
    for _ in range(200):  # 15 polls of queue, 60 steps, then done
        seen.append(api.task(created["id"]))
        if seen[-1]["status"] == "SUCCEEDED":
            break
        clock.now += 0.01
    assert len(seen) < 200, seen[-1]
    statuses = [s["status"] for s in seen]
    assert statuses[0] in ("WAIT", "RUNNING") and statuses[-1] == "SUCCEEDED"
    assert statuses == sorted(statuses, key=["WAIT", "RUNNING", "SUCCEEDED"].index)
    running = [s["statusInfo"] for s in seen if s["status"] == "RUNNING" and s["statusInfo"]["dataRows"]]
    steps = [r["currStep"] for r in running]
    assert steps == sorted(steps) and len(set(steps)) >= 50, "every step should be visible while RUNNING"
    losses = [r["trainLoss"] for r in running if r["trainLoss"] is not None]
    assert losses == sorted(losses, reverse=True)
    etas = [r["estimatedTime"] for r in running]
    assert etas == sorted(etas, reverse=True) and all(isinstance(e, int) and e >= 0 for e in etas)
    for info in running:
        assert (info["dataRows"], info["totalTrainSteps"], info["totalTrainEpochs"]) == (120, 60, 4)
        assert info["currEpoch"] == min(4, info["currStep"] // 15 + 1)
        assert info["sendWeightSuccess"] is None and info["endDatetime"] is None
    done = seen[-1]
    info = done["statusInfo"]
    assert info["currStep"] == info["totalTrainSteps"] == 60
    assert (info["currEpoch"], info["estimatedTime"], info["sendWeightSuccess"]) == (4, 0, True)
    assert info["numOfTokens"] > 0 and info["trainLoss"] < losses[0]
    assert info["failureReason"] is None and info["message"] is None and info["label"] is None
    assert info["endDatetime"] == done["updatedDate"] and done["updatedDate"] >= done["createdDate"]
    assert api.task(created["id"]) == done  # stable once finished


def test_classification_labels(storage_api: Api, moto_server: MotoServer, bucket: str) -> None:
    items = [{**r, "Completion": ["neg", "pos", "neutral"][r["C_ID"] % 3]} for r in rows(120)]
    upload(moto_server, bucket, "cls.jsonl", jsonl(items))
    done = train(storage_api, bucket, "cls.jsonl", taskType="CLASSIFICATION")
    assert done["status"] == "SUCCEEDED"
    assert done["statusInfo"]["label"] == ["neg", "neutral", "pos"]


def test_csv_with_bom_trains(storage_api: Api, moto_server: MotoServer, bucket: str) -> None:
    upload(moto_server, bucket, "train.csv", b"\xef\xbb\xbf" + csv_bytes())
    done = train(storage_api, bucket, "train.csv", model="HCX-003")
    assert done["status"] == "SUCCEEDED" and done["statusInfo"]["dataRows"] == 120


def _dup_lines() -> list[str]:
    return [line + ",x" for line in CSV_LINES]


BROKEN = rows(120)
FORMAT_CASES = {
    "invalid json": (
        "bad.jsonl",
        jsonl(BROKEN[:5])[:-1] + b'\n{"System_Prompt": "", "C_ID": 5\n',
        "Invalid json format. ",
    ),
    "required field empty": (
        "empty.jsonl",
        jsonl([*BROKEN[:3], {**BROKEN[3], "Text": ""}, *BROKEN[4:]]),
        "Invalid dataset: required field empty. Text",
    ),
    "unexpected column": (
        "extra.jsonl",
        jsonl([{**r, "Extra": "x"} for r in BROKEN]),
        "Invalid dataset: unexpected column. Extra",
    ),
    "duplicate columns": (
        "dup.csv",
        csv_bytes(HEADER + ",text", _dup_lines()),
        "Invalid dataset: duplicate columns. text",
    ),
    "column order": (
        "order.csv",
        csv_bytes("C_ID,System_Prompt,T_ID,Text,Completion", [f"{i},,0,q {i},a {i}" for i in range(120)]),
        "Invalid dataset: column order",
    ),
    "ids": ("ids.jsonl", jsonl([{**r, "C_ID": r["C_ID"] + 1} for r in BROKEN]), "Invalid dataset: C_ID"),
}


@pytest.mark.parametrize("case", list(FORMAT_CASES))
def test_file_format(storage_api: Api, moto_server: MotoServer, bucket: str, case: str) -> None:
    key, data, expected_start = FORMAT_CASES[case]
    upload(moto_server, bucket, key, data)
    done = train(storage_api, bucket, key)
    info = done["statusInfo"]
    assert (done["status"], info["failureReason"]) == ("FAILED", "file.format")
    assert info["message"].startswith(expected_start)
    # the emulator reports exactly the core validator's first problem
    first = validate_stream(io.BytesIO(data), filename=key, size=len(data), max_errors=1).first_failure()
    assert first is not None and info["message"] == first.message
    assert info["sendWeightSuccess"] is False and info["endDatetime"] == done["updatedDate"]
    assert info["dataRows"] is None and info["currStep"] is None


def test_file_extension(storage_api: Api, moto_server: MotoServer, bucket: str) -> None:
    upload(moto_server, bucket, "train.txt", jsonl(rows()))
    info = train(storage_api, bucket, "train.txt")["statusInfo"]
    assert info["failureReason"] == "file.extension"
    assert info["message"] == "Unavailable file extension. Please check the file extension again."


def test_file_size(make_api: Callable[..., Api], moto_server: MotoServer, bucket: str) -> None:
    api = make_api(object_storage_endpoint=moto_server.endpoint, max_dataset_bytes=1000)
    upload(moto_server, bucket, "big.jsonl", jsonl(rows()))
    info = train(api, bucket, "big.jsonl")["statusInfo"]
    assert info["failureReason"] == "file.size"
    assert info["message"] == "Exceeded the disk usage limit. Please check if the file size is 1 KB or less."


def test_file_encoding(storage_api: Api, moto_server: MotoServer, bucket: str) -> None:
    data = csv_bytes().replace(b"question 5,", "질문 5,".encode("cp949"))
    upload(moto_server, bucket, "cp949.csv", data)
    info = train(storage_api, bucket, "cp949.csv")["statusInfo"]
    assert (info["failureReason"], info["message"]) == ("file.encoding", "Unsupported charset")


def test_file_error_unreadable_object(storage_api: Api, moto_server: MotoServer, bucket: str) -> None:
    upload(moto_server, bucket, "cold.jsonl", jsonl(rows()), StorageClass="GLACIER")
    info = train(storage_api, bucket, "cold.jsonl")["statusInfo"]
    assert info["failureReason"] == "file.error"
    assert info["message"].startswith("File read error")


def test_file_error_unreachable_storage(make_api: Callable[..., Api]) -> None:
    api = make_api(object_storage_endpoint="http://127.0.0.1:9")
    info = train(api, "bucket", "train.jsonl")["statusInfo"]
    assert info["failureReason"] == "file.error"
    assert "testing" not in json.dumps(info)  # no credential in the message


def test_file_error_without_storage_endpoint(api: Api) -> None:
    info = train(api, "bucket", "train.jsonl")["statusInfo"]
    assert info["failureReason"] == "file.error" and "--object-storage-endpoint" in info["message"]


@pytest.mark.parametrize("where", ["key", "bucket"])
def test_file_noexist(storage_api: Api, moto_server: MotoServer, bucket: str, where: str) -> None:
    target = (bucket, "missing.jsonl") if where == "key" else ("no-such-bucket-xyz", "train.jsonl")
    info = train(storage_api, *target)["statusInfo"]
    assert info["failureReason"] == "file.noexist"
    assert info["message"].startswith("Dataset file does not exist")


@pytest.mark.parametrize("reason", ["resource.timeout", "train.unknown", "clops.error"])
def test_run_faults(storage_api: Api, moto_server: MotoServer, bucket: str, reason: str) -> None:
    upload(moto_server, bucket, "train.jsonl", jsonl(rows()))
    storage_api.http.post("/_emulator/faults", json={"routes": {"tuning.run": {"sequence": [reason]}}})
    failed = train(storage_api, bucket, "train.jsonl")
    info = failed["statusInfo"]
    assert (failed["status"], info["failureReason"]) == ("FAILED", reason)
    assert info["message"] and info["sendWeightSuccess"] is False and info["endDatetime"]
    if reason == "resource.timeout":
        assert info["dataRows"] is None and info["currStep"] is None  # never got a GPU
    else:
        assert info["currStep"] == info["totalTrainSteps"] // 2  # failed mid-training
    # the sequence is used up: the next task trains normally
    assert train(storage_api, bucket, "train.jsonl")["status"] == "SUCCEEDED"


def test_delete_stops_a_running_task(make_api: Callable[..., Api], moto_server: MotoServer, bucket: str) -> None:
    api = make_api(object_storage_endpoint=moto_server.endpoint, time_scale=0.02)  # WAIT 0.6 s, 40 ms per step
    upload(moto_server, bucket, "train.jsonl", jsonl(rows()))
    task_id = api.post("/tuning/v2/tasks", create_body(bucket, "train.jsonl")).json()["result"]["id"]
    wait_until(lambda: api.task(task_id)["status"] == "RUNNING")
    assert api.delete(f"/tuning/v2/tasks/{task_id}").json() == {"status": {"code": "20000", "message": "OK"}}
    response = api.get(f"/tuning/v2/tasks/{task_id}")
    assert (response.status_code, response.json()["status"]["code"]) == (404, "40400")
    chat = api.post(f"/v3/tasks/{task_id}/chat-completions", {"messages": [{"role": "user", "content": "x"}]})
    assert chat.status_code == 404


def test_tuned_chat_only_after_success(make_api: Callable[..., Api], moto_server: MotoServer, bucket: str) -> None:
    # --tunable-models opens HCX-005 to training here, to cover the v3 tuned path
    api = make_api(
        object_storage_endpoint=moto_server.endpoint, time_scale=0.01, tunable_models=("HCX-003", "HCX-005")
    )  # WAIT 0.3 s
    upload(moto_server, bucket, "train.jsonl", jsonl(rows()))
    body = create_body(bucket, "train.jsonl", model="HCX-005", trainEpochs=1)
    task_id = api.post("/tuning/v2/tasks", body).json()["result"]["id"]
    ask = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "  QUESTION   7 "}]}
    early = api.post(f"/v3/tasks/{task_id}/chat-completions", ask)
    assert (early.status_code, early.json()["status"]["code"]) == (400, "40080")
    assert "WAIT" in early.json()["status"]["message"]
    api.wait_done(task_id)
    learned = api.post(f"/v3/tasks/{task_id}/chat-completions", ask).json()["result"]
    assert learned["message"] == {"role": "assistant", "content": "answer 7"}
    assert learned["finishReason"] == "stop"
    other = api.post(f"/v3/tasks/{task_id}/chat-completions", {"messages": [{"role": "user", "content": "hm?"}]})
    assert other.status_code == 200 and other.json()["result"]["message"]["content"] != "answer 7"
    wrong_api = api.post(f"/v1/tasks/{task_id}/chat-completions", ask)
    assert (wrong_api.status_code, wrong_api.json()["status"]["code"]) == (400, "40080")
    # a tuned model on v3 takes no reasoning
    thinking = api.post(f"/v3/tasks/{task_id}/chat-completions", {**ask, "thinking": {"effort": "low"}})
    assert (thinking.status_code, thinking.json()["status"]["code"]) == (400, "40001")
    # charged as the base model
    windows = {(w["model"], w["served"]) for w in api.stats()["windows"]}
    assert windows == {("HCX-005", 2)}


def test_tuned_v1_task(storage_api: Api, moto_server: MotoServer, bucket: str) -> None:
    upload(moto_server, bucket, "train.jsonl", jsonl(rows()))
    task = train(storage_api, bucket, "train.jsonl", model="HCX-003", trainEpochs=1)
    ask = {"messages": [{"role": "user", "content": "question 3"}]}
    for version in ("v1", "v2"):
        result = storage_api.post(f"/{version}/tasks/{task['id']}/chat-completions", ask).json()["result"]
        assert result["message"]["content"] == "answer 3" and result["stopReason"] == "end_token"
    assert storage_api.post(f"/v3/tasks/{task['id']}/chat-completions", ask).status_code == 400


def test_failed_task_cannot_chat(storage_api: Api) -> None:
    task = train(storage_api, "no-bucket-here", "x.jsonl")  # FAILED: no storage at the endpoint path
    response = storage_api.post(
        f"/v1/tasks/{task['id']}/chat-completions", {"messages": [{"role": "user", "content": "x"}]}
    )
    assert (response.status_code, response.json()["status"]["code"]) == (400, "40080")
    assert "FAILED" in response.json()["status"]["message"]
