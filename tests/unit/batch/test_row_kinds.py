"""The batch engine with a row kind of its own (not chat): the seam an embedding or evaluation
operator plugs into. Its fields, its call and its output go through the same resumable run;
errors are classified by the error classes' own ``kind`` / ``retryable`` / ``fatal_for_batch``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from airflow_provider_clova.batch.input import Row, RowInputError
from airflow_provider_clova.batch.job import run_file
from airflow_provider_clova.batch.run import RowOutput, RunSettings, Threshold
from airflow_provider_clova.batch.store import LocalResultStore
from airflow_provider_clova.client import errors
from tests.unit.batch._doubles import read_output, write_input


class QuotaGone(errors.ClovaStudioError):
    """An error class the engine has never heard of: its attributes alone decide."""

    kind = "quota_gone"
    retryable = True


@dataclass
class Texts:
    """A row kind like an embedding's: ``{"id", "text"}`` -> ``{"length"}``."""

    fail: dict[str, BaseException] = field(default_factory=dict)
    sent: list[str] = field(default_factory=list)

    fields: ClassVar[tuple[str, ...]] = ("text",)

    def parse(self, item: dict[str, Any]) -> str:
        text = item.get("text")
        if not isinstance(text, str) or not text:
            raise RowInputError("invalid_request", "text must be a non-empty string")
        return text

    async def call(self, client: Any, row: Row) -> RowOutput:
        assert client == "the async client"
        self.sent.append(row.payload)
        error = self.fail.get(row.payload)
        if error is not None:
            raise error
        return RowOutput({"length": len(row.payload)}, prompt_tokens=len(row.payload), charged_tokens=len(row.payload))


class Client:
    async def __aenter__(self) -> str:
        return "the async client"

    async def __aexit__(self, *exc: object) -> None:
        return None


async def connect() -> Any:
    return Client()


def settings(**threshold: Any) -> RunSettings:
    return RunSettings(
        concurrency=2,
        threshold=Threshold(**threshold),
        progress_interval=60.0,
        checkpoint_interval=60.0,
        qpm=60,
        tpm=10_000,
    )


def run(tmp_path: Path, rows: Texts, *, resume: bool = True, **threshold: Any) -> dict[str, Any]:
    return run_file(
        rows,
        str(tmp_path / "in.jsonl"),
        LocalResultStore(str(tmp_path / "out.jsonl")),
        settings(**threshold),
        connect=connect,
        resume=resume,
        target="a test kind",
        log=lambda *args: None,
    )


def test_a_row_kind_brings_its_own_fields_call_and_output(tmp_path: Path) -> None:
    write_input(tmp_path / "in.jsonl", [{"id": "a", "text": "abc"}, {"text": "hello"}, {"id": "c", "messages": []}])
    rows = Texts()
    summary = run(tmp_path, rows, max_rows=1)
    out = read_output(tmp_path / "out.jsonl")
    assert out[0] == {"id": "a", "line": 1, "ok": True, "length": 3}
    assert out[1] == {"id": 2, "line": 2, "ok": True, "length": 5}
    assert out[2]["error"]["type"] == "invalid_request"
    assert "unknown field(s) messages; expected id, text" in out[2]["error"]["message"]
    assert sorted(rows.sent) == ["abc", "hello"]
    assert summary["tokens"]["prompt_tokens"] == 8 and summary["tokens"]["charged_tokens"] == 8


def test_errors_are_recorded_by_their_class_attributes_and_retryable_ones_resent(tmp_path: Path) -> None:
    write_input(tmp_path / "in.jsonl", [{"id": t, "text": t} for t in ("bad", "busy", "odd", "fine")])
    first = Texts(
        fail={
            "bad": errors.ClovaStudioBadRequestError("too long", http_status=400, code="40003"),
            "busy": errors.ClovaStudioServerError("down", http_status=503),
            "odd": QuotaGone("the quota is gone"),
        }
    )
    assert run(tmp_path, first, max_rows=3)["failed"] == 3
    by_id = {r["id"]: r for r in read_output(tmp_path / "out.jsonl")}
    assert by_id["bad"]["error"] | {"message": ""} == {
        "type": "bad_request",
        "code": "40003",
        "message": "",
        "retryable": False,
    }
    assert (by_id["busy"]["error"]["type"], by_id["busy"]["error"]["retryable"]) == ("server_error", True)
    assert (by_id["odd"]["error"]["type"], by_id["odd"]["error"]["retryable"]) == ("quota_gone", True)

    second = Texts()
    summary = run(tmp_path, second, max_rows=3)
    assert sorted(second.sent) == ["busy", "odd"]  # the 400 is kept, the retryable ones go again
    assert summary["failed"] == 1 and summary["ok"] == 3


def test_an_error_fatal_for_a_batch_stops_it_and_is_raised(tmp_path: Path) -> None:
    write_input(tmp_path / "in.jsonl", [{"id": i, "text": f"t{i}"} for i in range(20)])
    rows = Texts(fail={"t0": errors.ClovaStudioAuthError("no key", http_status=401, code="40100")})
    with pytest.raises(errors.ClovaStudioAuthError):
        run(tmp_path, rows)
    assert len(rows.sent) < 20
    journal = (tmp_path / "out.jsonl.journal").read_text().splitlines()
    assert all(json.loads(line)["ok"] for line in journal)  # the fatal error is no row's failure


@pytest.mark.parametrize(
    ("error", "kind", "fatal"),
    [
        (errors.ClovaStudioRateLimitError("x", http_status=429), "rate_limited", False),
        (errors.ClovaStudioTimeoutError("x"), "timeout", False),
        (errors.ClovaStudioTransportError("x", request_sent=False), "transport", False),
        (errors.ClovaStudioResponseError("x"), "bad_response", False),
        (errors.ClovaStudioUnknownOutcomeError("x"), "api_error", False),
        (errors.ClovaStudioNotFoundError("x", http_status=404), "not_found", True),
        (errors.ClovaStudioBudgetError("x"), "budget", False),
        (errors.ClovaStudioConfigError("x"), "invalid_parameter", False),
        (errors.ClovaStudioDatasetError("x"), "error", False),
    ],
)
def test_each_error_class_names_its_row_error_type(error: errors.ClovaStudioError, kind: str, fatal: bool) -> None:
    # The documented output format (docs/chat-and-batch.md: error.type) rests on these.
    assert (error.kind, error.fatal_for_batch) == (kind, fatal)
