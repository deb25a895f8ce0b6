"""ClovaStudioBatchInferenceOperator with a remote (object store) input or output: resume on
the same worker from its local spool, on another worker from the part objects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_clova.operators.batch import ClovaStudioBatchInferenceOperator
from tests.unit.batch._doubles import FakeClient, Killed, remote, request
from tests.unit.operators.test_batch_operator import connection, use_client

__all__ = ["connection", "use_client"]  # fixtures shared with the operator tests


def test_operator_resumes_a_remote_output_on_the_same_worker(tmp_path: Path, use_client: Any) -> None:
    source = tmp_path / "in.jsonl"
    ids = [f"id{i}" for i in range(25)]
    source.write_text("\n".join(json.dumps(request(i, id=i)) for i in ids) + "\n")
    output = remote("batch.jsonl")

    def make(**kwargs: Any) -> ClovaStudioBatchInferenceOperator:
        return ClovaStudioBatchInferenceOperator(
            task_id="batch",
            model="HCX-005",
            input_path=str(source),
            output_path=output,
            work_dir=str(tmp_path / "spool"),
            max_concurrency=3,
            **kwargs,
        )

    first = FakeClient(kill_after=11, delay=0.001)
    use_client(first)
    with pytest.raises(Killed):
        make().execute({})
    assert not output.exists()
    second = FakeClient()
    use_client(second)
    summary = make().execute({})
    assert not set(second.sent) & set(first.answered), "an id answered before the crash was sent again"
    assert set(second.sent) | set(first.answered) == set(ids)
    assert summary["skipped_as_done"] == len(first.answered) > 0 and summary["sent"] == len(second.sent)
    with output.open("rb") as handle:
        out = [json.loads(line) for line in handle.read().splitlines()]
    assert [r["id"] for r in out] == ids and all(r["ok"] for r in out)
    assert summary["output"] == str(output)


def test_remote_input_is_read_through_its_open(tmp_path: Path, use_client: Any) -> None:
    source = remote("in.jsonl")
    with source.open("wb") as handle:
        handle.write(b"".join(json.dumps(request(f"q{i}")).encode() + b"\n" for i in range(4)))
    client = FakeClient()
    use_client(client)
    summary = ClovaStudioBatchInferenceOperator(
        task_id="batch", model="HCX-005", input_path=source, output_path=str(tmp_path / "out.jsonl")
    ).execute({})
    assert summary["ok"] == 4 and sorted(client.sent) == ["q0", "q1", "q2", "q3"]


def test_operator_resumes_a_remote_output_on_another_worker_from_its_parts(tmp_path: Path, use_client: Any) -> None:
    source = tmp_path / "in.jsonl"
    ids = [f"id{i}" for i in range(25)]
    source.write_text("\n".join(json.dumps(request(i, id=i)) for i in ids) + "\n")
    output = remote("batch.jsonl")

    def make(worker: str) -> ClovaStudioBatchInferenceOperator:
        return ClovaStudioBatchInferenceOperator(
            task_id="batch",
            model="HCX-005",
            input_path=str(source),
            output_path=output,
            work_dir=str(tmp_path / worker),
            max_concurrency=3,
            checkpoint_interval=0.005,
        )

    first = FakeClient(kill_after=15, delay=0.02)
    use_client(first)
    with pytest.raises(Killed):
        make("worker-a").execute({})
    in_parts = set()
    for part in (output.parent / "batch.jsonl.parts").iterdir():
        with part.open("rb") as handle:
            in_parts |= {json.loads(line)["id"] for line in handle.read().splitlines()}
    assert in_parts and in_parts <= set(first.answered)

    second = FakeClient()
    use_client(second)
    summary = make("worker-b").execute({})  # worker A's local spool is out of reach
    assert not set(second.sent) & in_parts
    assert set(second.sent) | in_parts == set(ids) and len(second.sent) == len(set(second.sent))
    assert summary["skipped_as_done"] == len(in_parts)
    with output.open("rb") as handle:
        out = [json.loads(line) for line in handle.read().splitlines()]
    assert [r["id"] for r in out] == ids and all(r["ok"] for r in out)
    assert not (output.parent / "batch.jsonl.parts").exists()
