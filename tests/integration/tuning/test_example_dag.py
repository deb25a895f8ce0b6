"""The example DAG ``clova_tuning_pipeline`` run for real: ``airflow dags test`` in a subprocess
with its own AIRFLOW_HOME and SQLite, connections from environment variables, the dataset going
to moto and the training to the emulator. One tuning task must be billed, and the report task
must print its summary line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_clova.testing.servers import ClovaEmulator, MotoServer
from tests.integration.tuning.conftest import POLL, created, requests

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
AIRFLOW = Path(sys.executable).parent / "airflow"
SUMMARY = "CLOVA_PIPELINE_SUMMARY "
TIMEOUT = 240


def airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AIRFLOW), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_example_pipeline_runs_end_to_end(
    tmp_path: Path, emulator: ClovaEmulator, moto_server: MotoServer, bucket: str
) -> None:
    home = tmp_path / "airflow"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
            "AIRFLOW_CONN_CLOVA_STUDIO_DEFAULT": emulator.conn_json(),
            "AIRFLOW_CONN_NCLOUD_OBJECT_STORAGE": json.dumps(
                {
                    "conn_type": "aws",
                    "login": moto_server.access_key,
                    "password": moto_server.secret_key,
                    "extra": {"endpoint_url": moto_server.endpoint, "region_name": moto_server.region},
                }
            ),
            "CLOVA_EXAMPLE_BUCKET": bucket,
            "CLOVA_EXAMPLE_POLL_INTERVAL": str(POLL),
            "PYTHONWARNINGS": "ignore",
        }
    )
    migrate = airflow(env, "db", "migrate")
    assert migrate.returncode == 0, migrate.stdout[-4000:]

    run = airflow(env, "dags", "test", "clova_tuning_pipeline")
    output = run.stdout
    assert run.returncode == 0, output[-8000:]
    lines = [line for line in output.splitlines() if line.startswith(SUMMARY)]
    assert len(lines) == 1, output[-8000:]
    summary = json.loads(lines[0][len(SUMMARY) :])

    tasks = created(emulator)
    assert len(tasks) == 1, tasks
    assert summary["tuning_task_id"] == tasks[0]["id"]
    assert summary["status"] == "SUCCEEDED"
    # The model the docs say can be tuned, used through the documented v1 tuned-model path.
    assert summary["model"] == "HCX-003" and tasks[0]["model"] == "HCX-003"
    assert summary["chat_completions_path"] == f"/v1/tasks/{tasks[0]['id']}/chat-completions"
    assert summary["steps"] == "60/60"
    assert summary["final_train_loss"] is not None
    assert "2-year" in summary["answer"]  # the tuned model learned the dataset's answer
    assert summary["usage"]["total_tokens"] > 0
    assert requests(emulator, "chat.tuned") == {"200": 1}
    # the dataset went through moto, under the templated key
    keys = [o["Key"] for o in moto_server.s3_client().list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert len(keys) == 1 and keys[0].startswith("datasets/haneul-support/")
    # the wait was logged as progress a person can read (whether a poll lands while the 1.5 s
    # training is RUNNING depends on how fast the triggerer starts, so only the last line is
    # certain), and the trigger made no second task
    assert f"task {tasks[0]['id']} SUCCEEDED, step 60/60 (100%)" in output
    assert requests(emulator, "tuning.create") == {"200": 1}
