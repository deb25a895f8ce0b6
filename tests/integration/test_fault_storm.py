"""The fault storm: many tunings and a killed batch against a misbehaving CLOVA Studio (the emulator's
fault injection) and a misbehaving Object Storage (an S3 fault proxy in front of moto), with
Airflow's retries and overlapping tries simulated. The promise under test: every job ends
correct, the service holds exactly one training per task instance, and no batch row is lost or
written twice. The figures are printed (``-s``) for the record.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_clova.client.errors import ClovaStudioError
from airflow_provider_clova.operators.batch import ClovaStudioBatchInferenceOperator
from airflow_provider_clova.testing.servers import ClovaEmulator, MotoServer, start_emulator
from tests.integration.s3_faults import S3FaultProxy
from tests.integration.tuning.conftest import CLOVA_CONN_ID as CLOVA_CONN
from tests.integration.tuning.conftest import OBJ_CONN_ID as OBJ_CONN
from tests.integration.tuning.conftest import SAMPLE
from tests.integration.tuning.test_tuning_emulator import operator
from tests.unit.tuning.conftest import FakeTI, TaskDeferred, make_context

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TIME_SCALE = 0.01
TUNINGS = 50
OVERLAPPING = 10  # of the TUNINGS, run as two tries at once
FAULT_RATE = 0.25
MAX_TRIES = 6  # Airflow retries per task instance
ROOMY = {"HCX-005": {"qpm": 60000, "tpm": 10**8}}
HTTP_FAULTS = [
    {"kind": "500"},
    {"kind": "503"},
    {"kind": "429"},
    {"kind": "drop"},
    {"kind": "malformed"},
    {"kind": "504", "when": "after"},
    {"kind": "500", "when": "after"},
    {"kind": "429", "when": "after"},
    {"kind": "drop", "when": "after"},
    {"kind": "malformed", "when": "after"},
]


def storm(rate: float, routes: tuple[str, ...], seed: int) -> dict[str, Any]:
    return {"seed": seed, "routes": {r: {"probability": rate, "faults": HTTP_FAULTS} for r in routes}}


@pytest.fixture(scope="module")
def storm_emulator(moto_server: MotoServer) -> Iterator[ClovaEmulator]:
    emulator = start_emulator(object_storage_endpoint=moto_server.endpoint, time_scale=TIME_SCALE, limits=ROOMY)
    yield emulator
    emulator.stop()


@pytest.fixture
def s3_proxy(moto_server: MotoServer) -> Iterator[S3FaultProxy]:
    proxy = S3FaultProxy(moto_server.endpoint, probability=FAULT_RATE, seed=7).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def connections(
    monkeypatch: pytest.MonkeyPatch, storm_emulator: ClovaEmulator, moto_server: MotoServer, s3_proxy: S3FaultProxy
) -> None:
    storm_emulator.reset()
    storm_emulator.clear_faults()
    monkeypatch.setenv(f"AIRFLOW_CONN_{CLOVA_CONN.upper()}", storm_emulator.conn_json(limits=ROOMY, timeout=10))
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{OBJ_CONN.upper()}",
        json.dumps(
            {
                "conn_type": "aws",
                "login": moto_server.access_key,
                "password": moto_server.secret_key,
                "extra": {"endpoint_url": s3_proxy.endpoint, "region_name": moto_server.region},
            }
        ),
    )


# -- tunings ----------------------------------------------------------------------------------


async def _events(trigger: Any) -> list[Any]:
    return [event async for event in trigger.run()]


def one_try(bucket: str, key: str, index: int, try_number: int) -> dict[str, Any]:
    """One Airflow try: execute, then (deferred) the trigger's run() and execute_complete."""
    op = operator(bucket, key, deferrable=True, train_epochs=2, max_poll_interval=2.0, timeout=300)
    ctx = make_context(FakeTI(dag_id="storm", task_id=f"tune_{index}", run_id="storm_run", try_number=try_number))
    try:
        return op.execute(ctx)
    except TaskDeferred as deferred:
        pending: TaskDeferred | None = deferred
    while pending is not None:
        classpath, kwargs = pending.trigger.serialize()
        module, _, name = classpath.rpartition(".")
        trigger = getattr(import_module(module), name)(**json.loads(json.dumps(kwargs)))
        (event,) = asyncio.run(_events(trigger))
        try:
            return getattr(op, pending.method_name)(ctx, event=event.payload)
        except TaskDeferred as again:  # resubmitted: wait again
            pending = again
    raise AssertionError("unreachable")


