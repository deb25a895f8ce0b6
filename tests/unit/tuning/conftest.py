"""Fakes for the tuning workflow's unit tests: no network, no real waiting.

Task objects come from :mod:`airflow_provider_clova.testing.samples` (the seed's shape).
* ``FakeService`` is a hook stand-in with an in-memory task table: it records every call in
  order (``calls``), so a test can tell "listed, then created" from "created twice".
* ``FakeTI`` / ``make_context`` give an operator the pieces of an Airflow context it uses.
* ``SimJob`` + ``drive`` run a ``TuningPoller``'s blocking wait against a job that follows a
  timeline on a virtual clock: exact lateness and call counts, in microseconds of real time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_clova.client.models import StatusInfo, TuningStatus, TuningTask
from airflow_provider_clova.testing.samples import status_info, succeeded_json, task_json

AIRFLOW_SDK = True
try:
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 2.11
    from airflow.exceptions import TaskDeferred  # type: ignore[no-redef,attr-defined,unused-ignore]

    AIRFLOW_SDK = False

__all__ = ["TaskDeferred"]

CLOVA_CONN_ID = "clova_tuning_unit"
OBJ_CONN_ID = "ncloud_obj_unit"
HOST = "https://clova.tuningtest.invalid"
ACCESS_KEY = "ncp-access-key-tuning-0001"
SECRET_KEY = "clova-secret-key-5e6f7a8b9c0d1e2f"
OBJ_ACCESS_KEY = "OBJACCESSKEY0001"
OBJ_SECRET_KEY = "obj-storage-secret-key-do-not-leak-7788"
SECRETS = (SECRET_KEY, OBJ_SECRET_KEY)

# -- a hook stand-in ----------------------------------------------------------------------


@dataclass
class FakeService:
    """What the operator sees of CLOVA Studio, in memory. ``calls`` is the ordered call log."""

    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    #: what the next creates do: None = create normally; an exception = raise it; ("after", exc) =
    #: create the task, then raise exc (the reply was lost)
    create_effects: list[Any] = field(default_factory=list)
    #: statuses a created task moves through on successive GETs (the last one sticks)
    script: list[dict[str, Any]] = field(default_factory=list)
    #: the same, for one task id (wins over ``script``)
    scripts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    get_errors: list[BaseException] = field(default_factory=list)
    delete_error: BaseException | None = None
    console_url: str | None = None
    #: The connection's catalog overrides (extra.models).
    models: dict[str, Any] = field(default_factory=dict)
    _ids: Iterator[str] = field(default_factory=lambda: iter(f"tsk{n:05d}" for n in range(1, 10**5)))
    _gets: dict[str, int] = field(default_factory=dict)

    @property
    def config(self) -> Any:
        return SimpleNamespace(console_url=self.console_url, models=self.models)

    def add(self, raw: dict[str, Any]) -> dict[str, Any]:
        self.tasks[raw["id"]] = raw
        return raw

    def find_tuning_tasks(self, name: str) -> list[TuningTask]:
        self.calls.append(("list", name))
        found = [TuningTask.from_api(raw) for raw in reversed(self.tasks.values()) if raw["name"] == name]
        return found

    def create_tuning_task(self, model: str, dataset: Any = None, **fields: Any) -> TuningTask:
        effect = self.create_effects.pop(0) if self.create_effects else None
        self.calls.append(("create", fields.get("name")))
        if isinstance(effect, BaseException):
            raise effect
        task_id = next(self._ids)
        # a later creation has a later createdDate (newest first is by date)
        created = f"2023-08-21T13:{len(self.created):02d}:00+0900"
        raw = task_json(task_id, "WAIT", name=fields.get("name") or "unnamed", model=model, created=created)
        self.created.append({"model": model, "dataset": dataset, "fields": fields, "id": task_id})
        self.add(raw)
        if isinstance(effect, tuple) and effect[0] == "after":
            raise effect[1]
        return TuningTask.from_api(raw)

    def get_tuning_task(self, task_id: str, *, deadline: float | None = None) -> TuningTask:
        self.calls.append(("get", task_id))
        if self.get_errors:
            raise self.get_errors.pop(0)
        from airflow_provider_clova.client.errors import ClovaStudioNotFoundError

        if task_id not in self.tasks:
            raise ClovaStudioNotFoundError("Not found", http_status=404, code="40400")
        count = self._gets.get(task_id, 0)
        self._gets[task_id] = count + 1
        script = self.scripts.get(task_id, self.script)
        if script:
            step = script[min(count, len(script) - 1)]
            self.tasks[task_id] = {**self.tasks[task_id], **step, "id": task_id}
        return TuningTask.from_api(self.tasks[task_id])

    def delete_tuning_task(self, task_id: str, *, missing_ok: bool = True) -> bool:
        self.calls.append(("delete", task_id))
        if self.delete_error is not None:
            raise self.delete_error
        return self.tasks.pop(task_id, None) is not None

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.calls]


def succeed_after(*statuses: str) -> list[dict[str, Any]]:
    """A GET script: the given statuses (WAIT/RUNNING), then SUCCEEDED."""
    steps = []
    for index, status in enumerate(statuses):
        info = (
            {"currStep": index * 10, "totalTrainSteps": 60, "currEpoch": 1, "totalTrainEpochs": 4}
            if status == "RUNNING"
            else {}
        )
        steps.append({"status": status, "statusInfo": status_info(**info)})
    final = succeeded_json()
    steps.append({"status": "SUCCEEDED", "statusInfo": final["statusInfo"]})
    return steps


# -- an Airflow context stand-in ------------------------------------------------------------


@dataclass
class FakeTI:
    dag_id: str = "clova_dag"
    task_id: str = "tune"
    run_id: str = "manual__2026-01-01T00:00:00+00:00"
    map_index: int = -1
    try_number: int = 1
    xcoms: dict[str, Any] = field(default_factory=dict)
    pushes: list[tuple[str, Any]] = field(default_factory=list)
    #: a call log shared with a FakeService, to see pushes among the service calls
    journal: list[tuple[str, Any]] | None = None

    def xcom_push(self, key: str, value: Any, **_: Any) -> None:
        self.pushes.append((key, value))
        self.xcoms[key] = value
        if self.journal is not None:
            self.journal.append(("xcom", key))

    def xcom_pull(self, *args: Any, **kwargs: Any) -> Any:
        return None


class _Accessor:
    def __init__(self) -> None:
        self.extra: dict[str, Any] = {}


class FakeOutletEvents(dict):  # type: ignore[type-arg]
    def __missing__(self, key: Any) -> _Accessor:
        self[key] = _Accessor()
        return self[key]


def make_context(ti: FakeTI | None = None) -> Any:
    ti = ti or FakeTI()
    return {"ti": ti, "task_instance": ti, "outlet_events": FakeOutletEvents()}


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CLOVA connection (signature v2, with a secret) and an Object Storage one, by env var."""
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CLOVA_CONN_ID.upper()}",
        json.dumps(
            {
                "conn_type": "clova_studio",
                "host": HOST,
                "login": ACCESS_KEY,
                "password": SECRET_KEY,
                "extra": {"max_retries": 0},
            }
        ),
    )
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{OBJ_CONN_ID.upper()}",
        json.dumps({"conn_type": "aws", "login": OBJ_ACCESS_KEY, "password": OBJ_SECRET_KEY}),
    )


