"""The tuning operator, trigger and sensor against the emulator + moto: one billed task per task
instance whatever breaks, failures explained, the deferrable path through the real trigger."""

from __future__ import annotations

import asyncio
import json
import time
from importlib import import_module
from typing import Any

import pytest

from airflow_provider_clova.client.errors import (
    ClovaStudioDatasetError,
    ClovaStudioTuningFailedError,
    ClovaStudioWaitTimeoutError,
)
from airflow_provider_clova.operators.tuning import TUNING_TASK_ID_XCOM_KEY, ClovaStudioTuningOperator
from airflow_provider_clova.sensors.tuning import ClovaStudioTuningSensor
from airflow_provider_clova.testing.servers import ClovaEmulator
from airflow_provider_clova.triggers.tuning import ClovaStudioTuningTrigger
from tests.integration.tuning.conftest import (
    CLOVA_CONN_ID,
    COLUMN_ORDER,
    OBJ_CONN_ID,
    POLL,
    SAMPLE,
    created,
    requests,
)
from tests.unit.tuning.conftest import FakeTI, TaskDeferred, make_context

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("connections")]

KEY = "datasets/support/train.jsonl"


def operator(bucket: str, key: str = KEY, **kwargs: Any) -> ClovaStudioTuningOperator:
    kwargs.setdefault("deferrable", False)
    kwargs.setdefault("poll_interval", POLL)
    kwargs.setdefault("max_poll_interval", 900 * 0.01)
    return ClovaStudioTuningOperator(
        task_id="tune",
        model="HCX-003",  # the only model the tuning API trains
        dataset_bucket=bucket,
        dataset_key=key,
        object_storage_conn_id=OBJ_CONN_ID,
        clova_conn_id=CLOVA_CONN_ID,
        train_epochs=kwargs.pop("train_epochs", 4),
        **kwargs,
    )


def run(op: ClovaStudioTuningOperator, **ti: Any) -> tuple[dict[str, Any], Any]:
    ctx = make_context(FakeTI(**ti))
    return op.execute(ctx), ctx


@pytest.mark.slow
def test_submit_wait_and_succeed(emulator: ClovaEmulator, bucket: str, put: Any) -> None:
    put(KEY, SAMPLE)
    result, ctx = run(operator(bucket))
    assert result["status"] == "SUCCEEDED"
    assert (result["steps"], result["total_steps"], result["data_rows"]) == (60, 60, 120)
    assert result["train_loss"] is not None
    tasks = created(emulator)
    assert [t["id"] for t in tasks] == [result["task_id"]]
    assert tasks[0]["name"] == result["name"] == ctx["ti"].dag_id + ".tune." + result["name"].rsplit(".", 1)[1]
    assert ctx["ti"].xcoms[TUNING_TASK_ID_XCOM_KEY] == result["task_id"]


def test_an_invalid_dataset_is_stopped_before_submit(emulator: ClovaEmulator, bucket: str, put: Any) -> None:
    put(KEY, COLUMN_ORDER)
    with pytest.raises(ClovaStudioDatasetError, match="nothing was submitted"):
        run(operator(bucket))
    assert created(emulator) == []
    assert requests(emulator, "tuning.create") == {}


def test_a_missing_dataset_is_stopped_before_submit(emulator: ClovaEmulator, bucket: str) -> None:
    with pytest.raises(ClovaStudioDatasetError, match=r"file\.noexist"):
        run(operator(bucket, key="datasets/not-there.jsonl"))
    assert created(emulator) == []


def test_a_missing_bucket_is_named_with_the_fix_before_submit(emulator: ClovaEmulator) -> None:
    with pytest.raises(ClovaStudioDatasetError, match=r"bucket 'no-such-bucket-x' does not exist.*Fix:"):
        run(operator("no-such-bucket-x"))
    assert created(emulator) == []


