"""Shared helpers for the emulator's tests: in-process servers, hand-made signatures, datasets.

Signatures are computed here from the documented string-to-sign, never with the emulator's or
the client's own code, so a test fails if either drifts from the documentation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_clova.testing.emulator import Account, EmulatorConfig, ServerThread, default_account
from airflow_provider_clova.testing.waiting import wait_until

FAST = 0.001  # --time-scale for tests: WAIT 0.03 s, a training step 2 ms


def signed_headers(
    method: str, target: str, *, access_key: str = "AK", secret_key: str = "SK", timestamp: str | None = None
) -> dict[str, str]:
    """Signature v2 headers: base64(HMAC-SHA256(secret, METHOD + " " + target + "\\n" + ts + "\\n" + ak))."""
    ts = timestamp if timestamp is not None else str(int(time.time() * 1000))
    message = method + " " + target + "\n" + ts + "\n" + access_key
    signature = base64.b64encode(hmac.new(secret_key.encode(), message.encode(), hashlib.sha256).digest()).decode()
    return {"X-NCP-APIGW-TIMESTAMP": ts, "X-NCP-IAM-ACCESS-KEY": access_key, "X-NCP-APIGW-SIGNATURE-V2": signature}


BEARER = {"Authorization": "Bearer KEY"}


class Api:
    """A thin httpx wrapper bound to one in-process emulator."""

    def __init__(self, server: ServerThread) -> None:
        self.server = server
        self.url = server.url
        self.http = httpx.Client(base_url=server.url, timeout=30)

    @property
    def emulator(self) -> Any:
        return self.server.emulator

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.http.post(path, json=body, headers=BEARER if headers is None else headers)

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.http.get(path, headers=BEARER if headers is None else headers)

    def delete(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.http.delete(path, headers=BEARER if headers is None else headers)

    def stats(self) -> dict[str, Any]:
        return self.http.get("/_emulator/stats").json()

    def task(self, task_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = self.get(f"/tuning/v2/tasks/{task_id}", headers)
        assert response.status_code == 200, response.text
        return response.json()["result"]

    def wait_done(self, task_id: str, timeout: float = 15.0) -> dict[str, Any]:
        return wait_until(lambda: (t := self.task(task_id))["status"] in ("SUCCEEDED", "FAILED") and t, timeout=timeout)


OTHER = Account(
    name="other",
    access_keys={"AK2": ("SK2", "test")},
    api_keys={"KEY2": "test", "SVC2": "service"},
    legacy_keys={("STUDIO2", "GW2"): "test", ("STUDIOSVC", "GWSVC"): "service"},
)


@pytest.fixture
def make_api() -> Iterator[Callable[..., Api]]:
    """Start in-process emulators (real uvicorn on a free port) with config keywords."""
    started: list[Api] = []

    def make(clock: Callable[[], float] = time.time, **kwargs: Any) -> Api:
        kwargs.setdefault("accounts", (default_account(), OTHER))
        kwargs.setdefault("time_scale", FAST)
        api = Api(ServerThread(EmulatorConfig(**kwargs), clock=clock).start())
        started.append(api)
        return api

    yield make
    for api in started:
        api.http.close()
        api.server.stop()


@pytest.fixture(scope="module")
def shared_api() -> Iterator[Api]:
    """One default emulator per test module (starting one per test would dominate the run)."""
    api = Api(ServerThread(EmulatorConfig(accounts=(default_account(), OTHER), time_scale=FAST)).start())
    yield api
    api.http.close()
    api.server.stop()


@pytest.fixture
def api(shared_api: Api) -> Api:
    """The module's default emulator, reset (tasks, counters, windows, faults) for this test."""
    assert shared_api.http.post("/_emulator/reset").status_code == 200
    return shared_api


@pytest.fixture
def bucket(moto_bucket: str) -> str:
    """A fresh bucket on the session's moto server."""
    return moto_bucket


def rows(count: int = 120, *, prefix: str = "question") -> list[dict[str, Any]]:
    return [
        {"System_Prompt": "", "C_ID": i, "T_ID": 0, "Text": f"{prefix} {i}", "Completion": f"answer {i}"}
        for i in range(count)
    ]


def jsonl(items: list[dict[str, Any]]) -> bytes:
    return ("\n".join(json.dumps(item, ensure_ascii=False) for item in items) + "\n").encode("utf-8")


def create_body(bucket: str, key: str, **fields: Any) -> dict[str, Any]:
    body = {
        "model": "HCX-003",
        "trainingDatasetBucket": bucket,
        "trainingDatasetFilePath": key,
        "trainingDatasetAccessKey": "testing",
        "trainingDatasetSecretKey": "testing",
    }
    body.update(fields)
    return body
