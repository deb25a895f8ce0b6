"""A Parquet copy of an embedding output, for loaders that read columns (optional: needs pyarrow).

The JSONL output stays the engine's record (resume and reuse read it); the Parquet file is
written from it after a successful run, streaming in batches so a large output never sits
in memory whole. Columns: ``id`` (string), ``ok``, ``embedding`` (list of float32),
``input_tokens``, ``content_hash``, ``error`` (the message of a failed row).
"""

from __future__ import annotations

import json
import os
from typing import Any

from airflow_provider_clova.batch.input import open_binary
from airflow_provider_clova.client.errors import ClovaStudioConfigError

BATCH_ROWS = 1024


def parquet_module() -> Any:
    """``pyarrow.parquet``, or a config error naming the fix."""
    # lazy: pyarrow is the optional [parquet] extra, and heavy
    try:
        import pyarrow.parquet
    except ImportError:
        raise ClovaStudioConfigError(
            "output_format='parquet' needs pyarrow, which is not installed. Fix: pip install "
            "'airflow-provider-clova[parquet]' (or pyarrow) on the workers, or use output_format='jsonl'"
        ) from None
    return pyarrow.parquet


def parquet_target(output: Any, given: Any = None) -> Any:
    """``given``, else the output's path with ``.parquet`` in place of ``.jsonl`` (or appended)."""
    if given:
        return given
    if hasattr(output, "protocol") and hasattr(output, "with_name"):  # ObjectStoragePath
        name = output.name
        return output.with_name((name[: -len(".jsonl")] if name.endswith(".jsonl") else name) + ".parquet")
    text = os.fspath(output) if isinstance(output, os.PathLike) else str(output)
    return (text[: -len(".jsonl")] if text.endswith(".jsonl") else text) + ".parquet"


def write_parquet(source: Any, target: Any) -> None:
    """Stream the JSONL records of ``source`` into a Parquet file at ``target`` (local or object store)."""
    pq = parquet_module()
    # lazy: pyarrow is the optional [parquet] extra, and heavy
    import pyarrow as pa

    schema = pa.schema(
        [
            ("id", pa.string()),
            ("ok", pa.bool_()),
            ("embedding", pa.list_(pa.float32())),
            ("input_tokens", pa.int64()),
            ("content_hash", pa.string()),
            ("error", pa.string()),
        ]
    )
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}

    def flush(writer: Any) -> None:
        if columns["id"]:
            writer.write_batch(pa.record_batch([columns[name] for name in schema.names], schema=schema))
            for values in columns.values():
                values.clear()

    handle = target.open("wb") if hasattr(target, "protocol") else open(target, "wb")  # noqa: SIM115
    with handle, open_binary(source) as reader, pq.ParquetWriter(handle, schema) as writer:
        for raw in reader:
            record = json.loads(raw)
            error = record.get("error")
            columns["id"].append(str(record["id"]))
            columns["ok"].append(bool(record.get("ok")))
            columns["embedding"].append(record.get("embedding"))
            columns["input_tokens"].append(record.get("input_tokens"))
            columns["content_hash"].append(record.get("content_hash"))
            columns["error"].append(error.get("message") if isinstance(error, dict) else None)
            if len(columns["id"]) >= BATCH_ROWS:
                flush(writer)
        flush(writer)
