"""The public command line and the pytest fixtures, against the real subprocess server."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_clova.testing.pytest_plugin import ClovaEmulator, MotoServer
from airflow_provider_clova.testing.waiting import wait_until
from tests.emulator.conftest import create_body, jsonl, rows, signed_headers

pytestmark = pytest.mark.integration

MODULE = "airflow_provider_clova.testing.emulator"
READY = re.compile(r"CLOVA Studio emulator listening on http://127\.0\.0\.1:(\d+)\n")


def test_command_line(tmp_path: Path) -> None:
    (tmp_path / "limits.json").write_text(json.dumps({"HCX-005": {"qpm": 2, "tpm": 90000}}))
    (tmp_path / "faults.json").write_text(json.dumps({"routes": {"tuning.list": {"sequence": ["503"]}}}))
    (tmp_path / "accounts.json").write_text(
        json.dumps({"accounts": [{"name": "team-b", "api_keys": [{"key": "nv-team-b-key", "app_type": "service"}]}]})
    )
    argv = [
        sys.executable, "-m", MODULE, "--host", "127.0.0.1", "--port", "0",
        "--access-key", "AK-cli", "--secret-key", "sk-very-secret", "--api-key", "nv-cli-secret-key",
        "--object-storage-endpoint", "http://127.0.0.1:9", "--limits", str(tmp_path / "limits.json"),
        "--rate-window-seconds", "30", "--time-scale", "0.5", "--accounts", str(tmp_path / "accounts.json"),
        "--faults", str(tmp_path / "faults.json"), "--seed", "3",
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = READY.fullmatch(line)
        assert found, line
        url = f"http://127.0.0.1:{found.group(1)}"
        # Accepting requests as soon as the line is out: no sleep, no retry.
        stats = httpx.get(f"{url}/_emulator/stats").json()
        assert (stats["time_scale"], stats["rate_window_seconds"]) == (0.5, 30.0)
        assert stats["limit_overrides"] == {"HCX-005": {"qpm": 2, "tpm": 90000}}
        assert stats["budgets"]["HCX-005"]["test"] == {"qpm": 2, "tpm": 90000}
        assert stats["faults"]["seed"] == 3
        target = "/tuning/v2/tasks?page=0&size=5"
        signed = signed_headers("GET", target, access_key="AK-cli", secret_key="sk-very-secret")
        assert httpx.get(url + target, headers=signed).status_code == 503  # from the faults file
        assert httpx.get(url + target, headers=signed).status_code == 200
        chat = {"messages": [{"role": "user", "content": "hi"}]}
        team_b = {"Authorization": "Bearer nv-team-b-key"}
        assert httpx.post(f"{url}/serviceapp/v1/chat-completions/HCX-003", json=chat, headers=team_b).status_code == 200
        cli_key = {"Authorization": "Bearer nv-cli-secret-key"}
        codes = [
            httpx.post(f"{url}/v3/chat-completions/HCX-005", json=chat, headers=cli_key).status_code for _ in range(3)
        ]
        assert codes == [200, 200, 429]
    finally:
        process.terminate()
        out, err = process.communicate(timeout=15)
    assert out == ""  # exactly one line on stdout
    # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught
    assert process.returncode in (0, -signal.SIGTERM)
    assert "Finished server process" in err
    assert "GET /tuning/v2/tasks" in err  # requests are logged ...
    for secret in ("sk-very-secret", "nv-cli-secret-key", "nv-team-b-key"):
        assert secret not in err  # ... without a key or a signature


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--time-scale", "0"], "--time-scale"),
        (["--limits", '{"HCX-005": {"qpm": "x"}}'], "qpm"),
        (["--faults", '{"routes": {"chat.v9": {}}}'], "unknown route"),
        (["--accounts", "/nonexistent.json"], "--accounts"),
        (["--tunable-models", "HCX-003,HCX-999"], "--tunable-models"),
    ],
)
def test_command_line_rejects_bad_flags(flags: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", MODULE, "--port", "0", *flags], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and message in done.stderr and done.stdout == ""


def test_clova_emulator_fixture(clova_emulator: ClovaEmulator) -> None:
    assert clova_emulator.url.startswith("http://127.0.0.1:")
    assert (clova_emulator.access_key, clova_emulator.secret_key, clova_emulator.api_key) == ("AK", "SK", "KEY")
    assert clova_emulator.stats()["requests"] == {}
    clova_emulator.set_faults(chat__v3={"sequence": ["504"]})
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {clova_emulator.api_key}"}
    assert (
        httpx.post(f"{clova_emulator.url}/v3/chat-completions/HCX-005", json=chat, headers=headers).status_code == 504
    )
    assert clova_emulator.stats()["requests"]["chat.v3"] == {"504": 1}
    clova_emulator.set_faults({"routes": {"chat.v3": {"sequence": ["500"]}}})
    clova_emulator.clear_faults()
    assert (
        httpx.post(f"{clova_emulator.url}/v3/chat-completions/HCX-005", json=chat, headers=headers).status_code == 200
    )
    clova_emulator.reset()
    assert clova_emulator.stats()["requests_total"] == 0
    # Bearer by default: the API key works on every API; IAM keys only on the tuning API, and
    # "apigw_v2+bearer" puts the API key next to them for everything else.
    assert json.loads(clova_emulator.conn_json()) == {
        "conn_type": "clova_studio",
        "host": clova_emulator.url,
        "password": "KEY",
    }
    assert json.loads(clova_emulator.conn_json("apigw_v2")) == {
        "conn_type": "clova_studio",
        "host": clova_emulator.url,
        "login": "AK",
        "password": "SK",
    }
    assert json.loads(clova_emulator.conn_json("apigw_v2+bearer")) == {
        "conn_type": "clova_studio",
        "host": clova_emulator.url,
        "login": "AK",
        "password": "SK",
        "extra": {"api_key": "KEY"},
    }
    env = clova_emulator.env(rate_window_seconds=5)
    assert json.loads(env["AIRFLOW_CONN_CLOVA_STUDIO_DEFAULT"])["extra"] == {"rate_window_seconds": 5}
    assert "SK" not in repr(clova_emulator).replace("AK", "") and "KEY" not in repr(clova_emulator)


def test_fixture_is_reset_between_tests(clova_emulator: ClovaEmulator) -> None:
    assert clova_emulator.stats()["requests_total"] == 0  # the previous test's traffic is gone
    assert clova_emulator.stats()["faults"]["spec"] == {}


@pytest.mark.slow
def test_connection_uri_parses_in_airflow(clova_emulator: ClovaEmulator) -> None:
    from airflow.models.connection import Connection

    conn = Connection(conn_id="clova", uri=clova_emulator.connection_uri("apigw_v2", app_type="test"))
    assert (conn.conn_type, conn.host, conn.login, conn.password) == ("clova_studio", clova_emulator.url, "AK", "SK")
    bearer = Connection(conn_id="clova", uri=clova_emulator.connection_uri())
    assert (bearer.login, bearer.password) in (("", "KEY"), (None, "KEY"))
    assert conn.port is None and conn.extra_dejson == {"app_type": "test"}


def test_factory_with_moto(
    clova_emulator_factory: Callable[..., ClovaEmulator], moto_server: MotoServer, bucket: str
) -> None:
    emulator = clova_emulator_factory(
        object_storage_endpoint=moto_server.endpoint,
        time_scale=0.001,
        limits={"HCX-003": {"qpm": 5}},
        rate_window_seconds=2,
        faults={"routes": {"tuning.create": {"sequence": [{"kind": "504", "when": "after"}]}}},
    )
    other = clova_emulator_factory()
    assert other.url != emulator.url
    moto_server.s3_client().put_object(Bucket=bucket, Key="train.jsonl", Body=jsonl(rows()))
    body = json.dumps(create_body(bucket, "train.jsonl", model="HCX-003", trainEpochs=1)).encode()
    headers = {**signed_headers("POST", "/tuning/v2/tasks"), "Content-Type": "application/json"}
    lost = httpx.post(f"{emulator.url}/tuning/v2/tasks", content=body, headers=headers)
    assert lost.status_code == 504  # ... but the task was made: reconcile by listing
    listing = "/tuning/v2/tasks?page=0&size=100"
    tasks = httpx.get(emulator.url + listing, headers=signed_headers("GET", listing)).json()["result"]["content"]
    assert [t["id"] for t in tasks] == [t["id"] for t in emulator.stats()["tuning_tasks_created"]]
    task_id = tasks[0]["id"]

    def status() -> Any:
        path = f"/tuning/v2/tasks/{task_id}"
        task = httpx.get(emulator.url + path, headers=signed_headers("GET", path)).json()["result"]
        return task["status"] in ("SUCCEEDED", "FAILED") and task

    assert wait_until(status)["status"] == "SUCCEEDED"
    path = f"/v2/tasks/{task_id}/chat-completions"
    answer = httpx.post(  # chat takes the API key (signature v2 is for the tuning API only)
        emulator.url + path,
        json={"messages": [{"role": "user", "content": "question 42"}]},
        headers={"Authorization": f"Bearer {emulator.api_key}"},
    )
    assert answer.json()["result"]["message"]["content"] == "answer 42"
    assert emulator.stats()["windows"][0]["budget"]["qpm"] == 5


def test_ready_line_means_ready(clova_emulator_factory: Callable[..., ClovaEmulator]) -> None:
    started = time.monotonic()
    emulator = clova_emulator_factory()
    assert time.monotonic() - started < 30
    assert httpx.get(f"{emulator.url}/_emulator/stats").status_code == 200  # first try, no retry
    emulator.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{emulator.url}/_emulator/stats")


def test_documented_command_runs_as_written() -> None:
    """The start command in docs/emulator.md parses into a valid configuration, file-free."""
    import shlex

    from airflow_provider_clova.testing.emulator.cli import build_parser, config_from_args

    doc = (Path(__file__).parents[2] / "docs" / "emulator.md").read_text("utf-8")
    section = doc.split("### Start it", 1)[1]
    block = next(b for b in section.split("\n\n") if b.lstrip().startswith(f"python -m {MODULE} "))
    argv = shlex.split(block.replace("\\\n", " "))
    assert argv[:3] == ["python", "-m", MODULE]
    config = config_from_args(build_parser().parse_args(argv[3:]))
    assert config.limits == {"HCX-003": {"qpm": 60, "tpm": 10000}}
    assert config.tunable_models == ("HCX-003",) and config.rate_window_seconds == 60.0
