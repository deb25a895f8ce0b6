"""Batch journals and stores: local journal + atomic output, remote part objects (on fsspec's
in-memory file system through UPath, the base of ObjectStoragePath), input indexing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_clova.batch.chat import ChatRows
from airflow_provider_clova.batch.input import build_index, iter_lines
from airflow_provider_clova.batch.store import (
    LocalResultStore,
    RemoteResultStore,
    is_local,
    store_for,
)
from tests.unit.batch._doubles import remote, request


def no_check(messages: list[dict[str, Any]], parameters: dict[str, Any]) -> int:
    return 0


def index_of(path: Path) -> Any:
    return build_index(iter_lines(str(path)), ChatRows("HCX-005", None, {}, no_check))


def ok(row_id: Any, line: int) -> dict[str, Any]:
    return {"id": row_id, "line": line, "ok": True, "content": f"c{row_id}", "finish_reason": "stop", "usage": {}}


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
