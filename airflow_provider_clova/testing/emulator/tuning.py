"""Tuning tasks: the create checks, the task object, and a lifecycle computed from the clock.

A task's state is a pure function of its creation time, the (scaled) timings and its dataset,
evaluated whenever someone reads it: no background thread advances anything, so a test that
reads at a given moment sees exactly what the service would show then. The only side effect
is reading the dataset, done once, in a worker thread, the first time a read falls after the
WAIT -> RUNNING transition (that is when the service would pick the file up).

Timeline (each duration times ``--time-scale``)::

    created --wait_seconds--> RUNNING --step_seconds x totalTrainSteps--> SUCCEEDED
                                  \\-- dataset breaks a rule: FAILED at the transition
    resource.timeout fault: FAILED at the end of WAIT (no GPU, dataset never read)
    train.unknown / clops.error fault: FAILED halfway through the steps

``totalTrainSteps = ceil(dataRows / batch_size) * trainEpochs``. ``estimatedTime`` is the
remaining wall-clock seconds (already scaled), rounded up. ``label`` lists the distinct
``Completion`` values of a CLASSIFICATION dataset (its classes) and is null for GENERATION.
"""

from __future__ import annotations

import asyncio
import math
import random
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_clova.client.catalog import known_models
from airflow_provider_clova.testing.emulator.clock import default_task_name, iso_kst
from airflow_provider_clova.testing.emulator.config import Timings
from airflow_provider_clova.testing.emulator.envelope import ApiError, bad_param
from airflow_provider_clova.testing.emulator.params import enum_param, float_param, int_param, str_param
from airflow_provider_clova.testing.emulator.storage import DatasetOutcome, DatasetRef, failure
from airflow_provider_clova.testing.samples import status_info

DATASET_FIELDS = (
    "trainingDatasetBucket",
    "trainingDatasetFilePath",
    "trainingDatasetAccessKey",
    "trainingDatasetSecretKey",
)
ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
MAX_PAGE_SIZE = 100


@dataclass
class TuningTask:
    """One training, as stored by the emulator (the dataset secret never leaves memory)."""

    id: str
    name: str
    model: str
    account: str
    task_type: str
    train_epochs: int
    learning_rate: float
    created_at: float
    dataset: DatasetRef = field(repr=False)
    run_fault: str | None = None
    outcome: DatasetOutcome | None = None
    loading: asyncio.Future[DatasetOutcome] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class CreateRequest:
    """A validated create body."""

    model: str
    name: str | None
    task_type: str
    train_epochs: int
    learning_rate: float
    dataset: DatasetRef


def parse_create(body: object, tunable: tuple[str, ...]) -> CreateRequest:
    """Check a create body field by field; 400 ``40001`` names the first field out of range.

    ``model`` must be a base model the service trains (``tunable``): an unknown name is 400
    ``40080`` (model not found), a known model that does not support training 400 ``40009``
    (unsupported function, the code the troubleshooting page gives for a tuning request the
    model or API does not support). ``taskType`` is taken though the commercial table no longer
    lists it (the Gov page does); ``loraR`` is checked against the widest documented range
    (2-64) and ``loraAlpha`` only for being a positive integer, since the docs disagree.
    """
    if not isinstance(body, Mapping):
        raise ApiError(400, "40000", "Invalid request: the body must be a JSON object")
    model = str_param(body, "model", required=True)
    if model not in known_models():
        raise ApiError(400, "40080", f"Model not found: {model!r} (tunable models: {', '.join(tunable)})")
    if model not in tunable:
        raise ApiError(
            400,
            "40009",
            f"Unsupported function: {model} does not support tuning; tunable models: {', '.join(tunable)}",
        )
    name = str_param(body, "name")
    enum_param(body, "tuningType", ("PEFT",), "PEFT")
    task_type = enum_param(body, "taskType", ("GENERATION", "CLASSIFICATION"), "GENERATION")
    epochs = int_param(body, "trainEpochs", 1, 20, 8, allow_str=True)
    rate = float_param(body, "learningRate", 0.0, 1.0, 1e-4, lo_open=True, allow_str=True)
    float_param(body, "validationSplitRatio", 0.0, 0.1, 0.0, allow_str=True)
    int_param(body, "loraR", 2, 64, 8, allow_str=True)
    int_param(body, "loraAlpha", 1, 2**31 - 1, None, allow_str=True)
    given = {f: body.get(f) for f in DATASET_FIELDS}
    missing = [f for f, v in given.items() if not isinstance(v, str) or not v.strip()]
    if missing:
        raise bad_param(
            missing[0],
            "is required: trainingDatasetBucket, trainingDatasetFilePath, trainingDatasetAccessKey and "
            "trainingDatasetSecretKey are given together",
        )
    assert model is not None and task_type is not None and epochs is not None and rate is not None
    return CreateRequest(
        model=model,
        name=name,
        task_type=task_type,
        train_epochs=epochs,
        learning_rate=rate,
        dataset=DatasetRef(
            bucket=str(given["trainingDatasetBucket"]),
            key=str(given["trainingDatasetFilePath"]).lstrip("/"),
            access_key=str(given["trainingDatasetAccessKey"]),
            secret_key=str(given["trainingDatasetSecretKey"]),
        ),
    )


