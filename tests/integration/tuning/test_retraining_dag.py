"""The example DAG ``clova_scheduled_retraining`` run for real with ``airflow dags test``: upload to
moto, retrain on the emulator, evaluate the new model against the champion named by the
Variable on the 24-row evaluation sample, wait for a person's approval, promote, delete the
replaced champion; OpenLineage events go to a file transport and are asserted.

The approval is given the way the UI gives it: ``_approve.py`` (a second process on the same
metadata DB) answers the human-in-the-loop step through Airflow's REST API. ``dags test``
itself never resolves such a step; it waits until a response is recorded.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from airflow_provider_clova.client.calls import TuningDataset
from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook
from airflow_provider_clova.testing.servers import ClovaEmulator, MotoServer
from airflow_provider_clova.testing.waiting import wait_until
from tests.integration.tuning.conftest import POLL, created, requests

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[3]
AIRFLOW = Path(sys.executable).parent / "airflow"
APPROVER = Path(__file__).with_name("_approve.py")
TIMEOUT = 300
PROMOTE = "Promote the challenger"
#: a valid dataset that teaches nothing the evaluation asks: the champion answers it badly
OTHER_DATASET = b"".join(
    json.dumps(
        {"System_Prompt": "", "C_ID": i, "T_ID": 0, "Text": f"unrelated question {i}", "Completion": f"reply {i}"}
    ).encode()
    + b"\n"
    for i in range(100)
)


def champion_task(moto_server: MotoServer, bucket: str) -> str:
    """A tuned task the Variable names as today's model (made through the provider's hook)."""
    moto_server.s3_client().put_object(Bucket=bucket, Key="datasets/old.jsonl", Body=OTHER_DATASET)
    hook = ClovaStudioHook()
    dataset = TuningDataset(bucket, "datasets/old.jsonl", moto_server.access_key, moto_server.secret_key)
    task = hook.create_tuning_task("HCX-003", dataset, name="haneul-support-champion")
    wait_until(lambda: hook.get_tuning_task(task.id).status.value == "SUCCEEDED", timeout=60)
    return task.id


def dag_run_failed(log: Path) -> bool:
    """True when the run ended without asking for approval (the approver would wait in vain)."""
    return "Waiting for Human-in-the-loop input" not in log.read_text()


def lineage_events(path: Path) -> dict[str, dict[str, Any]]:
    """The COMPLETE event of each task, by task id."""
    events = {}
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event.get("eventType") == "COMPLETE" and "." in event["job"]["name"]:
            events[event["job"]["name"].split(".", 1)[1]] = event
    return events


def test_retraining_promotes_an_approved_better_model(
    tmp_path: Path, emulator: ClovaEmulator, moto_server: MotoServer, bucket: str, connections: None
) -> None:
    champion = champion_task(moto_server, bucket)
    home = tmp_path / "airflow"
    db = tmp_path / "airflow.db"
    lineage = tmp_path / "lineage.jsonl"
    fernet_key = Fernet.generate_key()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "airflow_provider_clova" / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__FERNET_KEY": fernet_key.decode(),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{db}",
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "retraining-test",
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(lineage), "append": True}
            ),
            "AIRFLOW_CONN_CLOVA_STUDIO_DEFAULT": emulator.conn_json(),  # an API key: chat takes Bearer only
            "AIRFLOW_CONN_NCLOUD_OBJECT_STORAGE": os.environ["AIRFLOW_CONN_NCLOUD_OBJECT_STORAGE"],
            "CLOVA_EXAMPLE_BUCKET": bucket,
            "CLOVA_EVALUATION_DIR": str(tmp_path / "evaluations"),
            "CLOVA_EXAMPLE_POLL_INTERVAL": str(POLL),
            "PYTHONWARNINGS": "ignore",
        }
    )
    run = lambda *args: subprocess.run(  # noqa: E731
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT, check=False
    )
    migrate = run(str(AIRFLOW), "db", "migrate")
    assert migrate.returncode == 0, migrate.stdout[-4000:]
    variable = run(str(AIRFLOW), "variables", "set", "clova_active_tuning_task_id", champion)
    assert variable.returncode == 0, variable.stdout[-2000:]

    approver = subprocess.Popen(
        [sys.executable, str(APPROVER), "clova_scheduled_retraining", "approve_promotion", PROMOTE, str(TIMEOUT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log = tmp_path / "dags-test.log"
    try:
        with log.open("w") as sink:
            dag_run = subprocess.run(
                [str(AIRFLOW), "dags", "test", "clova_scheduled_retraining"],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=TIMEOUT,
                check=False,
            )
    finally:
        approver.kill() if dag_run_failed(log) else None
        approved, _ = approver.communicate(timeout=60)
    output = log.read_text()
    assert dag_run.returncode == 0, output[-8000:] + approved[-2000:]

    # the person saw the side-by-side table and chose to promote, through the REST API
    shown = json.loads(next(line for line in approved.splitlines() if line.startswith("APPROVED "))[9:])
    assert shown["options"] == [PROMOTE, "Keep the champion"] and shown["response"] == [PROMOTE]
    assert "| champion |" in shown["body"] and "| challenger (winner) |" in shown["body"]

    new = next(task["id"] for task in created(emulator) if task["id"] != champion)
    assert f"CLOVA_RETRAINING promoted {new}; deleting {champion}" in output
    with sqlite3.connect(db) as conn:
        (value,) = conn.execute("SELECT val FROM variable WHERE key = 'clova_active_tuning_task_id'").fetchone()
    assert Fernet(fernet_key).decrypt(value.encode()).decode() == new
    assert requests(emulator, "tuning.delete") == {"200": 1}  # the replaced champion, nothing else
    # 24 rows asked of each candidate, each once
    assert requests(emulator, "chat.tuned") == {"200": 48}

    # the per-row results and the report of the run
    (report,) = (tmp_path / "evaluations" / "haneul-support").glob("*/report.md")
    run_dir = str(report.parent)
    assert {p.name for p in report.parent.iterdir()} == {"champion.jsonl", "challenger.jsonl", "report.md"}
    rows = [json.loads(line) for line in (report.parent / "challenger.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and all(r["scores"]["exact_match"] == 1.0 for r in rows)  # learned verbatim
    assert [r["scores"]["regex"] for r in rows if r["scores"]["regex"] is not None] == [1.0] * 5  # rows with a pattern

    # lineage: dataset file -> object -> tuned model -> evaluation results
    events = lineage_events(lineage)
    assert "**PASSED**" in report.read_text()
    upload = events["upload_dataset"]
    assert upload["inputs"][0]["namespace"] == "file" and upload["inputs"][0]["name"].endswith("tuning_sample.jsonl")
    assert upload["outputs"][0]["namespace"] == f"s3://{bucket}"
    dataset_key = upload["outputs"][0]["name"]
    tuning = events["retrain"]
    assert [(d["namespace"], d["name"]) for d in tuning["inputs"]] == [(f"s3://{bucket}", dataset_key)]
    assert tuning["outputs"][0]["name"] == f"tuned-models/{new}"
    assert tuning["outputs"][0]["namespace"].startswith("clova-studio://127.0.0.1")
    facet = tuning["run"]["facets"]["clovaStudioTuning"]
    assert facet["model"] == "HCX-003" and facet["trainEpochs"] == 4 and facet["numTokens"] > 0
    assert facet["finalTrainLoss"] is not None
    evaluation = events["evaluate"]
    names = {d["name"] for d in evaluation["inputs"]}
    assert {f"tuned-models/{new}", f"tuned-models/{champion}"} <= names
    assert evaluation["run"]["facets"]["clovaStudioEvaluation"]["winner"] == "challenger"
    assert {d["name"] for d in evaluation["outputs"]} >= {f"{run_dir}/report.md", f"{run_dir}/challenger.jsonl"}
