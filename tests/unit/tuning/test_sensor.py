"""ClovaStudioTuningSensor: one poll step per poke, or the trigger when deferrable."""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_provider_clova.client.errors import (
    ClovaStudioError,
    ClovaStudioNotFoundError,
    ClovaStudioRateLimitError,
    ClovaStudioTuningFailedError,
    ClovaStudioWaitTimeoutError,
)
from airflow_provider_clova.links.console import ClovaStudioTuningConsoleLink
from airflow_provider_clova.sensors.tuning import ClovaStudioTuningSensor
from airflow_provider_clova.testing.samples import failed_json, succeeded_json, task_json
from airflow_provider_clova.triggers.tuning import ClovaStudioTuningTrigger
from tests.unit.tuning.conftest import (
    CLOVA_CONN_ID,
    FakeService,
    TaskDeferred,
    make_context,
    succeed_after,
)

TASK = "tsk00001"


def sensor(service: FakeService, **kwargs: Any) -> ClovaStudioTuningSensor:
    kwargs.setdefault("deferrable", False)
    s = ClovaStudioTuningSensor(task_id="wait_tuning", tuning_task_id=TASK, clova_conn_id=CLOVA_CONN_ID, **kwargs)
    s._hook = service  # type: ignore[assignment]
    return s


@pytest.fixture
def watched(service: FakeService) -> FakeService:
    service.add(task_json(TASK, "WAIT"))
    return service


def test_poke_is_false_until_the_task_succeeds_then_done_with_the_result(watched: FakeService) -> None:
    watched.script = succeed_after("WAIT", "RUNNING", "RUNNING")
    s = sensor(watched)
    ctx = make_context()
    assert [s.poke(ctx) for _ in range(3)] == [False, False, False]
    done = s.poke(ctx)
    assert done.is_done is True
    assert done.xcom_value["task_id"] == TASK and done.xcom_value["status"] == "SUCCEEDED"
    assert watched.kinds() == ["get"] * 4


def test_poke_raises_the_failure_with_its_fix(watched: FakeService) -> None:
    watched.script = [failed_json(TASK, "file.encoding", "Unsupported charset")]
    with pytest.raises(ClovaStudioTuningFailedError) as info:
        sensor(watched).poke(make_context())
    assert info.value.failure_reason == "file.encoding"
    assert "Unsupported charset" in str(info.value) and "UTF-8" in str(info.value)


def test_poke_keeps_going_through_retryable_errors(watched: FakeService) -> None:
    watched.get_errors = [ClovaStudioRateLimitError("Too many requests", http_status=429, code="42901")] * 3
    watched.script = [succeeded_json(TASK)]
    s = sensor(watched)
    ctx = make_context()
    assert [s.poke(ctx) for _ in range(3)] == [False, False, False]
    assert s.poke(ctx).is_done


def test_poke_raises_on_a_task_that_is_gone(service: FakeService) -> None:
    service.get_errors = [ClovaStudioNotFoundError("Not found: no tuning task", http_status=404, code="40400")]
    with pytest.raises(ClovaStudioError, match="40400"):
        sensor(service).poke(make_context())


@pytest.mark.parametrize("interval", [0, 5, 3600])
def test_any_poke_interval_airflow_allows_works(watched: FakeService, interval: float) -> None:
    assert sensor(watched, poke_interval=interval).poke(make_context()) is False


def test_deferrable_defers_with_the_trigger(watched: FakeService) -> None:
    s = sensor(watched, deferrable=True, poke_interval=20, timeout=7200, max_poll_interval=120)
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        s.execute(make_context())
    assert watched.calls == []  # nothing is fetched in the worker
    assert info.value.method_name == "execute_complete"
    trigger = info.value.trigger
    assert isinstance(trigger, ClovaStudioTuningTrigger)
    assert trigger.tuning_task_id == TASK and trigger.clova_conn_id == CLOVA_CONN_ID
    assert trigger.poll_interval == 20 and trigger.max_poll_interval == 120
    assert trigger.cancel_on_kill is False
    assert trigger.end_time is not None and before + 7200 <= trigger.end_time <= time.time() + 7200


def test_execute_complete_returns_the_same_result_as_poke(watched: FakeService) -> None:
    s = sensor(watched, deferrable=True)
    event = {"status": "success", "task_id": TASK, "message": "", "task": succeeded_json(TASK)}
    result = s.execute_complete(make_context(), event)
    watched.script = [succeeded_json(TASK)]
    assert result == sensor(watched).poke(make_context()).xcom_value


def test_execute_complete_raises_failed_and_timeout(watched: FakeService) -> None:
    s = sensor(watched, deferrable=True)
    failed = {"status": "failed", "task_id": TASK, "message": "", "task": failed_json(TASK, "resource.timeout", None)}
    with pytest.raises(ClovaStudioTuningFailedError, match="GPU"):
        s.execute_complete(make_context(), failed)
    with pytest.raises(ClovaStudioWaitTimeoutError):
        s.execute_complete(make_context(), {"status": "timeout", "task_id": TASK, "message": "gave up", "task": None})
    assert "delete" not in watched.kinds()  # the sensor does not own the task unless told


def test_a_sensor_told_to_cancel_deletes_on_timeout(watched: FakeService) -> None:
    s = sensor(watched, deferrable=True, cancel_on_kill=True)
    with pytest.raises(ClovaStudioWaitTimeoutError, match="deleted"):
        s.execute_complete(make_context(), {"status": "timeout", "task_id": TASK, "message": "gave up", "task": None})
    assert ("delete", TASK) in watched.calls


def test_templated_id_and_console_link() -> None:
    assert "tuning_task_id" in ClovaStudioTuningSensor.template_fields
    assert any(isinstance(link, ClovaStudioTuningConsoleLink) for link in ClovaStudioTuningSensor.operator_extra_links)


def test_one_hook_serves_every_poke() -> None:
    s = ClovaStudioTuningSensor(task_id="w", tuning_task_id=TASK, clova_conn_id=CLOVA_CONN_ID)
    assert s.hook is s.hook
