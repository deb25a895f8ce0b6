"""One command for an offline CLOVA Studio stack: ``python -m airflow_provider_clova.testing.stack``.

Starts, on loopback, the bundled CLOVA Studio emulator and an S3-compatible server (moto, the
Object Storage stand-in), creates the dataset bucket in ``kr-standard``, prints the
``AIRFLOW_CONN_*`` exports that point Airflow at both (and writes them to ``--env-file``), then
stays up until Ctrl-C. Needs the ``emulator`` extra (``pip install "airflow-provider-clova[emulator]"``).

    python -m airflow_provider_clova.testing.stack --env-file clova-stack.env
    . ./clova-stack.env                      # in the shell that runs Airflow
    airflow dags test support_bot_tuning

Standard library only at import time; the servers are the same launchers the pytest fixtures use.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from airflow_provider_clova.testing.servers import (
    OBJECT_STORAGE_REGION,
    ClovaEmulator,
    MotoServer,
    start_emulator,
    start_moto_server,
)

#: Printed last on stdout, once the servers answer, the bucket exists and the env file is written.
READY_LINE = "CLOVA offline stack ready; Ctrl-C stops it"
#: Demo credentials. Longer than Airflow's masking minimum (5 characters), so a task's log shows
#: ``***`` instead of warning "Skipping masking for a secret as it's too short".
API_KEY = "nv-offline-stack-api-key"
ACCESS_KEY = "ncp_iam_OFFLINESTACK"
SECRET_KEY = "offline-stack-secret-key"
S3_ACCESS_KEY = "offline-stack-s3-access"
S3_SECRET_KEY = "offline-stack-s3-secret"
#: What a tuning wait should use offline: the emulator finishes a training in seconds, the
#: operator's default ``poll_interval`` (30 s) would make every run wait half a minute.
RECOMMENDED_POLL_INTERVAL = 2
#: The README's first DAG uploads to ``my-datasets``; the packaged example DAGs to ``clova-datasets``.
DEFAULT_BUCKETS = ("my-datasets", "clova-datasets")


@dataclass
class Stack:
    """The running servers and the environment that points Airflow at them."""

    emulator: ClovaEmulator
    storage: MotoServer
    env: dict[str, str]

    def stop(self) -> None:
        self.emulator.stop()
        self.storage.stop()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_clova.testing.stack",
        description="Start the CLOVA Studio emulator and a local S3-compatible server, create the bucket, "
        "print the AIRFLOW_CONN_* exports and stay up until Ctrl-C.",
    )
    default_buckets = ", ".join(DEFAULT_BUCKETS)
    parser.add_argument("--bucket", action="append", help=f"bucket to create, repeatable (default: {default_buckets})")
    parser.add_argument("--env-file", type=Path, help="also write the exports to this file (source it with '.')")
    parser.add_argument("--time-scale", type=float, default=0.01, help="emulated durations x this (default 0.01)")
    parser.add_argument("--emulator-port", type=int, default=0, help="emulator port (default: a free one)")
    parser.add_argument("--s3-port", type=int, default=0, help="S3 server port (default: a free one)")
    parser.add_argument("--conn-id", default="clova_studio_default", help="CLOVA Studio connection id")
    parser.add_argument(
        "--object-storage-conn-id", default="ncloud_object_storage", help="Object Storage (aws) connection id"
    )
    return parser.parse_args(argv)


def connection_env(
    emulator: ClovaEmulator, storage: MotoServer, *, conn_id: str, object_storage_conn_id: str
) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` values: a Bearer connection to the emulator, an ``aws`` one to the S3 server."""
    clova = {"conn_type": "clova_studio", "host": emulator.url, "password": emulator.api_key}
    storage_conn = {
        "conn_type": "aws",
        "login": storage.access_key,
        "password": storage.secret_key,
        "extra": {"endpoint_url": storage.endpoint, "region_name": OBJECT_STORAGE_REGION},
    }
    return {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(clova),
        f"AIRFLOW_CONN_{object_storage_conn_id.upper()}": json.dumps(storage_conn),
    }


def start_stack(
    *,
    buckets: Sequence[str] = DEFAULT_BUCKETS,
    time_scale: float = 0.01,
    emulator_port: int = 0,
    s3_port: int = 0,
    conn_id: str = "clova_studio_default",
    object_storage_conn_id: str = "ncloud_object_storage",
) -> Stack:
    """Start both servers and create the buckets; on any failure nothing is left running."""
    storage = start_moto_server(port=s3_port)
    storage.access_key, storage.secret_key, storage.region = S3_ACCESS_KEY, S3_SECRET_KEY, OBJECT_STORAGE_REGION
    try:
        for bucket in buckets:
            storage.create_bucket(bucket)
        emulator = start_emulator(
            object_storage_endpoint=storage.endpoint,
            time_scale=time_scale,
            port=emulator_port,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            api_key=API_KEY,
        )
    except BaseException:
        storage.stop()
        raise
    env = connection_env(emulator, storage, conn_id=conn_id, object_storage_conn_id=object_storage_conn_id)
    return Stack(emulator=emulator, storage=storage, env=env)


def exports(env: dict[str, str]) -> str:
    """``export NAME='value'`` lines a POSIX shell can source."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())


def describe(stack: Stack, buckets: Sequence[str], time_scale: float, out: TextIO) -> None:
    """What is running and the one setting an offline run wants changed, for the person at the terminal."""
    print(
        f"CLOVA Studio emulator  {stack.emulator.url}  (durations x{time_scale:g}; log {stack.emulator.log_path})",
        file=out,
    )
    print(
        f"S3 Object Storage      {stack.storage.endpoint}  (bucket {', '.join(buckets)} in {OBJECT_STORAGE_REGION})",
        file=out,
    )
    print(
        f"Tuning waits poll every poll_interval seconds (30 by default); offline a training ends in seconds, "
        f"so pass poll_interval={RECOMMENDED_POLL_INTERVAL} to ClovaStudioTuningOperator to see it at once.",
        file=out,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    buckets = args.bucket or list(DEFAULT_BUCKETS)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stack = start_stack(
        buckets=buckets,
        time_scale=args.time_scale,
        emulator_port=args.emulator_port,
        s3_port=args.s3_port,
        conn_id=args.conn_id,
        object_storage_conn_id=args.object_storage_conn_id,
    )
    try:
        describe(stack, buckets, args.time_scale, sys.stderr)
        text = exports(stack.env)
        if args.env_file:
            args.env_file.write_text(text, encoding="utf-8")
            shown = str(args.env_file)
            shown = shown if shown.startswith(("/", ".")) else f"./{shown}"
            print(f"Wrote {shown}; in the shell that runs Airflow: . {shown}", file=sys.stderr)
        sys.stdout.write(text)
        print(READY_LINE, flush=True)
        while not stop.wait(1.0):
            if stack.emulator.process.poll() is not None or stack.storage.process.poll() is not None:
                print("a server of the stack exited; stopping", file=sys.stderr)
                return 1
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