def task_instance(bucket: str, key: str, index: int, tries: Counter[str], overlap: bool) -> dict[str, Any]:
    """Airflow's retries around one task instance; an overlapping try runs alongside the first."""
    results: list[dict[str, Any]] = []
    errors: list[str] = []

    def attempts(first_try: int, barrier: threading.Barrier | None) -> None:
        if barrier is not None:
            barrier.wait()
        for try_number in range(first_try, first_try + MAX_TRIES):
            tries["tries"] += 1
            try:
                results.append(one_try(bucket, key, index, try_number))
                return
            except ClovaStudioError as exc:
                tries["failed tries"] += 1
                errors.append(f"try {try_number}: {type(exc).__name__}: {exc}"[:300])
        errors.append("out of retries")

    if overlap:
        barrier = threading.Barrier(2)
        zombie = threading.Thread(target=attempts, args=(1, barrier))
        zombie.start()
        attempts(101, barrier)
        zombie.join()
        tries["overlapping tries"] += 2
    else:
        attempts(1, None)
    assert results, errors
    assert len({r["task_id"] for r in results}) == 1, results  # both tries ended on one training
    return results[0]


def test_tuning_storm_bills_one_training_per_task_instance(
    connections: None, storm_emulator: ClovaEmulator, s3_proxy: S3FaultProxy, moto_bucket: str, moto_server: MotoServer
) -> None:
    key = "storm/train.jsonl"
    moto_server.s3_client().put_object(Bucket=moto_bucket, Key=key, Body=SAMPLE)
    routes = ("tuning.create", "tuning.get", "tuning.list", "tuning.delete")
    storm_emulator.set_faults(storm(FAULT_RATE, routes, seed=11))
    tries: Counter[str] = Counter()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=25) as pool:
        futures = [pool.submit(task_instance, moto_bucket, key, i, tries, i < OVERLAPPING) for i in range(TUNINGS)]
        results = [f.result() for f in futures]
    elapsed = time.monotonic() - started
    stats = storm_emulator.stats()
    injected = Counter(f["route"] for f in stats["faults"]["injected"])
    storm_emulator.clear_faults()

    # every job ended correct
    assert all(r["status"] == "SUCCEEDED" and r["steps"] == r["total_steps"] for r in results)
    # the service holds exactly one training per task instance, and it is the one each reported
    from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook

    held = list(ClovaStudioHook(CLOVA_CONN).list_tuning_tasks())
    per_name = Counter(task.name for task in held)
    assert len(held) == TUNINGS and set(per_name.values()) == {1}, per_name
    assert {task.id for task in held} == {r["task_id"] for r in results}
    created = stats["tuning_tasks_created"]
    requests = sum(sum(codes.values()) for route, codes in stats["requests"].items() if route.startswith("tuning"))
    faults = sum(injected.values())
    print(
        f"\nFAULT STORM tunings: {TUNINGS} task instances ({OVERLAPPING} with two overlapping tries), "
        f"{len(results)}/{TUNINGS} SUCCEEDED, {len(held)} trainings held (1 per task instance), "
        f"0 duplicates held; {len(created) - TUNINGS} duplicate creates converged and deleted; "
        f"{tries['tries']} tries ({tries['failed tries']} failed and retried); CLOVA API: {requests} requests, "
        f"{faults} faults injected ({faults / max(requests, 1):.0%}; {dict(injected)}); "
        f"Object Storage: {sum(s3_proxy.counts.values())} requests, "
        f"{sum(v for k, v in s3_proxy.counts.items() if k != 'forwarded')} faults ({dict(s3_proxy.counts)}); "
        f"{elapsed:.1f} s"
    )
    assert faults >= 0.15 * requests  # the storm really blew
    faults_s3 = sum(v for k, v in s3_proxy.counts.items() if k != "forwarded")
    assert faults_s3 >= 0.15 * sum(s3_proxy.counts.values())


