"""The tuning workflow against real servers: the bundled emulator (subprocess) reading datasets
from a moto S3 server (subprocess), with the provider's real hook, operator, trigger and sensor.

One emulator serves the whole package (``--time-scale 0.01``: WAIT 0.3 s, a step 20 ms), reset
with its faults cleared before each test; each test gets a fresh bucket. Connections come from
environment variables, exactly as a user's CI would set them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import pytest

from airflow_provider_clova.testing.servers import ClovaEmulator, MotoServer, start_emulator

TIME_SCALE = 0.01
#: 30 s emulated, the provider's default poll_interval, at TIME_SCALE
POLL = 30 * TIME_SCALE
OBJ_CONN_ID = "ncloud_object_storage"
CLOVA_CONN_ID = "clova_studio_default"
SAMPLE = (resources.files("airflow_provider_clova.datasets") / "samples" / "tuning_sample.jsonl").read_bytes()
#: passes nothing but the extension and size checks: the service fails it with file.format
COLUMN_ORDER = b"".join(
    json.dumps({"C_ID": i, "System_Prompt": "", "T_ID": 0, "Text": f"q{i}", "Completion": f"a{i}"}).encode() + b"\n"
    for i in range(120)
)


@pytest.fixture(scope="package")
def tuning_emulator(moto_server: MotoServer) -> Iterator[ClovaEmulator]:
    emulator = start_emulator(object_storage_endpoint=moto_server.endpoint, time_scale=TIME_SCALE)
    yield emulator
    emulator.stop()


@pytest.fixture
def emulator(tuning_emulator: ClovaEmulator) -> ClovaEmulator:
    tuning_emulator.reset()
    tuning_emulator.clear_faults()
    return tuning_emulator


@pytest.fixture
def bucket(moto_bucket: str) -> str:
    return moto_bucket


@pytest.fixture
def put(moto_server: MotoServer, bucket: str) -> Callable[[str, bytes], str]:
    def put(key: str, body: bytes) -> str:
        moto_server.s3_client().put_object(Bucket=bucket, Key=key, Body=body)
        return key

    return put


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch, emulator: ClovaEmulator, moto_server: MotoServer) -> None:
    """Both connections by environment variable (the CLOVA one with a real secret).

    The CLOVA connection holds IAM keys: the tuning API is where signature v2 is documented, so
    these tests keep the signing path covered end to end.
    """
    monkeypatch.setenv(f"AIRFLOW_CONN_{CLOVA_CONN_ID.upper()}", emulator.conn_json("apigw_v2"))
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{OBJ_CONN_ID.upper()}",
        moto_server.conn_json(),
    )


def created(emulator: ClovaEmulator) -> list[dict[str, Any]]:
    return list(emulator.stats()["tuning_tasks_created"])


def requests(emulator: ClovaEmulator, route: str) -> dict[str, int]:
    return dict(emulator.stats()["requests"].get(route, {}))
