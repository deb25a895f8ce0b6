"""Chat and batch operators against the real emulator (a subprocess on loopback): v1 and v3
routing, a tuned task after a real (emulated) training, a batch under a tight budget that must
finish with zero 429s as the emulator itself measures them, and resume after a crash."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_clova.client import limiter as limiter_module
from airflow_provider_clova.client.client import AsyncClovaStudioClient
from airflow_provider_clova.client.errors import ClovaStudioConfigError
from airflow_provider_clova.operators.batch import ClovaStudioBatchInferenceOperator
from airflow_provider_clova.operators.chat import ClovaStudioChatCompletionOperator
from airflow_provider_clova.testing.pytest_plugin import ClovaEmulator, MotoServer, start_emulator

pytestmark = pytest.mark.integration

ROOMY = {"HCX-003": {"qpm": 6000, "tpm": 10**7}, "HCX-005": {"qpm": 6000, "tpm": 10**7}}


def chat_count(stats: dict[str, Any], route: str, status: str = "200") -> int:
    return int(stats["requests"].get(route, {}).get(status, 0))


def statuses(stats: dict[str, Any]) -> set[str]:
    return {code for codes in stats["requests"].values() for code in codes}


@pytest.fixture(autouse=True)
def fresh_limiters() -> Iterator[None]:
    # Every emulator here signs in as AK: one limiter key per model, whatever the test.
    limiter_module.clear_shared_limiters()
    yield
    limiter_module.clear_shared_limiters()


@pytest.fixture(scope="module")
def roomy_emulator() -> Iterator[ClovaEmulator]:
    emulator = start_emulator(limits=ROOMY, time_scale=0.01)
    yield emulator
    emulator.stop()


@pytest.fixture
def emulator(roomy_emulator: ClovaEmulator, monkeypatch: pytest.MonkeyPatch) -> ClovaEmulator:
    roomy_emulator.reset()
    for key, value in roomy_emulator.env(limits=ROOMY).items():
        monkeypatch.setenv(key, value)
    return roomy_emulator


def write_requests(path: Path, count: int, **extra: Any) -> list[str]:
    ids = [f"row-{i:03d}" for i in range(count)]
    with path.open("w", encoding="utf-8") as handle:
        for i, row_id in enumerate(ids):
            row = {"id": row_id, "messages": [{"role": "user", "content": f"Summarise item {i} in one line"}]}
            row.update(extra)
            handle.write(json.dumps(row) + "\n")
    return ids


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- chat ------------------------------------------------------------------------------------


def test_chat_v1_model(emulator: ClovaEmulator) -> None:
    result = ClovaStudioChatCompletionOperator(
        task_id="chat", model="HCX-003", prompt="Hello there", parameters={"maxTokens": 20}
    ).execute({})
    assert result["content"] and result["model"] == "HCX-003" and result["tuning_task_id"] is None
    assert result["finish_reason"] in ("end_token", "length")  # v1: end_token on a natural end
    assert result["usage"]["prompt_tokens"] > 0 and 0 < result["usage"]["completion_tokens"] <= 20
    stats = emulator.stats()
    assert chat_count(stats, "chat.v1") == 1 and chat_count(stats, "chat.v3") == 0


def test_chat_v3_model_with_messages(emulator: ClovaEmulator) -> None:
    result = ClovaStudioChatCompletionOperator(
        task_id="chat",
        model="HCX-005",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        parameters={"temperature": 0.2, "max_completion_tokens": 10},
    ).execute({})
    assert result["finish_reason"] in ("stop", "length") and result["usage"]["completion_tokens"] <= 10
    assert result["usage"]["total_tokens"] == result["usage"]["prompt_tokens"] + result["usage"]["completion_tokens"]
    assert chat_count(emulator.stats(), "chat.v3") == 1


def test_chat_parameter_error_sends_nothing(emulator: ClovaEmulator) -> None:
    with pytest.raises(ClovaStudioConfigError, match="topP"):
        ClovaStudioChatCompletionOperator(task_id="chat", model="HCX-005", prompt="Hi", parameters={"topP": 0}).execute(
            {}
        )
    assert emulator.stats()["requests_total"] == 0


@pytest.mark.slow
def test_chat_with_a_task_tuned_on_the_emulator(
    clova_emulator_factory: Callable[..., ClovaEmulator], moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_clova.client.calls import TuningDataset
    from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook

    emulator = clova_emulator_factory(limits=ROOMY, time_scale=0.001, object_storage_endpoint=moto_server.endpoint)
    for key, value in emulator.env(limits=ROOMY).items():
        monkeypatch.setenv(key, value)
    bucket = f"chat-{uuid.uuid4().hex[:10]}"
    s3 = moto_server.s3_client()
    s3.create_bucket(Bucket=bucket)
    rows = [
        {"System_Prompt": "", "C_ID": i, "T_ID": 0, "Text": f"capital of land {i}", "Completion": f"city {i}"}
        for i in range(120)
    ]
    s3.put_object(Bucket=bucket, Key="train.jsonl", Body="\n".join(json.dumps(r) for r in rows).encode())
    hook = ClovaStudioHook()
    dataset = TuningDataset(bucket, "train.jsonl", moto_server.access_key, moto_server.secret_key)
    task = hook.create_tuning_task("HCX-003", dataset, name="chat-it", trainEpochs=1)
    deadline = time.monotonic() + 60
    while not (task := hook.get_tuning_task(task.id)).is_terminal:
        assert time.monotonic() < deadline, f"training did not finish: {task.summary()}"
        time.sleep(0.05)  # polling a remote state with a deadline, not papering over a race
    hook.close()
    assert task.status.value == "SUCCEEDED", task.summary()

    result = ClovaStudioChatCompletionOperator(
        task_id="chat", tuning_task_id=task.id, prompt="capital of land 7"
    ).execute({})
    assert result == {
        "content": "city 7",
        "finish_reason": result["finish_reason"],
        "usage": result["usage"],
        "model": "HCX-003",
        "tuning_task_id": task.id,
        "thinking_content": None,
    }
    stats = emulator.stats()
    assert chat_count(stats, "chat.tuned") == 1 and chat_count(stats, "chat.v1") == 0


# -- batch -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_batch_under_a_tight_budget_finishes_with_zero_429s(
    clova_emulator_factory: Callable[..., ClovaEmulator], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # 4 s: the limiter's arrival-jitter margin is 2.5% of the window (100 ms), wide enough for a
    # loaded CI machine; 50 rows still need 2.5 windows, so pacing is what keeps them in budget.
    window = 4.0
    limits = {"HCX-005": {"qpm": 20, "tpm": 4000}}
    emulator = clova_emulator_factory(limits=limits, rate_window_seconds=window, time_scale=0.01)
    for key, value in emulator.env(limits=limits, rate_window_seconds=window).items():
        monkeypatch.setenv(key, value)
    source = tmp_path / "requests.jsonl"
    ids = write_requests(source, 50)
    # mix cheap and expensive rows so both QPM and TPM bind at times
    lines = source.read_text().splitlines()
    with source.open("w") as handle:
        for i, line in enumerate(lines):
            row = json.loads(line)
            row["parameters"] = {"maxTokens": 400 if i % 2 else 40}
            handle.write(json.dumps(row) + "\n")

    started = time.monotonic()
    summary = ClovaStudioBatchInferenceOperator(
        task_id="batch",
        model="HCX-005",
        input_path=str(source),
        output_path=f"file://{tmp_path / 'out' / 'results.jsonl'}",
        max_concurrency=8,
        progress_interval=1.0,
    ).execute({})
    elapsed = time.monotonic() - started

    assert summary["ok"] == 50 and summary["failed"] == 0 and summary["sent"] == 50
    out = read_jsonl(tmp_path / "out" / "results.jsonl")
    assert [r["id"] for r in out] == ids and all(r["ok"] and r["content"] for r in out)
    stats = emulator.stats()
    assert chat_count(stats, "chat.v3") == 50
    assert statuses(stats) == {"200"}, f"the emulator answered something else: {stats['requests']}"
    (win,) = [w for w in stats["windows"] if w["model"] == "HCX-005"]
    assert win["refused"] == 0 and win["served"] == 50
    assert win["max_requests_in_window"] <= 20 and win["max_tokens_in_window"] <= 4000
    # paced, not sandbagged: 50 rows need at least ~2.5 windows by QPM; allow generous slack
    assert elapsed < 12 * window


def test_batch_resume_after_a_crash_sends_each_row_once(
    emulator: ClovaEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = tmp_path / "requests.jsonl"
    ids = write_requests(source, 30, parameters={"maxTokens": 16})
    output = tmp_path / "results.jsonl"
    real = AsyncClovaStudioClient.chat_completion
    calls = {"n": 0}

    class Killed(Exception):
        pass

    async def dies_after_12(self: AsyncClovaStudioClient, *args: Any, **kwargs: Any) -> Any:
        if calls["n"] >= 12:
            raise Killed("worker lost")
        calls["n"] += 1
        return await real(self, *args, **kwargs)

    def make() -> ClovaStudioBatchInferenceOperator:
        return ClovaStudioBatchInferenceOperator(
            task_id="batch", model="HCX-005", input_path=str(source), output_path=str(output), max_concurrency=1
        )

    monkeypatch.setattr(AsyncClovaStudioClient, "chat_completion", dies_after_12)
    with pytest.raises(Killed):
        make().execute({})
    assert chat_count(emulator.stats(), "chat.v3") == 12 and not output.exists()

    monkeypatch.setattr(AsyncClovaStudioClient, "chat_completion", real)
    summary = make().execute({})
    assert summary["skipped_as_done"] == 12 and summary["sent"] == 18 and summary["ok"] == 30
    assert chat_count(emulator.stats(), "chat.v3") == 30  # no row was billed twice
    out = read_jsonl(output)
    assert [r["id"] for r in out] == ids and [r["line"] for r in out] == list(range(1, 31))


def test_batch_row_errors_from_the_service_are_recorded(emulator: ClovaEmulator, tmp_path: Path) -> None:
    source = tmp_path / "requests.jsonl"
    good = {"id": "ok", "messages": [{"role": "user", "content": "fine"}], "parameters": {"maxTokens": 8}}
    # HCX-003 takes 7,600 input tokens at most: the service refuses this one with a 400
    huge = {"id": "huge", "messages": [{"role": "user", "content": "word " * 8000}], "parameters": {"maxTokens": 8}}
    source.write_text(json.dumps(good) + "\n" + json.dumps(huge) + "\n{broken\n")
    summary = ClovaStudioBatchInferenceOperator(
        task_id="batch",
        model="HCX-003",
        input_path=str(source),
        output_path=str(tmp_path / "out.jsonl"),
        max_failed_fraction=None,
    ).execute({})
    out = {r["line"]: r for r in read_jsonl(tmp_path / "out.jsonl")}
    assert out[1]["ok"]
    assert out[2]["ok"] is False and out[2]["error"]["type"] == "bad_request" and out[2]["error"]["code"]
    assert out[3]["error"]["type"] == "invalid_json"
    assert summary["ok"] == 1 and summary["failed"] == 2 and summary["input_errors"] == 1