@pytest.mark.slow
def test_a_retry_after_a_crash_between_submit_and_wait_reattaches(
    emulator: ClovaEmulator, bucket: str, put: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(KEY, SAMPLE)
    first = operator(bucket)

    def crash(context: Any, tuning_task_id: str) -> dict[str, Any]:
        raise SystemExit("worker lost right after submit")

    monkeypatch.setattr(first, "_wait", crash)
    with pytest.raises(SystemExit):
        run(first, try_number=1)
    assert first.tuning_task_id is not None
    assert len(created(emulator)) == 1

    result, ctx = run(operator(bucket), try_number=2)
    assert result["task_id"] == first.tuning_task_id and result["status"] == "SUCCEEDED"
    assert len(created(emulator)) == 1
    assert requests(emulator, "tuning.create") == {"200": 1}
    assert ctx["ti"].xcoms[TUNING_TASK_ID_XCOM_KEY] == first.tuning_task_id


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["504", "drop", "500", "429"])
def test_a_create_whose_reply_is_lost_after_the_task_was_made_is_reconciled(
    emulator: ClovaEmulator, bucket: str, put: Any, fault: str
) -> None:
    put(KEY, SAMPLE)
    emulator.set_faults(tuning__create={"sequence": [{"kind": fault, "when": "after"}]})
    result, _ = run(operator(bucket))
    tasks = created(emulator)
    assert [t["id"] for t in tasks] == [result["task_id"]]
    assert result["status"] == "SUCCEEDED"
    outcome = "dropped" if fault == "drop" else fault
    assert requests(emulator, "tuning.create") == {outcome: 1}
    assert requests(emulator, "tuning.list")  # reconciled by listing
    injected = emulator.stats()["faults"]["injected"]
    assert [(f["route"], f["kind"], f["when"]) for f in injected] == [("tuning.create", fault, "after")]


def test_a_create_that_failed_before_anything_was_made_is_submitted_again_after_checking(
    emulator: ClovaEmulator, bucket: str, put: Any
) -> None:
    put(KEY, SAMPLE)
    emulator.set_faults(tuning__create={"sequence": [{"kind": "504", "when": "before"}]})
    result, _ = run(operator(bucket, wait_for_completion=False))
    assert [t["id"] for t in created(emulator)] == [result["task_id"]]
    assert requests(emulator, "tuning.create") == {"504": 1, "200": 1}


def test_a_failed_dataset_surfaces_the_reason_message_and_fix(emulator: ClovaEmulator, bucket: str, put: Any) -> None:
    put(KEY, COLUMN_ORDER)
    with pytest.raises(ClovaStudioTuningFailedError) as info:
        run(operator(bucket, validate_dataset=False))
    text = str(info.value)
    assert info.value.failure_reason == "file.format"
    assert "failureReason=file.format" in text and "Invalid dataset: column order" in text
    assert "Fix: Put the columns in this order: System_Prompt, C_ID, T_ID, Text, Completion" in text
    assert len(created(emulator)) == 1  # file.format is not resubmitted


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["train.unknown", "clops.error"])
def test_a_platform_failure_is_created_again_once_then_surfaces_its_reason(
    emulator: ClovaEmulator, bucket: str, put: Any, fault: str
) -> None:
    put(KEY, SAMPLE)
    emulator.set_faults(tuning__run={"sequence": [fault, fault]})
    with pytest.raises(ClovaStudioTuningFailedError) as info:
        run(operator(bucket))
    assert info.value.failure_reason == fault
    assert f"failureReason={fault}" in str(info.value) and "support" in str(info.value)
    assert len(created(emulator)) == 2
    # an Airflow retry re-raises without billing a third training
    with pytest.raises(ClovaStudioTuningFailedError):
        run(operator(bucket), try_number=2)
    assert len(created(emulator)) == 2


@pytest.mark.slow
def test_no_gpu_is_resubmitted_once_by_default_and_succeeds(emulator: ClovaEmulator, bucket: str, put: Any) -> None:
    put(KEY, SAMPLE)
    emulator.set_faults(tuning__run={"sequence": ["resource.timeout", None]})
    result, _ = run(operator(bucket))
    tasks = created(emulator)
    assert len(tasks) == 2 and result["task_id"] == tasks[1]["id"]
    assert tasks[0]["name"] == tasks[1]["name"]
    assert result["status"] == "SUCCEEDED"