# -- a job on a virtual clock, for the poller ------------------------------------------------


class Clock:
    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class SimJob:
    """A training on a timeline: ``wait`` s queued, then ``run`` s of ``total_steps`` steps.

    The service's ``estimatedTime`` is ``eta_factor`` times the true remaining time (1.0: the
    job follows its ETA), rounded up to whole seconds as the service reports it.
    """

    wait: float
    run: float
    total_steps: int = 1000
    eta_factor: float = 1.0
    report_steps: bool = True
    fail_reason: str | None = None
    task_id: str = "simjob01"

    @property
    def end(self) -> float:
        return self.wait + self.run

    def at(self, t: float) -> TuningTask:
        if t < self.wait:
            return _fast_task(self.task_id, "WAIT", {})
        if t < self.end:
            done = (t - self.wait) / self.run
            step = min(self.total_steps - 1, int(done * self.total_steps))
            info: dict[str, Any] = {"estimatedTime": math.ceil((self.end - t) * self.eta_factor)}
            if self.report_steps:
                info.update(
                    currStep=step,
                    totalTrainSteps=self.total_steps,
                    currEpoch=1 + int(done * 4),
                    totalTrainEpochs=4,
                    trainLoss=round(2.0 - 1.5 * done, 4),
                )
            return _fast_task(self.task_id, "RUNNING", info)
        if self.fail_reason:
            return _fast_task(self.task_id, "FAILED", {"failureReason": self.fail_reason, "sendWeightSuccess": False})
        return _fast_task(
            self.task_id,
            "SUCCEEDED",
            {
                "currStep": self.total_steps,
                "totalTrainSteps": self.total_steps,
                "currEpoch": 4,
                "totalTrainEpochs": 4,
                "trainLoss": 0.5,
                "estimatedTime": 0,
            },
        )


