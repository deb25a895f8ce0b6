"""``make demo``: the example tuning pipeline, end to end, against local stand-ins.

Starts a moto S3 server (NAVER Cloud Object Storage stand-in) and the bundled CLOVA Studio
emulator on loopback, sets up Airflow with SQLite in a temporary AIRFLOW_HOME, runs
``airflow dags test clova_tuning_pipeline`` (upload the shipped sample dataset, tune it
deferrably, ask the tuned model), prints a short summary and stops everything it started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from airflow_provider_clova.testing.servers import start_emulator, start_moto_server

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "clova-datasets"
DAG_ID = "clova_tuning_pipeline"
SUMMARY_MARK = "CLOVA_PIPELINE_SUMMARY "
# The emulator trains ~60 steps of 2 s after a 30 s WAIT; at 0.1x that is ~15 s of real time.
TIME_SCALE = 0.1
POLL_INTERVAL = 2.0


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def airflow(args: list[str], env: dict[str, str], log: Path) -> subprocess.CompletedProcess[str]:
    cmd = [str(Path(sys.executable).parent / "airflow"), *args]
    with log.open("a") as sink:
        sink.write(f"\n$ airflow {' '.join(args)}\n")
        sink.flush()
        result = subprocess.run(cmd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        sink.write(result.stdout)
    return result


def main() -> int:
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="clova-demo-"))
    log = work / "airflow.log"
    say(f"working in {work}")
    moto = start_moto_server()
    emulator = None
    try:
        say(f"S3-compatible Object Storage (moto) on {moto.endpoint}")
        moto.s3_client().create_bucket(Bucket=BUCKET)
        emulator = start_emulator(object_storage_endpoint=moto.endpoint, time_scale=TIME_SCALE)
        say(f"CLOVA Studio emulator on {emulator.url} (time x{TIME_SCALE})")

        env = dict(os.environ)
        env.update(
            {
                "AIRFLOW_HOME": str(work / "airflow"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{work}/airflow.db",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW_CONN_CLOVA_STUDIO_DEFAULT": emulator.conn_json(),
                "AIRFLOW_CONN_NCLOUD_OBJECT_STORAGE": json.dumps(
                    {
                        "conn_type": "aws",
                        "login": moto.access_key,
                        "password": moto.secret_key,
                        "extra": {"endpoint_url": moto.endpoint, "region_name": moto.region},
                    }
                ),
                "CLOVA_EXAMPLE_BUCKET": BUCKET,
                "CLOVA_EXAMPLE_POLL_INTERVAL": str(POLL_INTERVAL),
            }
        )
        say("airflow db migrate (SQLite)")
        if airflow(["db", "migrate"], env, log).returncode != 0:
            say(f"airflow db migrate failed; see {log}")
            return 1
        say(f"airflow dags test {DAG_ID}")
        run = airflow(["dags", "test", DAG_ID], env, log)
        summary = next(
            (json.loads(line.split(SUMMARY_MARK, 1)[1]) for line in run.stdout.splitlines() if SUMMARY_MARK in line),
            None,
        )
        stats = emulator.stats()
        if run.returncode != 0 or summary is None:
            print(run.stdout[-6000:])
            say(f"the pipeline failed (exit {run.returncode}); full log: {log}")
            return 1
        created = stats.get("tuning_tasks_created", [])
        print()
        print("  CLOVA Studio tuning pipeline: done")
        print(f"  tuning task     {summary['tuning_task_id']}  ({summary['status']}, steps {summary['steps']})")
        print(f"  base model      {summary['model']} (tuned model at {summary['chat_completions_path']})")
        print(f"  final loss      {summary['final_train_loss']}")
        print(f"  tasks created   {len(created)}")
        print(f"  question        {summary['question']}")
        print(f"  tuned answer    {summary['answer']}")
        print(f"  tokens          {summary['usage']}")
        print(f"  time            {time.monotonic() - started:.0f} s (Airflow log: {log})")
        print()
        return 0
    finally:
        if emulator is not None:
            emulator.stop()
        moto.stop()


if __name__ == "__main__":
    sys.exit(main())