def test_no_gpu_with_resubmit_never_fails_with_the_hint(emulator: ClovaEmulator, bucket: str, put: Any) -> None:
    put(KEY, SAMPLE)
    emulator.set_faults(tuning__run={"sequence": ["resource.timeout"]})
    with pytest.raises(ClovaStudioTuningFailedError, match="GPU") as info:
        run(operator(bucket, resubmit_failed="never"))
    assert info.value.failure_reason == "resource.timeout"
    assert len(created(emulator)) == 1


def test_timeout_deletes_the_remote_task(emulator: ClovaEmulator, bucket: str, put: Any) -> None:
    put(KEY, SAMPLE)
    op = operator(bucket, train_epochs=20, timeout=2 * POLL)  # 300 steps: far longer than the timeout
    with pytest.raises(ClovaStudioWaitTimeoutError, match="deleted"):
        run(op)
    assert requests(emulator, "tuning.delete") == {"200": 1}
    assert len(created(emulator)) == 1


async def _run_trigger(trigger: ClovaStudioTuningTrigger) -> list[Any]:
    return [event async for event in trigger.run()]


@pytest.mark.slow
def test_deferrable_path_through_the_trigger(
    emulator: ClovaEmulator, bucket: str, put: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no client-side retries: every error reaches the trigger's own poll loop
    monkeypatch.setenv(f"AIRFLOW_CONN_{CLOVA_CONN_ID.upper()}", emulator.conn_json(max_retries=0))
    put(KEY, SAMPLE)
    op = operator(bucket, deferrable=True, timeout=600, train_epochs=20)  # 300 steps: ~6 s
    ctx = make_context(FakeTI())
    with pytest.raises(TaskDeferred) as info:
        op.execute(ctx)
    # the triggerer rebuilds the trigger from its serialized form
    classpath, kwargs = info.value.trigger.serialize()
    module, _, name = classpath.rpartition(".")
    trigger = getattr(import_module(module), name)(**json.loads(json.dumps(kwargs)))
    # and the service misbehaves while it polls
    emulator.set_faults(tuning__get={"sequence": [None, "500", "drop", None, "429", "malformed", None, "503"]})
    events = asyncio.run(_run_trigger(trigger))
    assert [e.payload["status"] for e in events] == ["success"]
    result = getattr(op, info.value.method_name)(ctx, **{"event": events[0].payload})
    assert result["status"] == "SUCCEEDED" and result["task_id"] == ctx["ti"].xcoms[TUNING_TASK_ID_XCOM_KEY]
    gets = requests(emulator, "tuning.get")
    injected = [fault["kind"] for fault in emulator.stats()["faults"]["injected"]]
    assert injected[:4] == ["500", "drop", "429", "malformed"]  # the rest depends on the pace
    for kind in ("500", "429", "503"):
        assert gets.get(kind, 0) == injected.count(kind)
    assert gets.get("dropped") == 1
    assert len(created(emulator)) == 1


def test_the_trigger_deletes_on_kill_when_asked(emulator: ClovaEmulator, bucket: str, put: Any) -> None:
    put(KEY, SAMPLE)
    op = operator(bucket, deferrable=True)
    with pytest.raises(TaskDeferred) as info:
        op.execute(make_context(FakeTI()))
    asyncio.run(info.value.trigger.on_kill())
    assert requests(emulator, "tuning.delete") == {"200": 1}
    events = asyncio.run(_run_trigger(info.value.trigger))
    assert events[0].payload["status"] == "error" and "40400" in events[0].payload["message"]


@pytest.mark.slow
def test_sensor_pokes_until_the_task_succeeds(emulator: ClovaEmulator, bucket: str, put: Any) -> None:
    put(KEY, SAMPLE)
    result, _ = run(operator(bucket, wait_for_completion=False))
    sensor = ClovaStudioTuningSensor(
        task_id="wait", tuning_task_id=result["task_id"], clova_conn_id=CLOVA_CONN_ID, poke_interval=POLL
    )
    ctx = make_context(FakeTI(task_id="wait"))
    done: Any = False
    for _ in range(200):  # bounded: the training takes ~1.5 s, each poke is one GET
        done = sensor.poke(ctx)
        if done:
            break
        time.sleep(POLL)  # the poke_interval Airflow would wait between pokes
    assert done and done.xcom_value["status"] == "SUCCEEDED"
    assert done.xcom_value["task_id"] == result["task_id"]
