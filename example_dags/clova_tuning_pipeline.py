"""Prepare a dataset, tune a CLOVA model without holding a worker, and ask the tuned model.

    upload_dataset -> tune (deferrable) -> ask_tuned_model -> report
                         `-> asset event "clova-studio://tuned-models/haneul-support"

Connections: ``clova_studio_default`` (CLOVA Studio) and ``ncloud_object_storage`` (an ``aws``
connection with ``{"endpoint_url": "https://kr.object.ncloudstorage.com"}`` in its extra).
``make demo`` runs this DAG against the bundled emulator and a local S3 server.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from importlib import resources

from airflow_provider_clova.assets import tuned_model_asset
from airflow_provider_clova.operators.chat import ClovaStudioChatCompletionOperator
from airflow_provider_clova.operators.dataset import ClovaStudioDatasetUploadOperator
from airflow_provider_clova.operators.tuning import ClovaStudioTuningOperator

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG  # type: ignore[no-redef,attr-defined,unused-ignore]
    from airflow.decorators import task  # type: ignore[no-redef,attr-defined,unused-ignore]

SAMPLE_DATASET = str(resources.files("airflow_provider_clova.datasets") / "samples" / "tuning_sample.jsonl")
BUCKET = os.environ.get("CLOVA_EXAMPLE_BUCKET", "clova-datasets")
# One object per run day. Airflow 3 runs triggered by an asset event (or by the API without a
# logical date) have no ``ds_nodash``; they use the day the run was due instead.
DATASET_KEY = (
    "datasets/haneul-support/{{ ds_nodash if ds_nodash is defined else dag_run.run_after.strftime('%Y%m%d') }}.jsonl"
)
# A real training takes hours; the demo's emulator runs in compressed time and polls faster.
POLL_INTERVAL = float(os.environ.get("CLOVA_EXAMPLE_POLL_INTERVAL", "30"))
QUESTION = "How long is the warranty on Haneul Air purifiers?"

with DAG(
    dag_id="clova_tuning_pipeline",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["clova", "example"],
    doc_md=__doc__,
    # A lost worker or a passing Object Storage / CLOVA failure is retried; a retry of the tuning
    # task reattaches to the training an earlier try submitted (nothing is billed twice).
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
) as dag:
    upload_dataset = ClovaStudioDatasetUploadOperator(
        task_id="upload_dataset",
        source=SAMPLE_DATASET,
        bucket=BUCKET,
        key=DATASET_KEY,
        object_storage_conn_id="ncloud_object_storage",
    )

    tune = ClovaStudioTuningOperator(
        task_id="tune",
        model="HCX-003",  # the model CLOVA Studio can tune; its tuned model speaks chat v1
        dataset_bucket="{{ ti.xcom_pull(task_ids='upload_dataset')['bucket'] }}",
        dataset_key="{{ ti.xcom_pull(task_ids='upload_dataset')['key'] }}",
        object_storage_conn_id="ncloud_object_storage",
        train_epochs=4,
        learning_rate=1e-4,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        outlets=[tuned_model_asset("haneul-support")],
    )

    ask_tuned_model = ClovaStudioChatCompletionOperator(
        task_id="ask_tuned_model",
        tuning_task_id="{{ ti.xcom_pull(task_ids='tune')['task_id'] }}",
        model="HCX-003",
        prompt=QUESTION,
        parameters={"maxTokens": 256, "temperature": 0.3},
    )

    @task
    def report(tuning: dict, answer: dict) -> dict:
        """One line a person can read: which model was trained, how well, and what it says."""
        summary = {
            "tuning_task_id": tuning["task_id"],
            "model": tuning["model"],
            "chat_completions_path": tuning["chat_completions_path"],
            "status": tuning["status"],
            "final_train_loss": tuning["train_loss"],
            "steps": f"{tuning['steps']}/{tuning['total_steps']}",
            "question": QUESTION,
            "answer": answer["content"],
            "usage": answer["usage"],
        }
        print("CLOVA_PIPELINE_SUMMARY " + json.dumps(summary, ensure_ascii=False))
        return summary

    upload_dataset >> tune >> ask_tuned_model
    report(tune.output, ask_tuned_model.output)
