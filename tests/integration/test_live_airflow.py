"""The example pipeline on a real Airflow deployment: scheduler, DAG processor, API server,
LocalExecutor workers and a triggerer (``airflow standalone``), against the emulator and moto.

What ``airflow dags test`` cannot show: the tuning task really leaves its worker (the task
instance is deferred), the trigger is serialized through the metadata database and runs in
the triggerer process (its progress lines land in the trigger's own log), and the task
resumes on a worker to finish the run, with exactly one training billed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_clova._compat import AIRFLOW_V_3
from airflow_provider_clova.testing.servers import MotoServer, start_emulator
from airflow_provider_clova.testing.waiting import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not AIRFLOW_V_3, reason="the live deployment test runs on Airflow 3"),
]

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "clova_tuning_pipeline"
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _airflow(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, timeout=120)
    return done.stdout


def _json_tail(text: str) -> object:
    """The JSON document a CLI printed after any warnings."""
    for line in reversed(text.splitlines()):
        if line.startswith(("[", "{")):
            return json.loads(line)
    return None


def test_pipeline_defers_to_the_triggerer_and_bills_one_training(tmp_path: Path, moto_server: MotoServer) -> None:
    bucket = "live-datasets"
    moto_server.s3_client().create_bucket(Bucket=bucket)
    emulator = start_emulator(object_storage_endpoint=moto_server.endpoint, time_scale=0.05)
    home = tmp_path / "airflow"
    api_port = _free_port()
    env = dict(os.environ)
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "airflow_provider_clova" / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW_CONN_CLOVA_STUDIO_DEFAULT": emulator.conn_json(),
            "AIRFLOW_CONN_NCLOUD_OBJECT_STORAGE": moto_server.conn_json(),
            "CLOVA_EXAMPLE_BUCKET": bucket,
            "CLOVA_EXAMPLE_POLL_INTERVAL": "1",
        }
    )
    log = (tmp_path / "standalone.log").open("w")
    deployment = subprocess.Popen(
        [str(BIN / "airflow"), "standalone"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        # each probe is a CLI call, hence the 2 s between them
        wait_until(
            lambda: DAG_ID in _airflow(env, "dags", "list", "-o", "json"),
            timeout=180,
            interval=2,
            what="the DAG to be parsed",
        )
        _airflow(env, "dags", "unpause", DAG_ID)
        triggered = _json_tail(_airflow(env, "dags", "trigger", DAG_ID, "-o", "json"))
        assert isinstance(triggered, list) and triggered, triggered
        run_id = triggered[0]["dag_run_id"]

        def finished() -> str | None:
            runs = _json_tail(_airflow(env, "dags", "list-runs", DAG_ID, "-o", "json")) or []
            states = [run["state"] for run in runs if run["run_id"] == run_id]  # type: ignore[attr-defined]
            return states[0] if states and states[0] in ("success", "failed") else None

        state = wait_until(finished, timeout=240, interval=2, what="the DAG run to finish")
        logs = home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / "task_id=tune"
        assert state == "success", f"run ended {state}; see {tmp_path / 'standalone.log'} and {logs}"

        # The wait ran in the triggerer: its progress lines are in the trigger's own log file.
        trigger_logs = list(logs.glob("*.trigger.*.log"))
        assert trigger_logs, f"no trigger log under {logs}"
        trigger_text = "".join(path.read_text() for path in trigger_logs)
        # (a poll that lands while the short emulated training is RUNNING depends on load; the
        # final progress line does not)
        assert "SUCCEEDED, step 60/60 (100%)" in trigger_text
        # ... and the worker let go of the task while it trained.
        assert "final_state=deferred" in (tmp_path / "standalone.log").read_text()

        created = emulator.stats()["tuning_tasks_created"]
        assert len(created) == 1, created
        report = (logs.parent / "task_id=report").glob("*.log")
        assert any("CLOVA_PIPELINE_SUMMARY" in path.read_text() for path in report)
    finally:
        os.killpg(deployment.pid, 15)
        try:
            deployment.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(deployment.pid, 9)
        log.close()
        emulator.stop()
