"""Batch journals and stores: local journal + atomic output, remote part objects (on fsspec's
in-memory file system through UPath, the base of ObjectStoragePath), input parsing."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from upath import UPath

from airflow_provider_clova.operators._batch_input import build_index, iter_lines, parse_line
from airflow_provider_clova.operators._batch_store import (
    LocalResultStore,
    RemoteResultStore,
    is_local,
    store_for,
)
from airflow_provider_clova.operators.batch import ClovaStudioBatchInferenceOperator
from tests.unit.operators.test_batch_operator import FakeClient, Killed, connection, request, use_client

__all__ = ["connection", "use_client"]  # fixtures shared with the operator tests


def no_check(messages: list[dict[str, Any]], parameters: dict[str, Any]) -> tuple[int, int]:
    return 1, 0


def index_of(path: Path) -> Any:
    return build_index(iter_lines(str(path)), lambda n, raw: parse_line(n, raw, defaults={}, validate=no_check))


def ok(row_id: Any, line: int) -> dict[str, Any]:
    return {"id": row_id, "line": line, "ok": True, "content": f"c{row_id}", "finish_reason": "stop", "usage": {}}


def remote(name: str = "out.jsonl") -> UPath:
    return UPath(f"memory://bucket-{uuid.uuid4().hex[:8]}/results/{name}")


@pytest.fixture
def three_rows(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(request(f"q{i}", id=f"r{i}")) for i in range(3)) + "\n")
    return path


def test_store_kinds() -> None:
    assert is_local("/tmp/x.jsonl") and is_local("file:///tmp/x.jsonl") and is_local(Path("x"))
    assert not is_local("s3://bucket/x.jsonl") and not is_local(remote())
    assert isinstance(store_for("/tmp/x.jsonl"), LocalResultStore)
    assert isinstance(store_for("file:///tmp/x.jsonl"), LocalResultStore)
    assert isinstance(store_for(remote()), RemoteResultStore)


def test_input_index_keeps_lines_ids_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + json.dumps(request("a")).encode() + b"\n\n"
        b"\xff\xfe not utf-8\n" + json.dumps(request("b", id=1)).encode() + b"\n"
    )
    index = index_of(path)
    assert [(line, row_id) for line, _, row_id in index.entries] == [(1, 1), (3, None), (4, 1)]
    assert index.errors[3].error.type == "invalid_json" and "UTF-8" in index.errors[3].error.message
    assert "already used on line 1" in index.errors[4].error.message  # default id 1 == explicit id 1


def test_a_success_is_never_replaced_by_a_failure(tmp_path: Path, three_rows: Path) -> None:
    store = LocalResultStore(str(tmp_path / "out.jsonl"))
    store.open(resume=True)
    store.append(ok("r0", 1))
    store.append({"id": "r0", "line": 1, "ok": False, "error": {"type": "server_error", "retryable": True}})
    store.append({"id": "r1", "line": 2, "ok": False, "error": {"type": "server_error", "retryable": True}})
    store.append(ok("r1", 2))
    store.append({"id": "r2", "line": 3, "ok": False, "error": {"type": "bad_request", "retryable": False}})
    assert store.index.answered('"r0"') and store.index.answered('"r1"') and store.index.answered('"r2"')
    store.finalize(index_of(three_rows))
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["id"], r["ok"]) for r in out] == [("r0", True), ("r1", True), ("r2", False)]


def test_remote_parts_survive_a_worker_and_local_leftovers_are_published(tmp_path: Path, three_rows: Path) -> None:
    output = remote()
    first = RemoteResultStore(output, str(tmp_path / "worker-a"))
    first.open(resume=True)
    first.append(ok("r0", 1))
    first.checkpoint()  # r0 is now a part object
    first.append(ok("r1", 2))  # only in worker A's local spool
    first.close()  # the worker dies: no finalize
    assert [p.name for p in (output.parent / "out.jsonl.parts").iterdir()]

    other = RemoteResultStore(output, str(tmp_path / "worker-b"))
    seen = other.open(resume=True)
    assert seen.answered('"r0"') and not seen.has('"r1"')
    other.append(ok("r1", 2))
    other.checkpoint()
    other.close()

    same = RemoteResultStore(output, str(tmp_path / "worker-a"))
    seen = same.open(resume=True)
    assert seen.answered('"r0"') and seen.answered('"r1"')  # r1 both from A's leftover and B's part
    same.append(ok("r2", 3))
    same.finalize(index_of(three_rows))
    with output.open("rb") as handle:
        out = [json.loads(line) for line in handle.read().splitlines()]
    assert [r["id"] for r in out] == ["r0", "r1", "r2"]
    assert not (output.parent / "out.jsonl.parts").exists()
    assert not Path(same.spool).exists()


def test_remote_resume_false_clears_parts_and_output(tmp_path: Path, three_rows: Path) -> None:
    output = remote()
    store = RemoteResultStore(output, str(tmp_path))
    store.open(resume=True)
    store.append(ok("r0", 1))
    store.checkpoint()
    store.close()
    fresh = RemoteResultStore(output, str(tmp_path))
    assert not fresh.open(resume=False).has('"r0"')
    fresh.close()


def test_operator_resumes_a_remote_output_on_the_same_worker(tmp_path: Path, three_rows: Path, use_client: Any) -> None:
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
