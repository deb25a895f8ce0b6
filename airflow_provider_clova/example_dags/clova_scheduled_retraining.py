"""Retrain on a schedule or when new data lands, evaluate, and swap in the new model id.

    upload_dataset -> retrain (deferrable) -> evaluate -> swap_model -> delete_previous_model

The serving side reads the Airflow Variable ``clova_active_tuning_task_id``; ``swap_model``
replaces it only when the new model answers the evaluation questions well enough, and the
model it replaced is deleted. Runs weekly, and also whenever the dataset asset is updated
(Airflow 3; on 2.11 the weekly schedule alone).
"""

from __future__ import annotations

import os
from datetime import datetime
from importlib import resources

from airflow_provider_clova.assets import tuned_model_asset
from airflow_provider_clova.operators.cleanup import ClovaStudioDeleteTuningTaskOperator
from airflow_provider_clova.operators.dataset import ClovaStudioDatasetUploadOperator
from airflow_provider_clova.operators.tuning import ClovaStudioTuningOperator

try:  # Airflow 3
    from airflow.sdk import DAG, Asset, Variable, task
    from airflow.timetables.assets import AssetOrTimeSchedule
    from airflow.timetables.trigger import CronTriggerTimetable

    NEW_DATA = Asset("s3://clova-datasets/incoming/haneul-support.jsonl")
    SCHEDULE: object = AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * 1", timezone="Asia/Seoul"), assets=NEW_DATA
    )
except ImportError:  # Airflow 2.11
    from airflow import DAG  # type: ignore[no-redef,attr-defined,unused-ignore]
    from airflow.decorators import task  # type: ignore[no-redef,attr-defined,unused-ignore]
    from airflow.models import Variable  # type: ignore[no-redef,attr-defined,unused-ignore]

    SCHEDULE = "0 3 * * 1"

SAMPLE_DATASET = str(resources.files("airflow_provider_clova.datasets") / "samples" / "tuning_sample.jsonl")
DATASET_SOURCE = os.environ.get("CLOVA_RETRAIN_SOURCE", SAMPLE_DATASET)
BUCKET = os.environ.get("CLOVA_EXAMPLE_BUCKET", "clova-datasets")
# One object per run day. Airflow 3 runs triggered by an asset event (or by the API without a
# logical date) have no ``ds_nodash``; they use the day the run was due instead.
DATASET_KEY = (
    "datasets/haneul-support/{{ ds_nodash if ds_nodash is defined else dag_run.run_after.strftime('%Y%m%d') }}.jsonl"
)
POLL_INTERVAL = float(os.environ.get("CLOVA_EXAMPLE_POLL_INTERVAL", "60"))
ACTIVE_MODEL_VARIABLE = "clova_active_tuning_task_id"
EVALUATION = [
    ("How long is the warranty on Haneul Air purifiers?", "2-year"),
    ("제품 무상 보증 기간은 얼마나 되나요?", "2년"),
]
MIN_SCORE = 0.5

with DAG(
    dag_id="clova_scheduled_retraining",
    start_date=datetime(2026, 1, 1),
    schedule=SCHEDULE,
    catchup=False,
    max_active_runs=1,
    tags=["clova", "example"],
    doc_md=__doc__,
) as dag:
    upload_dataset = ClovaStudioDatasetUploadOperator(
        task_id="upload_dataset",
        source=DATASET_SOURCE,
        bucket=BUCKET,
        key=DATASET_KEY,
        object_storage_conn_id="ncloud_object_storage",
    )

    retrain = ClovaStudioTuningOperator(
        task_id="retrain",
        model="HCX-003",
        dataset_bucket="{{ ti.xcom_pull(task_ids='upload_dataset')['bucket'] }}",
        dataset_key="{{ ti.xcom_pull(task_ids='upload_dataset')['key'] }}",
        object_storage_conn_id="ncloud_object_storage",
        train_epochs=4,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=12 * 3600,
        retries=2,
        outlets=[tuned_model_asset("haneul-support")],
    )

    @task
    def evaluate(tuning: dict) -> dict:
        """Ask the new model the evaluation questions; score = share of answers with the key fact."""
        from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook

        hook = ClovaStudioHook()
        hits = 0
        for question, expected in EVALUATION:
            answer = hook.chat_completion(
                [{"role": "user", "content": question}],
                model=tuning["model"],
                task_id=tuning["task_id"],
                maxTokens=200,
            )
            hits += expected in answer.content
        return {"task_id": tuning["task_id"], "score": hits / len(EVALUATION)}

    @task
    def swap_model(evaluation: dict) -> str | None:
        """Point serving at the new model if it passed; return the id it replaced (to delete)."""
        if evaluation["score"] < MIN_SCORE:
            raise ValueError(
                f"new model {evaluation['task_id']} scored {evaluation['score']:.2f} < {MIN_SCORE}; "
                "keeping the current model"
            )
        previous = Variable.get(ACTIVE_MODEL_VARIABLE, None)  # positional default: Airflow 3 and 2.11
        Variable.set(ACTIVE_MODEL_VARIABLE, evaluation["task_id"])
        return previous if previous != evaluation["task_id"] else None

    swapped = swap_model(evaluate(retrain.output))

    delete_previous_model = ClovaStudioDeleteTuningTaskOperator(
        task_id="delete_previous_model",
        tuning_task_id="{{ ti.xcom_pull(task_ids='swap_model') or '' }}",
    )

    upload_dataset >> retrain
    swapped >> delete_previous_model
