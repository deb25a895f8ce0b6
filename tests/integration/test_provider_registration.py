"""The provider as Airflow sees it: discovered by the CLI, its connection type stored and read
back, and the core importable without Airflow. Each check runs the real ``airflow`` command in
a throw-away AIRFLOW_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

AIRFLOW = Path(sys.executable).parent / "airflow"
TIMEOUT = 240


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "PYTHONWARNINGS": "ignore",
        }
    )
    return env


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(AIRFLOW), *args],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"airflow {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("airflow-home")


@pytest.fixture(scope="module")
def migrated_home(home: Path) -> Path:
    run(home, "db", "migrate")
    return home


def test_airflow_is_installed_next_to_this_python() -> None:
    assert AIRFLOW.exists(), AIRFLOW


def test_providers_list_shows_the_provider(home: Path) -> None:
    result = run(home, "providers", "list", "-o", "json")
    providers = {row["package_name"]: row for row in json.loads(result.stdout)}
    assert "airflow-provider-clova" in providers, sorted(providers)
    from airflow_provider_clova import __version__

    assert providers["airflow-provider-clova"]["version"] == __version__


def test_providers_hooks_lists_the_connection_type(home: Path) -> None:
    result = run(home, "providers", "hooks", "-o", "json")
    rows = [row for row in json.loads(result.stdout) if row.get("connection_type") == "clova_studio"]
    assert rows, result.stdout[-2000:]
    assert rows[0]["class"] == "airflow_provider_clova.hooks.clova_studio.ClovaStudioHook"
    assert rows[0]["package_name"] == "airflow-provider-clova"


def test_connection_add_then_get_keeps_the_type(migrated_home: Path) -> None:
    run(
        migrated_home,
        "connections",
        "add",
        "clova_it",
        "--conn-type",
        "clova_studio",
        "--conn-host",
        "http://127.0.0.1:8765",
        "--conn-login",
        "AK-integration",
        "--conn-password",
        "SK-integration-secret",
        "--conn-extra",
        json.dumps({"app_type": "service", "timeout": 30}),
    )
    result = run(migrated_home, "connections", "get", "clova_it", "-o", "json")
    (conn,) = json.loads(result.stdout)
    assert conn["conn_id"] == "clova_it"
    assert conn["conn_type"] == "clova_studio"
    assert conn["host"] == "http://127.0.0.1:8765"
    assert conn["login"] == "AK-integration"
    # The CLI may hand numbers back as strings; the core reads both.
    assert conn["extra_dejson"]["app_type"] == "service"
    assert float(conn["extra_dejson"]["timeout"]) == 30.0
    from airflow_provider_clova.client.config import config_from_connection

    config = config_from_connection(
        host=conn["host"], login=conn["login"], password=conn["password"], extra=conn["extra_dejson"]
    )
    assert (config.auth_type, config.app_type, config.timeout) == ("apigw_v2", "service", 30.0)


def test_core_client_does_not_import_airflow() -> None:
    code = (
        "import sys, json\n"
        "import airflow_provider_clova.client as c\n"
        "from airflow_provider_clova.client import ClovaStudioClient, AsyncClovaStudioClient, ClientConfig\n"
        "from airflow_provider_clova.client import config_from_connection, TuningTask, RetryPolicy\n"
        "import airflow_provider_clova.client.limiter, airflow_provider_clova.client.limits\n"
        "import airflow_provider_clova.client.tokens\n"
        "cfg = config_from_connection(host=None, login='AK', password='SK', extra=None)\n"
        "ClovaStudioClient(cfg).close()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
