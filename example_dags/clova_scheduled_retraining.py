"""Retrain on a schedule or when new data lands; evaluate the new model against the one serving;
a person approves; promote it or keep the champion; delete the model that lost.

    upload_dataset -> retrain (deferrable) -> evaluate -> gate -> approve_promotion -> settle
                                                              \\________________________/   -> delete_replaced_model

The serving side reads the Airflow Variable ``clova_active_tuning_task_id`` (the champion).
``evaluate`` asks the champion and the new model (the challenger) every question of the
evaluation set (24 rows, Korean and English) and scores the answers by token-overlap F1; the
challenger passes when it reaches ``MIN_SCORE`` and beats the champion by more than
``MARGIN``. Only then does a person get asked (Airflow >= 3.1: the standard provider's
human-in-the-loop operator shows the side-by-side table in the approval form; Airflow 2.11
has no such step and the gate alone decides). ``settle`` swaps the Variable when the gate
passed and the person chose to promote, and names the model to delete: the replaced champion,
or the challenger that lost or was turned down. Runs weekly, and also whenever the dataset
asset is updated (Airflow 3; on 2.11 the weekly schedule alone).
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from airflow_provider_clova.assets import tuned_model_asset
from airflow_provider_clova.operators.cleanup import ClovaStudioDeleteTuningTaskOperator
from airflow_provider_clova.operators.dataset import ClovaStudioDatasetUploadOperator
from airflow_provider_clova.operators.evaluation import ClovaStudioEvaluationOperator
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

try:  # the standard provider's human-in-the-loop operators: Airflow >= 3.1
    from airflow.providers.standard.operators.hitl import HITLOperator
except ImportError:  # Airflow 2.11 (or an older standard provider): the gate alone decides
    HITLOperator = None

SAMPLES = resources.files("airflow_provider_clova.datasets") / "samples"
DATASET_SOURCE = os.environ.get("CLOVA_RETRAIN_SOURCE", str(SAMPLES / "tuning_sample.jsonl"))
EVALUATION_SET = os.environ.get("CLOVA_EVALUATION_SET", str(SAMPLES / "evaluation_sample.jsonl"))
BUCKET = os.environ.get("CLOVA_EXAMPLE_BUCKET", "clova-datasets")
OBJECT_STORAGE_CONN_ID = "ncloud_object_storage"
# One object per run day. Airflow 3 runs triggered by an asset event (or by the API without a
# logical date) have no ``ds_nodash``; they use the day the run was due instead.
DATASET_KEY = (
    "datasets/haneul-support/{{ ds_nodash if ds_nodash is defined else dag_run.run_after.strftime('%Y%m%d') }}.jsonl"
)
# Per-row results and the report of each run. An object store works too, e.g.
# "s3://ncloud_object_storage@clova-datasets/evaluations" (the conn id rides in the URI; needs s3fs).
EVALUATION_ROOT = os.environ.get("CLOVA_EVALUATION_DIR", os.path.join(tempfile.gettempdir(), "clova-evaluations"))
EVALUATION_DIR = EVALUATION_ROOT + "/haneul-support/{{ run_id }}"
POLL_INTERVAL = float(os.environ.get("CLOVA_EXAMPLE_POLL_INTERVAL", "60"))
ACTIVE_MODEL_VARIABLE = "clova_active_tuning_task_id"
MIN_SCORE = 0.5
MARGIN = 0.02
PROMOTE, KEEP = "Promote the challenger", "Keep the champion"


def decide_promotion(evaluation: dict[str, Any], approval: dict[str, Any] | None) -> dict[str, Any]:
    """Promote when the gate passed and, where a person was asked, they chose to promote.

    Returns the new active task id (or None to keep the champion) and the task to delete.
    """
    challenger = evaluation["candidates"]["challenger"]["tuning_task_id"]
    champion_info = evaluation["candidates"].get("champion")
    champion = champion_info["tuning_task_id"] if champion_info else None
    chosen = (approval or {}).get("chosen_options") or []
    approved = approval is None or PROMOTE in chosen
    if evaluation["passed"] and approved:
        return {"promote": challenger, "delete": champion if champion != challenger else None}
    return {"promote": None, "delete": challenger if challenger != champion else None}


with DAG(
    dag_id="clova_scheduled_retraining",
    start_date=datetime(2026, 1, 1),
    schedule=SCHEDULE,
    catchup=False,
    max_active_runs=1,
    tags=["clova", "example"],
    doc_md=__doc__,
    # A lost worker or a passing Object Storage / CLOVA failure is retried; a retry of the tuning
    # task reattaches to the training an earlier try submitted (nothing is billed twice).
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
) as dag:
    upload_dataset = ClovaStudioDatasetUploadOperator(
        task_id="upload_dataset",
        source=DATASET_SOURCE,
        bucket=BUCKET,
        key=DATASET_KEY,
        object_storage_conn_id=OBJECT_STORAGE_CONN_ID,
    )

    retrain = ClovaStudioTuningOperator(
        task_id="retrain",
        model="HCX-003",  # the tunable base model (HCX-005 and HCX-DASH-002 cannot be trained)
        dataset_bucket="{{ ti.xcom_pull(task_ids='upload_dataset')['bucket'] }}",
        dataset_key="{{ ti.xcom_pull(task_ids='upload_dataset')['key'] }}",
        object_storage_conn_id=OBJECT_STORAGE_CONN_ID,
        train_epochs=4,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=12 * 3600,
        outlets=[tuned_model_asset("haneul-support")],
    )

    evaluate = ClovaStudioEvaluationOperator(
        task_id="evaluate",
        input_path=EVALUATION_SET,
        output_dir=EVALUATION_DIR,
        candidates={
            # empty on the first run: then the challenger only has to reach MIN_SCORE
            "champion": {"tuning_task_id": f"{{{{ var.value.get('{ACTIVE_MODEL_VARIABLE}', '') }}}}"},
            "challenger": {"model": "HCX-003", "tuning_task_id": "{{ ti.xcom_pull(task_ids='retrain')['task_id'] }}"},
        },
        champion="champion",
        metric="token_f1",
        min_score=MIN_SCORE,
        must_beat=MARGIN,
        parameters={"maxTokens": 256},
    )

    @task(trigger_rule="none_failed_min_one_success")
    def settle(evaluation: dict[str, Any], approval: dict[str, Any] | None = None) -> dict[str, Any]:
        """Swap the Variable or keep the champion; name the model to delete."""
        decision = decide_promotion(evaluation, approval)
        if decision["promote"]:
            Variable.set(ACTIVE_MODEL_VARIABLE, decision["promote"])
            print(f"CLOVA_RETRAINING promoted {decision['promote']}; deleting {decision['delete']}")
        else:
            print(f"CLOVA_RETRAINING kept the champion; deleting {decision['delete']} ({evaluation['reason']})")
        return decision

    delete_replaced_model = ClovaStudioDeleteTuningTaskOperator(
        task_id="delete_replaced_model",
        tuning_task_id="{{ ti.xcom_pull(task_ids='settle')['delete'] or '' }}",
    )

    upload_dataset >> retrain >> evaluate
    if HITLOperator is not None:

        @task.branch
        def gate(evaluation: dict[str, Any]) -> str:
            """Ask a person only when the metrics recommend promotion."""
            return "approve_promotion" if evaluation["passed"] else "settle"

        approve_promotion = HITLOperator(
            task_id="approve_promotion",
            subject="Promote the retrained Haneul support model?",
            body=(
                "{{ ti.xcom_pull(task_ids='evaluate')['table'] }}\n\n"
                "**Gate passed**: {{ ti.xcom_pull(task_ids='evaluate')['reason'] }}\n\n"
                "Full report: `{{ ti.xcom_pull(task_ids='evaluate')['report'] }}`"
            ),
            options=[PROMOTE, KEEP],
            defaults=[KEEP],  # taken when nobody answers within the response timeout
            response_timeout=timedelta(days=2),
        )
        settled = settle(evaluate.output, approve_promotion.output)
        gate(evaluate.output) >> [approve_promotion, settled]
    else:
        settled = settle(evaluate.output)
    settled >> delete_replaced_model