def _loss(task_id: str, step: int, total: int) -> float:
    """Training loss: falls from ~2.0-2.8 towards ~0.25-0.45, the same for the same task and step."""
    h = zlib.crc32(task_id.encode())
    start = 2.0 + (h % 80) / 100
    floor = 0.25 + ((h // 80) % 20) / 100
    return round(floor + (start - floor) * math.exp(-4.0 * step / max(total, 1)), 4)


class Lifecycle:
    """Turns (task, now) into the task object the service would answer."""

    def __init__(self, timings: Timings, scale: float) -> None:
        self.timings = timings
        self.scale = scale

    def run_start(self, task: TuningTask) -> float:
        return task.created_at + self.timings.wait_seconds * self.scale

    def needs_dataset(self, task: TuningTask, now: float) -> bool:
        return now >= self.run_start(task) and task.run_fault != "resource.timeout" and task.outcome is None

    def status(self, task: TuningTask, now: float) -> tuple[str, dict[str, Any], float]:
        """(status, statusInfo, time of the last change) at ``now``."""
        info = status_info()
        start = self.run_start(task)
        if now < start:
            return "WAIT", info, task.created_at
        if task.run_fault == "resource.timeout":
            return self._failed(info, failure("resource.timeout"), start)
        outcome = task.outcome
        if outcome is None:  # the caller has not loaded it yet: still at the transition
            return "RUNNING", info, start
        if not outcome.ok:
            return self._failed(info, outcome, start)
        step_time = self.timings.step_seconds * self.scale
        per_epoch = max(1, math.ceil(outcome.rows / self.timings.batch_size))
        total = per_epoch * task.train_epochs
        fail_step = total // 2 if task.run_fault in ("train.unknown", "clops.error") else None
        end_step = fail_step if fail_step is not None else total
        step = min(end_step, math.floor((now - start) / step_time)) if step_time > 0 else end_step
        info.update(
            label=list(outcome.labels) if task.task_type == "CLASSIFICATION" else None,
            dataRows=outcome.rows,
            numOfTokens=outcome.num_tokens,
            currStep=step,
            totalTrainSteps=total,
            currEpoch=min(task.train_epochs, step // per_epoch + 1),
            totalTrainEpochs=task.train_epochs,
            trainLoss=_loss(task.id, step, total) if step > 0 else None,
        )
        changed = start + step * step_time
        if step < end_step:
            info["estimatedTime"] = math.ceil((total - step) * step_time - (now - changed))
            return "RUNNING", info, changed
        info["endDatetime"] = iso_kst(changed)
        if fail_step is not None:
            assert task.run_fault is not None
            reason = failure(task.run_fault)
            info.update(failureReason=reason.failure_reason, message=reason.message, sendWeightSuccess=False)
            return "FAILED", info, changed
        info.update(currEpoch=task.train_epochs, estimatedTime=0, sendWeightSuccess=True)
        return "SUCCEEDED", info, changed

    @staticmethod
    def _failed(info: dict[str, Any], outcome: DatasetOutcome, at: float) -> tuple[str, dict[str, Any], float]:
        info.update(
            failureReason=outcome.failure_reason,
            message=outcome.message,
            sendWeightSuccess=False,
            endDatetime=iso_kst(at),
        )
        return "FAILED", info, at

    def render(self, task: TuningTask, now: float) -> dict[str, Any]:
        """The task object, field for field as the API guide's example."""
        status, info, changed = self.status(task, now)
        return {
            "id": task.id,
            "name": task.name,
            "model": task.model,
            "method": "LoRA",
            "taskType": task.task_type,
            "trainEpochs": task.train_epochs,
            "learningRate": task.learning_rate,
            "status": status,
            "statusInfo": info,
            "createdClientType": "API",
            "createdDate": iso_kst(task.created_at),
            "updatedDate": iso_kst(changed),
        }


class TuningStore:
    """Every account's tasks; ids are drawn from a seeded RNG so a replayed run gets the same ids."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        load: Callable[[TuningTask], DatasetOutcome],
        clock: Callable[[], float],
        seed: int,
    ) -> None:
        self.lifecycle = lifecycle
        self._load = load
        self._clock = clock
        self._rng = random.Random(f"task-ids:{seed}")
        self._tasks: dict[str, TuningTask] = {}

    def reset(self) -> None:
        self._tasks.clear()

    def _new_id(self) -> str:
        while True:
            candidate = "".join(self._rng.choice(ID_ALPHABET) for _ in range(8))
            if candidate not in self._tasks:
                return candidate

    def create(self, account: str, request: CreateRequest, run_fault: str | None) -> TuningTask:
        now = self._clock()
        task = TuningTask(
            id=self._new_id(),
            name=request.name or default_task_name(now),
            model=request.model,
            account=account,
            task_type=request.task_type,
            train_epochs=request.train_epochs,
            learning_rate=request.learning_rate,
            created_at=now,
            dataset=request.dataset,
            run_fault=run_fault,
        )
        self._tasks[task.id] = task
        return task

    def owned(self, account: str, task_id: str) -> TuningTask:
        """The task, or 404 ``40400`` (unknown or deleted) / 403 ``40301`` (another account's)."""
        task = self._tasks.get(task_id)
        if task is None:
            raise ApiError(404, "40400", f"Not found: no tuning task {task_id!r}")
        if task.account != account:
            raise ApiError(403, "40301", f"Forbidden: tuning task {task_id!r} belongs to another account")
        return task

    async def ready(self, task: TuningTask) -> None:
        """Read the dataset if the task has reached RUNNING and it has not been read yet."""
        if not self.lifecycle.needs_dataset(task, self._clock()):
            return
        if task.loading is None:
            task.loading = asyncio.ensure_future(asyncio.to_thread(self._load, task))
        outcome = await asyncio.shield(task.loading)
        task.outcome = outcome

    async def view(self, task: TuningTask) -> dict[str, Any]:
        await self.ready(task)
        return self.lifecycle.render(task, self._clock())

    async def status(self, task: TuningTask) -> str:
        await self.ready(task)
        return self.lifecycle.status(task, self._clock())[0]

    async def page(self, account: str, page: int, size: int) -> dict[str, Any]:
        """One page of the account's tasks, newest first, in Spring's page shape."""
        mine = [t for t in reversed(self._tasks.values()) if t.account == account]
        chunk = mine[page * size : (page + 1) * size]
        return {
            "content": [await self.view(t) for t in chunk],
            "totalPages": math.ceil(len(mine) / size),
            "totalElements": len(mine),
            "size": size,
            "number": page,
        }

    def delete(self, account: str, task_id: str) -> None:
        """Deleting is how a task is stopped; afterwards it is gone (404)."""
        task = self.owned(account, task_id)
        del self._tasks[task.id]


def parse_page(query: Mapping[str, str]) -> tuple[int, int]:
    """``page`` (0..) and ``size`` (1..100) from the query string; 400 ``40001`` otherwise."""
    values = {}
    for name, lo, hi, default in (("page", 0, 2**31 - 1, 0), ("size", 1, MAX_PAGE_SIZE, 20)):
        raw = query.get(name)
        if raw is None:
            values[name] = default
            continue
        if not raw.strip().lstrip("-").isdigit() or not lo <= int(raw) <= hi:
            raise bad_param(name, f"must be an integer from {lo} to {hi}", raw)
        values[name] = int(raw)
    return values["page"], values["size"]