def _fast_task(task_id: str, status: str, info: dict[str, Any]) -> TuningTask:
    """``TuningTask.from_api(task_json(...))`` without date parsing: the simulations poll a lot."""
    raw = task_json(task_id, status, **info)
    return TuningTask(
        id=task_id,
        name=raw["name"],
        model=raw["model"],
        status=TuningStatus(status),
        status_info=StatusInfo.from_api(raw["statusInfo"]),
        raw=raw,
    )


@dataclass
class Trace:
    event: Any
    polls: list[tuple[float, TuningStatus | None, float | None]]  # (time, status seen, sleep after)

    @property
    def sleeps(self) -> list[float]:
        return [delay for _, _, delay in self.polls if delay is not None]

    def sleeps_while(self, status: TuningStatus) -> list[float]:
        return [delay for _, seen, delay in self.polls if seen is status and delay is not None]

    @property
    def end_time(self) -> float:
        return self.polls[-1][0]


class Runaway(BaseException):
    """Stops a simulated wait that never ends (a BaseException, so the poller cannot catch it)."""


def drive(
    poller: Any,
    fetch: Callable[[float], TuningTask | BaseException],
    clock: Clock,
    *,
    max_polls: int = 100_000,
) -> Trace:
    """Run the poller's blocking wait on a virtual clock: each pause moves the clock instead of sleeping."""
    polls: list[list[Any]] = []  # [time, status seen, sleep after]

    def look() -> TuningTask:
        if len(polls) >= max_polls:
            raise Runaway("the poller never stopped")
        outcome = fetch(clock.now)
        polls.append([clock.now, outcome.status if isinstance(outcome, TuningTask) else None, None])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def sleep(seconds: float) -> None:
        assert seconds > 0, (seconds, polls)
        if polls:  # a pause after a poll; the one before the first poll (jitter) is not a poll's
            polls[-1][2] = seconds
        clock.now += seconds

    event = poller.wait_sync(look, sleep)
    return Trace(event, [(t, seen, delay) for t, seen, delay in polls])


class _NoJitter:
    @staticmethod
    def random() -> float:
        return 0.0


@pytest.fixture(autouse=True)
def steady_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin the poll schedule: the default jitter source answers 0 (no first-poll spread, no
    shortening), so these tests can assert exact pauses. ``test_poll_jitter`` tests the jitter
    itself with an explicit ``rng``."""
    from airflow_provider_clova.client import polling

    monkeypatch.setattr(polling, "_RANDOM", _NoJitter())
