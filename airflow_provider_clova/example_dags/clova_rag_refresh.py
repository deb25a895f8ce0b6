"""Nightly RAG refresh: re-embed a document set in Object Storage, paying only for what changed.

    embed_changed_documents -> report

The documents are one JSONL object in NAVER Cloud Object Storage (``{"doc_id", "title",
"body"}`` per line), read as an ``ObjectStoragePath`` over the ``ncloud_object_storage``
connection (type ``aws``, with the Object Storage endpoint in its extra). Their vectors are written next to them
(``documents.vectors.jsonl``: id, title, the 1,024-float ``embedding``, ``input_tokens`` and
the ``content_hash`` of each text). Each night the operator reads last night's vectors as
``previous_output``: a document whose text is unchanged keeps its vector without a request,
so the refresh sends only new and edited documents, paced under the embedding budget. The
vectors' asset gets an event (with the counts in its extra) for the DAGs that load them into
a vector store.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import Asset

from airflow_provider_clova.operators.embedding import ClovaStudioEmbeddingOperator

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG  # type: ignore[no-redef,attr-defined,unused-ignore]
    from airflow.decorators import task  # type: ignore[no-redef,attr-defined,unused-ignore]

BUCKET = os.environ.get("CLOVA_EXAMPLE_BUCKET", "clova-rag")
OBJECT_STORAGE_CONN_ID = "ncloud_object_storage"
# ``s3://<conn id>@<bucket>/<key>``: the operator opens these as ``ObjectStoragePath`` over that
# connection when the task runs. Building an ``ObjectStoragePath`` here instead would set up
# the S3 file system (s3fs, aiobotocore) every time the DAG file is parsed.
DOCUMENTS = f"s3://{OBJECT_STORAGE_CONN_ID}@{BUCKET}/rag/documents.jsonl"
VECTORS = f"s3://{OBJECT_STORAGE_CONN_ID}@{BUCKET}/rag/documents.vectors.jsonl"
VECTORS_ASSET = Asset(f"s3://{BUCKET}/rag/documents.vectors.jsonl")
SUMMARY = "CLOVA_RAG_SUMMARY "

with DAG(
    dag_id="clova_rag_refresh",
    start_date=datetime(2026, 1, 1),
    schedule="0 2 * * *",
    catchup=False,
    max_active_runs=1,
    tags=["clova", "example", "rag"],
    doc_md=__doc__,
) as dag:
    embed = ClovaStudioEmbeddingOperator(
        task_id="embed_changed_documents",
        input_path=DOCUMENTS,
        output_path=VECTORS,
        previous_output=VECTORS,  # last night's vectors: unchanged texts are copied, not paid for
        model="embedding-v2",
        id_field="doc_id",
        text_field="body",
        carry_fields=("title",),
        max_failed_fraction=0.01,
        outlets=[VECTORS_ASSET],
    )

    @task
    def report(summary: dict[str, Any]) -> None:
        """One line a person (or a test) can read: what was paid for and what was kept."""
        keys = ("rows", "ok", "failed", "sent", "reused", "output", "model", "tokens")
        print(SUMMARY + json.dumps({key: summary[key] for key in keys}))

    report(embed.output)
