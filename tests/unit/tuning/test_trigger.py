"""ClovaStudioTuningTrigger: serializable without secrets, async only, exactly one event."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from airflow_provider_clova.client.client import ClovaStudioClient
from airflow_provider_clova.testing.samples import fail, failed_json, ok, succeeded_json, task_json
from airflow_provider_clova.triggers.tuning import ClovaStudioTuningTrigger
from tests.unit.tuning.conftest import CLOVA_CONN_ID, HOST, SECRETS

TASK = "czf9fbky"
TASK_PATH = f"/tuning/v2/tasks/{TASK}"

pytestmark = pytest.mark.usefixtures("connections")


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=HOST, assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every pause the trigger asks for; the event loop still turns, nothing really waits."""
    recorded: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float, result: Any = None) -> Any:
        recorded.append(float(seconds))
        await real_sleep(0)
        return result

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    return recorded


class SyncGuard:
    """Makes every use of the sync client fail; ``off()`` for the worker-side part of a test."""

    NAMES = ("__init__", "call", "get_tuning_task", "delete_tuning_task")

    def __init__(self) -> None:
        self.saved: list[tuple[Any, str, Any]] = [
            (ClovaStudioClient, n, ClovaStudioClient.__dict__[n]) for n in self.NAMES
        ]
        self.saved.append((httpx.Client, "send", httpx.Client.__dict__["send"]))

    @staticmethod
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the trigger used the sync client")

    def on(self) -> None:
        for owner, name, _ in self.saved:
            setattr(owner, name, self.refuse)

    def off(self) -> None:
        for owner, name, original in self.saved:
            setattr(owner, name, original)


@pytest.fixture(autouse=True)
def no_sync_client() -> Iterator[SyncGuard]:
    """The triggerer's event loop must never see a blocking client."""
    guard = SyncGuard()
    guard.on()
    try:
        yield guard
    finally:
        guard.off()


def trigger(**kwargs: Any) -> ClovaStudioTuningTrigger:
    kwargs.setdefault("poll_interval", 10.0)
    kwargs.setdefault("max_poll_interval", 600.0)
    return ClovaStudioTuningTrigger(tuning_task_id=TASK, clova_conn_id=CLOVA_CONN_ID, **kwargs)


async def events(t: ClovaStudioTuningTrigger) -> list[Any]:
    return [event async for event in t.run()]


# -- serialization --------------------------------------------------------------------------


def test_serialize_round_trips_into_an_equal_trigger() -> None:
    from importlib import import_module

    original = trigger(end_time=1_900_000_000.5, cancel_on_kill=False)
    classpath, kwargs = original.serialize()
    module, _, name = classpath.rpartition(".")
    assert module == "airflow_provider_clova.triggers.tuning"
    rebuilt = getattr(import_module(module), name)(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs == {
        "tuning_task_id": TASK,
        "clova_conn_id": CLOVA_CONN_ID,
        "poll_interval": 10.0,
        "max_poll_interval": 600.0,
        "end_time": 1_900_000_000.5,
        "cancel_on_kill": False,
    }
    for secret in SECRETS:
        assert secret not in json.dumps(kwargs)


def test_end_time_becomes_a_monotonic_deadline_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_000_000.0)
    monkeypatch.setattr(time, "monotonic", lambda: 50.0)
    poller = trigger(end_time=1_000_000.0 + 3600)._poller()
    assert poller.deadline == pytest.approx(50.0 + 3600)
    assert trigger(end_time=None)._poller().deadline is None


def test_max_poll_interval_below_poll_interval_is_raised_to_it() -> None:
    poller = trigger(poll_interval=60, max_poll_interval=5)._poller()
    assert poller.policy.poll_interval == 60 and poller.policy.max_poll_interval == 60


# -- run ------------------------------------------------------------------------------------


async def test_success_yields_exactly_one_event_after_polling(api: respx.MockRouter, sleeps: list[float]) -> None:
    running = task_json(TASK, "RUNNING", currStep=10, totalTrainSteps=60, estimatedTime=5, currEpoch=1)
    route = api.get(TASK_PATH).mock(side_effect=[ok(task_json(TASK)), ok(running), ok(succeeded_json(TASK))])
    got = await events(trigger())
    assert len(got) == 1
    payload = got[0].payload
    assert payload["status"] == "success" and payload["task_id"] == TASK
    assert payload["task"]["status"] == "SUCCEEDED"
    assert route.call_count == 3
    assert sleeps == [10.0, 10.0]


async def test_failed_task_yields_one_failed_event(api: respx.MockRouter, sleeps: list[float]) -> None:
    api.get(TASK_PATH).mock(return_value=ok(failed_json(TASK, "file.format", "Invalid dataset: column order")))
    got = await events(trigger())
    assert [e.payload["status"] for e in got] == ["failed"]
    assert "file.format" in got[0].payload["message"]
    assert got[0].payload["task"]["statusInfo"]["message"] == "Invalid dataset: column order"


async def test_a_trigger_started_past_its_deadline_times_out_without_polling(
    api: respx.MockRouter, sleeps: list[float]
) -> None:
    route = api.get(TASK_PATH).mock(return_value=ok(task_json(TASK, "WAIT")))
    got = await events(trigger(end_time=time.time() - 1))
    assert [e.payload["status"] for e in got] == ["timeout"]
    assert "never fetched" in got[0].payload["message"]
    assert route.call_count == 0