# -- batch: SIGKILL and resume ----------------------------------------------------------------

BATCH_ROWS = 300
WORKER = """
import sys
from airflow_provider_clova.operators.batch import ClovaStudioBatchInferenceOperator
ClovaStudioBatchInferenceOperator(
    task_id="batch", model="HCX-005", input_path=sys.argv[1], output_path=sys.argv[2],
    clova_conn_id=sys.argv[3], max_concurrency=8, max_failed_fraction=None,
).execute({})
"""


def journaled(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_batch_storm_killed_twice_loses_no_row_and_writes_none_twice(
    connections: None, storm_emulator: ClovaEmulator, tmp_path: Path
) -> None:
    source, output = tmp_path / "requests.jsonl", tmp_path / "results.jsonl"
    ids = [f"row-{i:03d}" for i in range(BATCH_ROWS)]
    source.write_text(
        "".join(
            json.dumps(
                {"id": i, "messages": [{"role": "user", "content": f"item {i}"}], "parameters": {"maxTokens": 8}}
            )
            + "\n"
            for i in ids
        )
    )
    storm_emulator.set_faults(storm(FAULT_RATE, ("chat.v3",), seed=5))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    journal = Path(str(output) + ".journal")
    kills = 0
    for stop_at in (BATCH_ROWS // 4, BATCH_ROWS // 2):
        worker = subprocess.Popen(
            [sys.executable, str(script), str(source), str(output), CLOVA_CONN],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while journaled(journal) < stop_at and worker.poll() is None:  # wait on the condition
            assert time.monotonic() < deadline, "the worker made no progress"
            time.sleep(0.01)
        assert worker.poll() is None, "the worker finished before it could be killed"
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        kills += 1
    summary = ClovaStudioBatchInferenceOperator(
        task_id="batch",
        model="HCX-005",
        input_path=str(source),
        output_path=str(output),
        clova_conn_id=CLOVA_CONN,
        max_concurrency=8,
        max_failed_fraction=None,
    ).execute({})
    if summary["failed"]:  # rows that failed even after the client's retries: the next try sends them
        summary = ClovaStudioBatchInferenceOperator(
            task_id="batch", model="HCX-005", input_path=str(source), output_path=str(output),
            clova_conn_id=CLOVA_CONN, max_concurrency=8, max_failed_fraction=None,
        ).execute({})  # fmt: skip
    stats = storm_emulator.stats()
    out = [json.loads(line) for line in output.read_text().splitlines()]
    written = Counter(r["id"] for r in out)
    lost = [i for i in ids if i not in written]
    twice = [i for i, n in written.items() if n > 1]
    answered = stats["requests"]["chat.v3"].get("200", 0)
    injected = sum(1 for f in stats["faults"]["injected"] if f["route"] == "chat.v3")
    print(
        f"\nFAULT STORM batch: {BATCH_ROWS} rows, {kills} SIGKILLs + resume, {len(lost)} lost, {len(twice)} written "
        f"twice, {sum(1 for r in out if r['ok'])} ok; chat requests answered 200: {answered} "
        f"({answered - BATCH_ROWS} re-sent after a kill: the ones in flight); {injected} faults injected"
    )
    assert lost == [] and twice == []
    assert [r["id"] for r in out] == ids
    assert all(r["ok"] for r in out)
