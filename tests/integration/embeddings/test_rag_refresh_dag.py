"""The example DAG ``clova_rag_refresh`` run for real, twice: ``airflow dags test`` in a
subprocess with its own AIRFLOW_HOME and SQLite, the documents and vectors in moto (through
the ``ncloud_object_storage`` aws connection and ``ObjectStoragePath``) and the embeddings
from the emulator. The first night embeds every document; the second, after 3 documents are
edited and 1 added, sends exactly those 4 and keeps the other vectors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_clova.testing.servers import ClovaEmulator, MotoServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
AIRFLOW = Path(sys.executable).parent / "airflow"
SUMMARY = "CLOVA_RAG_SUMMARY "
TIMEOUT = 240
LIMITS = {"embedding-v2": {"qpm": 6000, "tpm": 10**7}}
DOCS_KEY, VECTORS_KEY = "rag/documents.jsonl", "rag/documents.vectors.jsonl"


def documents(count: int, edited: dict[int, str] | None = None) -> bytes:
    edited = edited or {}
    lines = [
        {
            "doc_id": f"doc-{i:03d}",
            "title": f"Notice {i}",
            "body": edited.get(i, f"Store notice number {i}: opening hours"),
        }
        for i in range(count)
    ]
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("utf-8")


def run_dag(tmp_path: Path, emulator: ClovaEmulator, moto_server: MotoServer, bucket: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "airflow_provider_clova" / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
            "AIRFLOW_CONN_CLOVA_STUDIO_DEFAULT": emulator.conn_json(limits=LIMITS),
            "AIRFLOW_CONN_NCLOUD_OBJECT_STORAGE": moto_server.conn_json(),
            "CLOVA_EXAMPLE_BUCKET": bucket,
            "PYTHONWARNINGS": "ignore",
        }
    )
    if not (tmp_path / "airflow.db").exists():
        migrate = subprocess.run(
            [str(AIRFLOW), "db", "migrate"], env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
        assert migrate.returncode == 0, migrate.stdout[-4000:] + migrate.stderr[-4000:]
    run = subprocess.run(
        [str(AIRFLOW), "dags", "test", "clova_rag_refresh"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-8000:]
    lines = [line for line in run.stdout.splitlines() if line.startswith(SUMMARY)]
    assert len(lines) == 1, run.stdout[-8000:]
    return dict(json.loads(lines[0][len(SUMMARY) :]))


def vectors(moto_server: MotoServer, bucket: str) -> dict[str, dict[str, Any]]:
    body = moto_server.s3_client().get_object(Bucket=bucket, Key=VECTORS_KEY)["Body"].read().decode("utf-8")
    return {record["id"]: record for record in map(json.loads, body.splitlines())}


def test_nightly_refresh_sends_only_changed_documents(
    tmp_path: Path, clova_emulator_factory: Any, moto_server: MotoServer, moto_bucket: str
) -> None:
    emulator = clova_emulator_factory(limits=LIMITS)
    s3 = moto_server.s3_client()
    s3.put_object(Bucket=moto_bucket, Key=DOCS_KEY, Body=documents(40))

    first = run_dag(tmp_path, emulator, moto_server, moto_bucket)
    assert (first["rows"], first["ok"], first["sent"], first["reused"]) == (40, 40, 40, 0)
    night_one = vectors(moto_server, moto_bucket)
    assert len(night_one) == 40 and night_one["doc-007"]["title"] == "Notice 7"
    assert len(night_one["doc-007"]["embedding"]) == 1024
    assert emulator.stats()["requests"]["embedding"] == {"200": 40}

    edits = {3: "Store notice 3: closed for renovation", 17: "새 영업시간 안내", 29: "Holiday hours changed"}
    s3.put_object(Bucket=moto_bucket, Key=DOCS_KEY, Body=documents(41, edits))
    second = run_dag(tmp_path, emulator, moto_server, moto_bucket)
    assert (second["rows"], second["ok"], second["sent"], second["reused"]) == (41, 41, 4, 37)
    assert emulator.stats()["requests"]["embedding"] == {"200": 44}  # 40 + exactly the 4 new texts
    night_two = vectors(moto_server, moto_bucket)
    changed = {key for key in night_two if key not in night_one or night_two[key] != night_one[key]}
    assert changed == {"doc-003", "doc-017", "doc-029", "doc-040"}
    # no part objects or snapshots are left next to the vectors
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=moto_bucket).get("Contents", []))
    assert keys == [DOCS_KEY, VECTORS_KEY]