async def test_timeout_after_some_polls(api: respx.MockRouter, monkeypatch: pytest.MonkeyPatch) -> None:
    """A virtual monotonic clock moved by the trigger's own sleeps: it times out at the deadline."""
    now = [1000.0]
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float, result: Any = None) -> Any:
        now[0] += seconds
        await real_sleep(0)
        return result

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    route = api.get(TASK_PATH).mock(return_value=ok(task_json(TASK, "WAIT")))
    t = trigger(end_time=time.time() + 35)
    got = await events(t)
    assert [e.payload["status"] for e in got] == ["timeout"]
    # at 0, 10, 20 and 30; at the deadline (35) it stops without a fetch that would end past it
    assert route.call_count == 4
    assert now[0] == pytest.approx(1035.0, abs=0.01)


@pytest.mark.parametrize(
    ("response", "needle"),
    [
        (fail(404, "40400", "Not found"), "40400"),
        (fail(401, "40101", "Invalid signature"), "40101"),
        (fail(403, "40301", "Forbidden"), "40301"),
    ],
)
async def test_a_non_retryable_error_yields_one_error_event(
    api: respx.MockRouter, sleeps: list[float], response: httpx.Response, needle: str
) -> None:
    route = api.get(TASK_PATH).mock(return_value=response)
    got = await events(trigger())
    assert [e.payload["status"] for e in got] == ["error"]
    assert needle in got[0].payload["message"]
    assert route.call_count == 1


async def test_keeps_polling_through_rate_limits_server_and_network_errors(
    api: respx.MockRouter, sleeps: list[float]
) -> None:
    route = api.get(TASK_PATH).mock(
        side_effect=[
            ok(task_json(TASK, "WAIT")),
            fail(429, "42901", "Too many requests - rate exceeded"),
            fail(500, "50000", "Internal server error"),
            httpx.ConnectError("connection refused"),
            fail(504, "50400", "Gateway timeout"),
            httpx.ReadTimeout("no answer"),
            ok(task_json(TASK, "WAIT")),
            ok(succeeded_json(TASK)),
        ]
    )
    got = await events(trigger())
    assert [e.payload["status"] for e in got] == ["success"]
    assert route.call_count == 8
    assert sleeps == [10.0, 10.0, 20.0, 40.0, 80.0, 160.0, 10.0]


async def test_a_bad_connection_yields_one_error_event(sleeps: list[float]) -> None:
    got = await events(ClovaStudioTuningTrigger(tuning_task_id=TASK, clova_conn_id="no_such_conn_anywhere"))
    assert [e.payload["status"] for e in got] == ["error"]
    assert "no_such_conn_anywhere" in got[0].payload["message"]


# -- on_kill --------------------------------------------------------------------------------


async def test_on_kill_deletes_the_remote_task_when_asked(api: respx.MockRouter) -> None:
    route = api.delete(TASK_PATH).mock(return_value=ok())
    await trigger(cancel_on_kill=True).on_kill()
    assert route.call_count == 1


async def test_on_kill_leaves_the_remote_task_alone_otherwise(api: respx.MockRouter) -> None:
    route = api.delete(TASK_PATH).mock(return_value=ok())
    await trigger(cancel_on_kill=False).on_kill()
    assert route.call_count == 0


# -- built by the operator from real connections ----------------------------------------------


async def test_a_trigger_made_by_the_operator_carries_no_secret_and_still_works(
    api: respx.MockRouter, sleeps: list[float], no_sync_client: SyncGuard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLOVA connection has a secret key, the Object Storage one too: neither may reach the
    trigger's kwargs (they are stored in the metadata database), and the rebuilt trigger still
    authenticates from the connection id alone."""
    from importlib import import_module

    from airflow_provider_clova.operators import _object_storage
    from airflow_provider_clova.operators.tuning import ClovaStudioTuningOperator
    from tests.unit.tuning.conftest import OBJ_CONN_ID, OBJ_SECRET_KEY, SECRET_KEY, TaskDeferred, make_context

    api.get("/tuning/v2/tasks").mock(
        return_value=ok({"content": [], "totalPages": 0, "totalElements": 0, "size": 50, "number": 0})
    )
    create = api.post("/tuning/v2/tasks").mock(return_value=ok(task_json(TASK, "WAIT")))
    monkeypatch.setattr(_object_storage, "object_version", lambda conn_id, bucket, key: '"etag"')
    get = api.get(TASK_PATH).mock(return_value=ok(succeeded_json(TASK)))
    op = ClovaStudioTuningOperator(
        task_id="tune",
        model="HCX-003",
        dataset_bucket="bkt",
        dataset_key="train.jsonl",
        object_storage_conn_id=OBJ_CONN_ID,
        clova_conn_id=CLOVA_CONN_ID,
        validate_dataset=False,
        deferrable=True,
    )
    no_sync_client.off()  # the worker side: submit with the sync client
    try:
        with pytest.raises(TaskDeferred) as info:
            op.execute(make_context())
    finally:
        no_sync_client.on()
    sent = create.calls.last.request
    assert OBJ_SECRET_KEY in sent.content.decode()  # the Object Storage secret went to CLOVA, as it must
    assert "X-NCP-APIGW-SIGNATURE-V2" in sent.headers  # signed with the connection's secret key
    classpath, kwargs = info.value.trigger.serialize()
    stored = json.dumps(kwargs)
    assert SECRET_KEY not in stored and OBJ_SECRET_KEY not in stored
    assert set(kwargs) == {
        "tuning_task_id",
        "clova_conn_id",
        "poll_interval",
        "max_poll_interval",
        "end_time",
        "cancel_on_kill",
    }
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(import_module(module), name)(**json.loads(stored))
    got = await events(rebuilt)
    assert [e.payload["status"] for e in got] == ["success"]
    assert "X-NCP-APIGW-SIGNATURE-V2" in get.calls.last.request.headers
