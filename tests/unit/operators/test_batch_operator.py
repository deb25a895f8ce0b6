"""ClovaStudioBatchInferenceOperator with a fake async client: output shape and order, resume
after a crash, per-row errors and the failure threshold, bad input lines, pool share."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_clova.client.client import ClovaStudioClient
from airflow_provider_clova.client.errors import (
    ClovaStudioAuthError,
    ClovaStudioBadRequestError,
    ClovaStudioConfigError,
    ClovaStudioServerError,
)
from airflow_provider_clova.client.models import TuningStatus, TuningTask
from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook
from airflow_provider_clova.operators.batch import ClovaStudioBatchFailedError, ClovaStudioBatchInferenceOperator
from airflow_provider_clova.pools import pool_name
from tests.unit.batch._doubles import FakeClient, Killed, read_output, request, write_input

API_KEY = "nv-batch-op-api-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def connection(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"auth_type": "bearer", "pool_slots": 4}
    body = {"conn_type": "clova_studio", "host": "https://clova.batchtest.invalid", "password": API_KEY, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_CLOVA_STUDIO_DEFAULT", json.dumps(body))


@pytest.fixture
def use_client(monkeypatch: pytest.MonkeyPatch) -> Callable[[FakeClient], list[float]]:
    """Make the hook hand out ``client``; returns the rate shares of the hooks asked for it."""
    shares: list[float] = []

    def install(client: FakeClient) -> list[float]:
        async def aget_async_conn(self: ClovaStudioHook) -> FakeClient:
            shares.append(self.rate_share)
            return client

        monkeypatch.setattr(ClovaStudioHook, "aget_async_conn", aget_async_conn)
        return shares

    return install


def operator(tmp_path: Path, **kwargs: Any) -> ClovaStudioBatchInferenceOperator:
    kwargs.setdefault("task_id", "batch")
    kwargs.setdefault("model", "HCX-005")
    kwargs.setdefault("input_path", str(tmp_path / "in.jsonl"))
    kwargs.setdefault("output_path", str(tmp_path / "out" / "results.jsonl"))
    kwargs.setdefault("max_concurrency", 4)
    return ClovaStudioBatchInferenceOperator(**kwargs)


def test_template_fields_are_a_tuple() -> None:
    fields = ClovaStudioBatchInferenceOperator.template_fields
    assert isinstance(fields, tuple)
    assert {"input_path", "output_path", "model", "tuning_task_id", "parameters", "clova_conn_id"} <= set(fields)


def test_every_line_gets_one_result_in_input_order(tmp_path: Path, use_client: Any) -> None:
    client = FakeClient(delay=0.001)
    use_client(client)
    rows = [request(f"q{i}", id=f"r{i}") for i in range(30)]
    rows[3] = request("q3")  # no id: defaults to its line number (4)
    write_input(tmp_path / "in.jsonl", rows)
    summary = operator(tmp_path, parameters={"maxTokens": 20}).execute({})
    out = read_output(tmp_path / "out" / "results.jsonl")
    assert [r["line"] for r in out] == list(range(1, 31))
    assert out[3]["id"] == 4 and out[0]["id"] == "r0"
    assert all(r["ok"] and r["content"] == f"echo q{r['line'] - 1}" for r in out)
    assert out[0]["usage"] == {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}
    assert out[0]["finish_reason"] == "stop"
    assert summary["rows"] == 30 and summary["ok"] == 30 and summary["failed"] == 0
    assert summary["skipped_as_done"] == 0 and summary["sent"] == 30 and summary["missing"] == 0
    assert summary["tokens"]["prompt_tokens"] == sum(len(f"q{i}") for i in range(30))
    assert summary["tokens"]["charged_tokens"] == summary["tokens"]["prompt_tokens"] + 30 * 20
    assert summary["output"] == str(tmp_path / "out" / "results.jsonl")
    assert not (tmp_path / "out" / "results.jsonl.journal").exists()
    assert all(call["maxTokens"] == 20 and call["model"] == "HCX-005" for call in client.calls)
    assert 1 < client.max_in_flight <= 4


def test_row_parameters_override_the_defaults(tmp_path: Path, use_client: Any) -> None:
    client = FakeClient()
    use_client(client)
    write_input(tmp_path / "in.jsonl", [request("a"), request("b", parameters={"temperature": 0.9})])
    operator(tmp_path, parameters={"temperature": 0.1, "maxTokens": 8}, max_concurrency=1).execute({})
    assert client.calls[0] == {"model": "HCX-005", "task_id": None, "temperature": 0.1, "maxTokens": 8}
    assert client.calls[1]["temperature"] == 0.9


def test_resume_after_a_crash_answers_every_id_exactly_once(tmp_path: Path, use_client: Any) -> None:
    ids = [f"id-{i:03d}" for i in range(40)]
    write_input(tmp_path / "in.jsonl", [request(i, id=i) for i in ids])
    first = FakeClient(kill_after=17, delay=0.001)
    use_client(first)
    with pytest.raises(Killed):
        operator(tmp_path).execute({})
    out_path = tmp_path / "out" / "results.jsonl"
    journal = out_path.with_name(out_path.name + ".journal")
    assert not out_path.exists() and journal.exists()
    answered_first = {json.loads(line)["id"] for line in journal.read_text().splitlines()}
    assert answered_first == set(first.answered) and 0 < len(answered_first) <= 17
    # a kill mid-write leaves a torn last line; the retry must cope with it
    with journal.open("a") as handle:
        handle.write('{"id": "id-039", "line": 40, "ok": tr')

    second = FakeClient(delay=0.001)
    use_client(second)
    summary = operator(tmp_path).execute({})
    assert not set(second.sent) & answered_first, "an id answered before the crash was sent again"
    assert set(second.sent) | answered_first == set(ids)
    assert len(second.sent) == len(set(second.sent))
    out = read_output(out_path)
    assert [r["id"] for r in out] == ids
    assert [r["line"] for r in out] == list(range(1, 41))
    assert all(r["ok"] and r["content"] == f"echo {r['id']}" for r in out)
    assert summary["skipped_as_done"] == len(answered_first)
    assert summary["sent"] == 40 - len(answered_first)
    assert not journal.exists()


def test_a_rerun_after_success_sends_nothing(tmp_path: Path, use_client: Any) -> None:
    write_input(tmp_path / "in.jsonl", [request(f"q{i}") for i in range(5)])
    use_client(FakeClient())
    operator(tmp_path).execute({})
    again = FakeClient()
    use_client(again)
    summary = operator(tmp_path).execute({})
    assert again.sent == [] and summary["skipped_as_done"] == 5 and summary["ok"] == 5
    assert len(read_output(tmp_path / "out" / "results.jsonl")) == 5


def test_resume_false_starts_over(tmp_path: Path, use_client: Any) -> None:
    write_input(tmp_path / "in.jsonl", [request(f"q{i}") for i in range(5)])
    use_client(FakeClient())
    operator(tmp_path).execute({})
    again = FakeClient()
    use_client(again)
    summary = operator(tmp_path, resume=False).execute({})
    assert len(again.sent) == 5 and summary["skipped_as_done"] == 0


def test_bad_input_lines_are_row_errors_naming_the_line(tmp_path: Path, use_client: Any) -> None:
    client = FakeClient()
    use_client(client)
    write_input(
        tmp_path / "in.jsonl",
        [
            request("good-1", id="a"),
            "{not json",
            json.dumps({"id": "b"}),  # no messages
            request("bad-param", id="c", parameters={"temperature": 5}),
            request("dup", id="a"),
            "[1, 2]",
            request("unknown-field", id="d", prompt="x"),
            request("bad-role", id="e") | {"messages": [{"role": "robot", "content": "x"}]},
            request("too-long", id="f", parameters={"maxTokens": 999999}),
            "",
            request("good-2", id="g"),
            # JSON has no NaN/Infinity, but Python's parser takes them: each is that row's error
            '{"id": "nan", "messages": [{"role": "user", "content": "x"}], "parameters": {"temperature": NaN}}',
            '{"id": "inf", "messages": [{"role": "user", "content": "x"}], "parameters": {"topP": Infinity}}',
            '{"id": "deep", "messages": [{"role": "user", "content": "x", "extra": [-Infinity]}]}',
        ],
    )
    summary = operator(tmp_path, max_failed_fraction=None).execute({})
    assert sorted(client.sent) == ["good-1", "good-2"]
    out = read_output(tmp_path / "out" / "results.jsonl")
    by_line = {r["line"]: r for r in out}
    assert sorted(by_line) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14]  # the blank line 10 is not a request
    assert by_line[1]["ok"] and by_line[11]["ok"]
    assert by_line[2]["id"] is None and by_line[2]["error"]["type"] == "invalid_json"
    assert "line 2" in by_line[2]["error"]["message"]
    assert by_line[3]["error"]["type"] == "invalid_request" and "messages" in by_line[3]["error"]["message"]
    assert by_line[4]["error"]["type"] == "invalid_parameter" and "temperature" in by_line[4]["error"]["message"]
    assert "line 4" in by_line[4]["error"]["message"]
    assert by_line[5]["error"]["type"] == "invalid_request" and "line 1" in by_line[5]["error"]["message"]
    assert by_line[6]["error"]["type"] == "invalid_request"
    assert "prompt" in by_line[7]["error"]["message"]
    assert "role" in by_line[8]["error"]["message"]
    assert "maxTokens" in by_line[9]["error"]["message"]
    for line, field in ((12, "temperature"), (13, "topP"), (14, "messages[0].extra[0]")):
        error = by_line[line]["error"]
        assert error["type"] == "invalid_parameter" and field in error["message"] and "Fix:" in error["message"]
    assert all(r["error"]["retryable"] is False for r in out if not r["ok"])
    assert summary["input_errors"] == 11 and summary["failed"] == 11 and summary["ok"] == 2


def test_bad_input_past_the_threshold_fails_before_sending(tmp_path: Path, use_client: Any) -> None:
    client = FakeClient()
    use_client(client)
    write_input(tmp_path / "in.jsonl", ["{oops", request("fine"), request("fine too")])
    with pytest.raises(ClovaStudioBatchFailedError, match=r"nothing was sent[\s\S]*line 1"):
        operator(tmp_path, max_failed_rows=0, max_failed_fraction=None).execute({})
    assert client.sent == []


def test_row_failures_under_the_threshold_pass_and_are_recorded(tmp_path: Path, use_client: Any) -> None:
    def fail(text: str) -> BaseException | None:
        if text in ("q3", "q7"):
            return ClovaStudioBadRequestError("context too long", http_status=400, code="40003")
        return None

    use_client(FakeClient(fail=fail))
    write_input(tmp_path / "in.jsonl", [request(f"q{i}") for i in range(10)])
    summary = operator(tmp_path, max_failed_rows=2, max_failed_fraction=None).execute({})
    assert summary["failed"] == 2 and summary["ok"] == 8
    out = read_output(tmp_path / "out" / "results.jsonl")
    errors = {r["id"]: r["error"] for r in out if not r["ok"]}
    assert set(errors) == {4, 8}
    assert errors[4]["type"] == "bad_request" and errors[4]["code"] == "40003"
    assert errors[4]["retryable"] is False and "context too long" in errors[4]["message"]


def test_row_failures_past_the_threshold_fail_the_task_with_the_output_written(tmp_path: Path, use_client: Any) -> None:
    def fail(text: str) -> BaseException | None:
        return ClovaStudioBadRequestError("nope", http_status=400, code="40001") if text in ("q5", "q19") else None

    use_client(FakeClient(fail=fail))
    # the second failure (past 5% of 20) is the last row: the run completes, the task fails
    write_input(tmp_path / "in.jsonl", [request(f"q{i}") for i in range(20)])
    with pytest.raises(ClovaStudioBatchFailedError, match="2 of 20 rows failed") as caught:
        operator(tmp_path, max_failed_fraction=0.05, max_concurrency=1).execute({})
    assert caught.value.summary["failed"] == 2
    assert len(read_output(tmp_path / "out" / "results.jsonl")) == 20


def test_past_the_threshold_the_run_stops_early_and_keeps_the_journal(tmp_path: Path, use_client: Any) -> None:
    def fail(text: str) -> BaseException | None:
        return ClovaStudioBadRequestError("nope", http_status=400, code="40001") if text == "q2" else None

    client = FakeClient(fail=fail)
    use_client(client)
    write_input(tmp_path / "in.jsonl", [request(f"q{i}") for i in range(50)])
    with pytest.raises(ClovaStudioBatchFailedError, match="past max_failed_rows=0") as caught:
        operator(tmp_path, max_failed_rows=0, max_failed_fraction=None, max_concurrency=1).execute({})
    assert len(client.sent) == 3  # q0, q1, q2: nothing after the failure that decided the task
    assert caught.value.summary["missing"] == 47
    assert not (tmp_path / "out" / "results.jsonl").exists()
    assert (tmp_path / "out" / "results.jsonl.journal").exists()


def test_retryable_failures_are_sent_again_by_the_next_try(tmp_path: Path, use_client: Any) -> None:
    def flaky(text: str) -> BaseException | None:
        return ClovaStudioServerError("boom", http_status=500, code="50000") if text in ("q1", "q4") else None

    use_client(FakeClient(fail=flaky))
    write_input(tmp_path / "in.jsonl", [request(f"q{i}") for i in range(6)])
    summary = operator(tmp_path, max_failed_rows=None, max_failed_fraction=None).execute({})
    assert summary["failed"] == 2
    first = read_output(tmp_path / "out" / "results.jsonl")
    assert [r["error"]["retryable"] for r in first if not r["ok"]] == [True, True]

    healthy = FakeClient()
    use_client(healthy)
    summary = operator(tmp_path, max_failed_rows=0, max_failed_fraction=None).execute({})
    assert sorted(healthy.sent) == ["q1", "q4"]
    out = read_output(tmp_path / "out" / "results.jsonl")
    assert len(out) == 6 and all(r["ok"] for r in out)
    assert summary["skipped_as_done"] == 4


def test_an_auth_error_stops_the_batch_at_once(tmp_path: Path, use_client: Any) -> None:
    client = FakeClient(fail=lambda text: ClovaStudioAuthError("bad key", http_status=401, code="40104"))
    use_client(client)
    write_input(tmp_path / "in.jsonl", [request(f"q{i}") for i in range(30)])
    with pytest.raises(ClovaStudioAuthError):
        operator(tmp_path, max_concurrency=2, max_failed_fraction=None).execute({})
    assert len(client.sent) <= 2


def test_a_bad_default_parameter_fails_the_task_before_anything(tmp_path: Path, use_client: Any) -> None:
    client = FakeClient()
    use_client(client)
    write_input(tmp_path / "in.jsonl", [request("q")])
    with pytest.raises(ClovaStudioConfigError, match="topP"):
        operator(tmp_path, parameters={"topP": 3}).execute({})
    assert client.sent == []


def test_progress_lines_report_rate_against_budget_and_eta(
    tmp_path: Path, use_client: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    use_client(FakeClient(delay=0.02))
    write_input(tmp_path / "in.jsonl", [request(f"q{i}") for i in range(12)])
    with caplog.at_level(logging.INFO):
        operator(tmp_path, progress_interval=0.03, max_concurrency=2).execute({})
    # Airflow 3 task loggers print through structlog, Airflow 2 through logging: read both.
    text = "\n".join(r.getMessage() for r in caplog.records) + "\n" + capsys.readouterr().out
    lines = [line for line in text.splitlines() if "req/min of" in line]
    assert len(lines) >= 2
    assert "12/12 sent rows answered" in lines[-1]
    assert "of 60 QPM" in lines[-1] and "of 60000 TPM" in lines[-1] and "ETA" in lines[-1]
    assert API_KEY not in text


def test_tuned_task_is_looked_up_once_and_every_row_goes_to_it(
    tmp_path: Path, use_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked_up: list[str] = []

    def get_tuning_task(self: ClovaStudioClient, tuning_task_id: str) -> TuningTask:
        looked_up.append(tuning_task_id)
        return TuningTask.from_api({"id": tuning_task_id, "model": "HCX-003", "status": TuningStatus.SUCCEEDED.value})

    # The hook resolves the base model through its client (ClovaStudioClient.base_model).
    monkeypatch.setattr(ClovaStudioClient, "get_tuning_task", get_tuning_task)
    client = FakeClient()
    use_client(client)
    write_input(tmp_path / "in.jsonl", [request(f"q{i}", parameters={"repeatPenalty": 3}) for i in range(5)])
    operator(tmp_path, model=None, tuning_task_id="tunedab1").execute({})
    assert looked_up == ["tunedab1"]
    assert all(call["model"] == "HCX-003" and call["task_id"] == "tunedab1" for call in client.calls)


def test_in_the_models_pool_the_client_paces_at_the_pool_share(tmp_path: Path, use_client: Any) -> None:
    shares = use_client(FakeClient())
    write_input(tmp_path / "in.jsonl", [request("q")])
    operator(tmp_path, pool=pool_name("HCX-005", "test"), pool_slots=3).execute({})
    operator(tmp_path, resume=False, pool="default_pool", pool_slots=3).execute({})
    assert shares == [0.75, 1.0]


def test_a_request_that_can_never_fit_the_share_is_a_row_error(
    tmp_path: Path, use_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = FakeClient()
    use_client(client)
    big = "x" * 9000  # ~9,000 input tokens + 4,000 maxTokens > 60,000 TPM x 1/8 (1 slot of 8)
    write_input(tmp_path / "in.jsonl", [request("small"), request(big, parameters={"maxTokens": 4000})])
    conn = json.loads(os.environ["AIRFLOW_CONN_CLOVA_STUDIO_DEFAULT"])
    conn["extra"]["pool_slots"] = 8
    monkeypatch.setenv("AIRFLOW_CONN_CLOVA_STUDIO_DEFAULT", json.dumps(conn))
    summary = operator(tmp_path, pool=pool_name("HCX-005", "test"), max_failed_fraction=None).execute({})
    out = read_output(tmp_path / "out" / "results.jsonl")
    assert out[1]["error"]["type"] == "budget" and "maxTokens" in out[1]["error"]["message"]
    assert client.sent == ["small"] and summary["failed"] == 1


def test_a_model_described_in_extra_models_is_checked_as_the_client_sends_it(
    tmp_path: Path, use_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model newer than the provider, described in the connection's extra.models, runs: the
    operator's checks read the same catalog as the client, and its limits are the ones given."""
    extra = {
        "auth_type": "bearer",
        "models": {"HCX-NEXT": {"api": "v3", "max_output_tokens": 64}},
        "limits": {"HCX-NEXT": {"qpm": 30, "tpm": 6000}},
    }
    body = {"conn_type": "clova_studio", "host": "https://clova.batchtest.invalid", "password": API_KEY, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_CLOVA_STUDIO_DEFAULT", json.dumps(body))
    client = FakeClient()
    use_client(client)
    write_input(tmp_path / "in.jsonl", [request("q0", id="a"), request("q1", id="b", parameters={"maxTokens": 65})])
    summary = operator(tmp_path, model="HCX-NEXT", parameters={"maxTokens": 32}, max_failed_fraction=0.6).execute({})
    out = read_output(tmp_path / "out" / "results.jsonl")
    assert out[0]["ok"] and client.calls[0]["model"] == "HCX-NEXT"
    # the override's max_output_tokens bounds a row's own maxTokens, as the client would
    assert not out[1]["ok"] and "maxTokens" in out[1]["error"]["message"] and client.sent == ["q0"]
    assert (summary["ok"], summary["failed"]) == (1, 1)
    # a default above the override's bound fails the task before anything is sent
    with pytest.raises(ClovaStudioConfigError, match="maxTokens"):
        operator(tmp_path, model="HCX-NEXT", parameters={"maxTokens": 100}, resume=False).execute({})
