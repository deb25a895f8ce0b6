"""ClovaStudioEmbeddingOperator with a fake async client: field names, carried fields, content
hashes, reuse of a previous output (and of the output itself) only for unchanged texts, a stale
journal that does not leak old vectors, the Parquet copy and its missing-pyarrow error, the
arguments and template fields, and what a DAG file pays to import it."""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_clova.batch.embedding import EmbeddingRows
from airflow_provider_clova.batch.input import build_index, iter_lines
from airflow_provider_clova.client.embeddings import content_hash
from airflow_provider_clova.client.errors import ClovaStudioConfigError
from airflow_provider_clova.client.models import EmbeddingResult
from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook
from airflow_provider_clova.operators.embedding import ClovaStudioEmbeddingOperator
from tests.unit.batch._doubles import write_input

API_KEY = "nv-embedding-op-api-key-0123456789"


class FakeEmbedder:
    """An async client double: the vector of a text is [its length, its first code point]."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def __aenter__(self) -> FakeEmbedder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def embed(self, text: str, model: str = "embedding-v2") -> EmbeddingResult:
        self.sent.append((text, model))
        return EmbeddingResult([float(len(text)), float(ord(text[0]))], len(text.split()))


@pytest.fixture(autouse=True)
def connection(monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"conn_type": "clova_studio", "host": "https://clova.embedtest.invalid", "password": API_KEY}
    monkeypatch.setenv("AIRFLOW_CONN_CLOVA_STUDIO_DEFAULT", json.dumps(body))


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> FakeEmbedder:
    fake = FakeEmbedder()

    async def aget_async_conn(self: ClovaStudioHook) -> FakeEmbedder:
        return fake

    monkeypatch.setattr(ClovaStudioHook, "aget_async_conn", aget_async_conn)
    return fake


def docs(path: Path, texts: dict[str, str]) -> Path:
    return write_input(path, [{"doc_id": key, "body": text, "title": key.upper()} for key, text in texts.items()])


def run(tmp_path: Path, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("input_path", str(tmp_path / "docs.jsonl"))
    kwargs.setdefault("output_path", str(tmp_path / "out" / "vectors.jsonl"))
    defaults = {"task_id": "embed", "id_field": "doc_id", "text_field": "body", "carry_fields": ("title",)}
    summary: dict[str, Any] = ClovaStudioEmbeddingOperator(**{**defaults, **kwargs}).execute({})
    return summary


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_output_records_carry_id_vector_tokens_hash_and_carried_fields(tmp_path: Path, client: FakeEmbedder) -> None:
    docs(tmp_path / "docs.jsonl", {"a": "alpha beta", "b": "배송 안내"})
    summary = run(tmp_path, model="bge-m3")
    assert summary["model"] == "embedding-v2" and summary["sent"] == 2 and summary["reused"] == 0
    assert summary["tokens"]["prompt_tokens"] == 4 and summary["tokens"]["charged_tokens"] == 4
    first, second = records(tmp_path / "out" / "vectors.jsonl")
    assert first == {
        "id": "a",
        "line": 1,
        "ok": True,
        "title": "A",
        "embedding": [10.0, 97.0],
        "input_tokens": 2,
        "content_hash": content_hash("alpha beta", "embedding-v2"),
    }
    assert second["id"] == "b" and second["embedding"] == [5.0, float(ord("배"))]
    assert sorted(client.sent) == [("alpha beta", "embedding-v2"), ("배송 안내", "embedding-v2")]


def test_unknown_fields_and_wrong_field_names_are_row_errors(tmp_path: Path, client: FakeEmbedder) -> None:
    write_input(
        tmp_path / "docs.jsonl",
        [{"doc_id": "a", "body": "ok"}, {"doc_id": "b", "text": "wrong field"}, {"doc_id": "c", "body": "x", "url": 1}],
    )
    summary = run(tmp_path, max_failed_fraction=None)
    out = {r["id"]: r for r in records(tmp_path / "out" / "vectors.jsonl")}
    assert out["a"]["ok"] and summary["input_errors"] == 2 and client.sent == [("ok", "embedding-v2")]
    assert "unknown field(s) text; expected doc_id, body, title" in out["b"]["error"]["message"]
    assert "unknown field(s) url" in out["c"]["error"]["message"]


def test_previous_output_reuses_only_unchanged_texts(tmp_path: Path, client: FakeEmbedder) -> None:
    docs(tmp_path / "docs.jsonl", {"a": "one", "b": "two", "c": "three"})
    run(tmp_path, output_path=str(tmp_path / "night1.jsonl"))
    client.sent.clear()
    docs(tmp_path / "docs.jsonl", {"a": "one", "b": "two, edited", "d": "four"})
    summary = run(tmp_path, output_path=str(tmp_path / "night2.jsonl"), previous_output=str(tmp_path / "night1.jsonl"))
    assert sorted(text for text, _ in client.sent) == ["four", "two, edited"]
    assert summary["sent"] == 2 and summary["reused"] == 1 and summary["ok"] == 3
    out = {r["id"]: r for r in records(tmp_path / "night2.jsonl")}
    assert out["b"]["embedding"] == [11.0, float(ord("t"))] and out["a"]["line"] == 1 and set(out) == {"a", "b", "d"}
    # another model is other content: nothing of the previous output counts
    client.sent.clear()
    run(
        tmp_path,
        model="clir-emb-dolphin",
        output_path=str(tmp_path / "dolphin.jsonl"),
        previous_output=str(tmp_path / "night2.jsonl"),
    )
    assert len(client.sent) == 3


def test_the_output_as_its_own_previous_output(tmp_path: Path, client: FakeEmbedder) -> None:
    output = tmp_path / "out" / "vectors.jsonl"
    docs(tmp_path / "docs.jsonl", {"a": "one", "b": "two"})
    first = run(tmp_path, previous_output=str(output))  # first night: nothing there yet
    assert first["sent"] == 2
    # resume=False (a fresh start) still reads the old output before replacing it
    for resume, text in ((True, "deux"), (False, "zwei")):
        client.sent.clear()
        docs(tmp_path / "docs.jsonl", {"a": "one", "b": text})
        summary = run(tmp_path, previous_output=str(output), resume=resume)
        assert summary["reused"] == 1 and client.sent == [(text, "embedding-v2")]
        assert [r["embedding"] for r in records(output)] == [[3.0, float(ord("o"))], [4.0, float(ord(text[0]))]]
    assert sorted(p.name for p in output.parent.iterdir()) == ["vectors.jsonl"]


def test_a_journal_from_other_texts_does_not_leak_old_vectors(tmp_path: Path, client: FakeEmbedder) -> None:
    # a killed try left a journal; the input changed before the next run
    output = tmp_path / "out" / "vectors.jsonl"
    output.parent.mkdir()
    stale = {
        "id": "a",
        "line": 1,
        "ok": True,
        "embedding": [9.0, 9.0],
        "content_hash": content_hash("old", "embedding-v2"),
    }
    Path(f"{output}.journal").write_text(json.dumps(stale) + "\n")
    docs(tmp_path / "docs.jsonl", {"a": "new"})
    summary = run(tmp_path)
    assert summary["sent"] == 1 and records(output)[0]["embedding"] == [3.0, float(ord("n"))]


def test_parquet_copy(tmp_path: Path, client: FakeEmbedder) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    docs(tmp_path / "docs.jsonl", {"a": "alpha", "b": "beta gamma"})
    summary = run(tmp_path, output_format="parquet")
    table = pq.read_table(summary["parquet"])
    assert summary["parquet"] == str(tmp_path / "out" / "vectors.parquet")
    assert table.column_names == ["id", "ok", "embedding", "input_tokens", "content_hash", "error"]
    assert table.column("id").to_pylist() == ["a", "b"]
    assert table.column("embedding").to_pylist() == [[5.0, 97.0], [10.0, 98.0]]
    assert table.column("input_tokens").to_pylist() == [1, 2]


def test_parquet_without_pyarrow_fails_before_sending(
    tmp_path: Path, client: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_pyarrow(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("pyarrow"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    docs(tmp_path / "docs.jsonl", {"a": "alpha"})
    with pytest.raises(
        ClovaStudioConfigError, match=r"needs pyarrow.*Fix: pip install 'airflow-provider-clova\[parquet\]'"
    ):
        run(tmp_path, output_format="parquet")
    assert client.sent == []


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"output_format": "csv"}, "output_format"),
        ({"carry_fields": ("embedding",)}, "clash"),
        ({"carry_fields": ("body",)}, "clash"),
        ({"id_field": "body"}, "two different"),
        ({"max_concurrency": 0}, "max_concurrency"),
    ],
)
def test_bad_arguments_fail_at_construction(tmp_path: Path, kwargs: dict[str, Any], fragment: str) -> None:
    base = {"task_id": "e", "input_path": "in.jsonl", "output_path": "out.jsonl", "text_field": "body"}
    with pytest.raises(ValueError, match=fragment):
        ClovaStudioEmbeddingOperator(**{**base, **kwargs})


def test_template_fields_are_a_tuple_of_real_attributes() -> None:
    fields = ClovaStudioEmbeddingOperator.template_fields
    assert isinstance(fields, tuple)
    op = ClovaStudioEmbeddingOperator(task_id="e", input_path="i", output_path="o")
    for name in fields:
        assert hasattr(op, name)


def test_row_kind_budget_and_hash_in_the_index(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [{"id": 1, "text": "short"}, {"id": 2, "text": "y" * 50}])
    rows = EmbeddingRows("embedding-v2", token_ceiling=20)
    index = build_index(iter_lines(str(source)), rows)
    assert index.errors[2].error.type == "budget" and "extra.limits" in index.errors[2].error.message
    assert index.content_hashes == {"1": content_hash("short", "embedding-v2")}


def test_unknown_model_is_a_config_error(tmp_path: Path, client: Callable[..., Any]) -> None:
    docs(tmp_path / "docs.jsonl", {"a": "alpha"})
    with pytest.raises(ClovaStudioConfigError, match="unknown model"):
        run(tmp_path, model="text-embedding-3-large")
