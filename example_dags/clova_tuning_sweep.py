"""A small hyper-parameter sweep: tune one model per (epochs, learning rate) of a grid, evaluate
them all on one evaluation set, keep the best, delete the others.

    upload_dataset -> tune (mapped: 2 epochs x 2 learning rates) -> evaluate -> losers -> delete_loser (mapped)

Each mapped tuning is an ordinary ``ClovaStudioTuningOperator``: its job name includes its map
index, so a retry of one map index reattaches to the training that index submitted and never
bills a second one. ``evaluate`` takes the list of tuning results as its candidates (each named
by its tuned task id) with no champion: the best by token-overlap F1 wins if it reaches
``MIN_SCORE``. The winner is kept; every other tuned task is deleted by the cleanup operator,
mapped over the evaluation's ``losers``.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from airflow_provider_clova.operators.cleanup import ClovaStudioDeleteTuningTaskOperator
from airflow_provider_clova.operators.dataset import ClovaStudioDatasetUploadOperator
from airflow_provider_clova.operators.evaluation import ClovaStudioEvaluationOperator
from airflow_provider_clova.operators.tuning import ClovaStudioTuningOperator

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG  # type: ignore[no-redef,attr-defined,unused-ignore]
    from airflow.decorators import task  # type: ignore[no-redef,attr-defined,unused-ignore]

SAMPLES = resources.files("airflow_provider_clova.datasets") / "samples"
BUCKET = os.environ.get("CLOVA_EXAMPLE_BUCKET", "clova-datasets")
OBJECT_STORAGE_CONN_ID = "ncloud_object_storage"
POLL_INTERVAL = float(os.environ.get("CLOVA_EXAMPLE_POLL_INTERVAL", "60"))
EPOCHS = [2, 4]
LEARNING_RATES = ["1e-4", "5e-5"]
MIN_SCORE = 0.5
EVALUATION_ROOT = os.environ.get("CLOVA_EVALUATION_DIR", os.path.join(tempfile.gettempdir(), "clova-evaluations"))

with DAG(
    dag_id="clova_tuning_sweep",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["clova", "example"],
    doc_md=__doc__,
    # A lost worker or a passing Object Storage / CLOVA failure is retried; a retry of a tuning
    # task reattaches to the training an earlier try submitted (nothing is billed twice).
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
) as dag:
    upload_dataset = ClovaStudioDatasetUploadOperator(
        task_id="upload_dataset",
        source=str(SAMPLES / "tuning_sample.jsonl"),
        bucket=BUCKET,
        key="datasets/haneul-support/sweep.jsonl",
        object_storage_conn_id=OBJECT_STORAGE_CONN_ID,
    )

    # expand() over two lists maps over their cross product: 2 x 2 = 4 trainings
    tune = ClovaStudioTuningOperator.partial(
        task_id="tune",
        model="HCX-003",
        dataset_bucket="{{ ti.xcom_pull(task_ids='upload_dataset')['bucket'] }}",
        dataset_key="{{ ti.xcom_pull(task_ids='upload_dataset')['key'] }}",
        object_storage_conn_id=OBJECT_STORAGE_CONN_ID,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    ).expand(train_epochs=EPOCHS, learning_rate=LEARNING_RATES)

    evaluate = ClovaStudioEvaluationOperator(
        task_id="evaluate",
        input_path=str(SAMPLES / "evaluation_sample.jsonl"),
        output_dir=EVALUATION_ROOT + "/sweep/{{ run_id }}",
        candidates=tune.output,  # every mapped result, named by its tuned task id
        metric="token_f1",
        min_score=MIN_SCORE,
        parameters={"maxTokens": 256},
    )

    @task
    def losers(evaluation: dict[str, Any]) -> list[str]:
        """Every tuned task but the winner (all of them when none reached MIN_SCORE)."""
        print(f"CLOVA_SWEEP winner {evaluation['winner']}: {evaluation['reason']}")
        return list(evaluation["losers"])

    delete_loser = ClovaStudioDeleteTuningTaskOperator.partial(task_id="delete_loser").expand(
        tuning_task_id=losers(evaluate.output)
    )

    upload_dataset >> tune
