"""Pool specs, shares, the command line, and a real ``airflow pools import``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from airflow_provider_clova import pools
from airflow_provider_clova.client.errors import ClovaStudioConfigError
from airflow_provider_clova.client.limits import lookup_budget, table_models


def test_pool_names() -> None:
    assert pools.pool_name("HCX-005", "test") == "clova_hcx_005_test"
    assert pools.pool_name("HCX-DASH-002", "service") == "clova_hcx_dash_002_service"
    assert pools.pool_name("hcx-005") == "clova_hcx_005_test"
    with pytest.raises(ClovaStudioConfigError):
        pools.pool_name("HCX-005", "prod")  # type: ignore[arg-type]


def test_specs_have_the_shape_airflow_pools_import_reads() -> None:
    specs = pools.pool_specs("test")
    assert set(specs) == {pools.pool_name(model, "test") for model in table_models()}
    for spec in specs.values():
        assert set(spec) == {"slots", "description", "include_deferred"}
        assert isinstance(spec["slots"], int) and spec["slots"] == pools.DEFAULT_POOL_SLOTS
        assert spec["include_deferred"] is False
        assert "extra.pool_slots" in spec["description"]
    assert "60 QPM / 60000 TPM" in specs["clova_hcx_005_test"]["description"]
    json.dumps(specs)  # plain JSON


def test_specs_follow_overrides_slots_and_models() -> None:
    overrides = {"HCX-005": {"qpm": 2}, "HCX-NEW": {"qpm": 30, "tpm": 9_000}}
    specs = pools.pool_specs("service", overrides, slots=6)
    assert specs["clova_hcx_005_service"]["slots"] == 2  # never more slots than QPM
    assert specs["clova_hcx_new_service"]["slots"] == 6  # a model only the overrides name
    assert specs["clova_hcx_003_service"]["slots"] == 6
    only = pools.pool_specs("test", models=["HCX-003"])
    assert list(only) == ["clova_hcx_003_test"]
    with pytest.raises(ClovaStudioConfigError, match="pool_slots"):
        pools.pool_specs("test", slots=0)
    with pytest.raises(ClovaStudioConfigError, match="HCX-005"):
        pools.pool_specs("test", {"HCX-005": {"qpm": -1}})


@pytest.mark.parametrize("slots", [None, 1, 3, 4, 7, 500])
@pytest.mark.parametrize("model", ["HCX-005", "HCX-003", "LK-B", "HCX-NEW"])
def test_shares_of_a_full_pool_add_up_to_at_most_the_budget(model: str, slots: int | None) -> None:
    size = pools.pool_size(model, "test", None, slots)
    # any mix of running tasks that fits the pool (the scheduler's guarantee) ...
    for taken in ([1] * size, [size], [2] * (size // 2) + [1] * (size % 2)):
        shares = [Fraction(pools.share_for_pool(model, "test", n, None, slots=slots)) for n in taken]
        assert sum(shares) <= 1 + Fraction(1, 10**9)
    # ... and every slot is entitled to at least one request per minute
    qpm = lookup_budget(model, "test").qpm
    assert pools.share_for_pool(model, "test", 1, None, slots=slots) * qpm >= 1 - 1e-9


def test_share_for_pool() -> None:
    assert pools.share_for_pool("HCX-005", "test", 1) == 0.25
    assert pools.share_for_pool("HCX-005", "test", 2) == 0.5
    assert pools.share_for_pool("HCX-005", "test", 9) == 1.0
    assert pools.share_for_pool("HCX-005", "test", 1, slots=10) == 0.1
    assert pools.share_for_pool("HCX-005", "test", 1, {"HCX-005": {"qpm": 2}}, slots=10) == 0.5
    with pytest.raises(ClovaStudioConfigError, match="pool_slots"):
        pools.share_for_pool("HCX-005", "test", 0)


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_provider_clova.pools", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )


def test_nothing_here_imports_airflow_at_module_level() -> None:
    code = (
        "import sys\n"
        "import airflow_provider_clova.pools, airflow_provider_clova.client.limiter\n"
        "import airflow_provider_clova.client.limits, airflow_provider_clova.client.tokens\n"
        "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_cli_export_prints_the_specs() -> None:
    done = _run_cli("export", "--app-type", "service", "--slots", "8", "--model", "HCX-005")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == pools.pool_specs("service", slots=8, models=["HCX-005"])


def test_cli_reports_bad_input_without_a_traceback() -> None:
    done = _run_cli("export", "--limits", '{"HCX-005": {"qpm": "many"}}')
    assert done.returncode == 2
    assert "HCX-005" in done.stderr and "qpm" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_connection_settings_from_an_environment_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"app_type": "service", "limits": {"HCX-005": {"qpm": 3}}, "pool_slots": 6}
    conn = {"conn_type": "clova_studio", "host": "http://127.0.0.1:8765", "password": "KEY", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_CLOVA_POOLS_TEST", json.dumps(conn))
    settings = pools.connection_settings("clova_pools_test")
    assert settings == {"app_type": "service", "limits": {"HCX-005": {"qpm": 3}}, "pool_slots": 6}
    with pytest.raises(ClovaStudioConfigError, match="clova_pools_missing"):
        pools.connection_settings("clova_pools_missing")


def _airflow_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
    )
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    return env


def _airflow(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "airflow", *args], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout


@pytest.mark.integration
@pytest.mark.slow
def test_real_airflow_pools_import_accepts_and_updates_the_pools(tmp_path: Path) -> None:
    env = _airflow_env(tmp_path)
    _airflow(env, "db", "migrate")

    def exported() -> dict[str, dict[str, object]]:
        out = tmp_path / "out.json"
        _airflow(env, "pools", "export", str(out))
        return json.loads(out.read_text())

    specs = pools.sync_pools("test", env=env)
    found = exported()
    for name, spec in specs.items():
        assert found[name]["slots"] == spec["slots"]
        assert found[name]["description"] == spec["description"]
        assert found[name]["include_deferred"] is False

    # syncing again with another size updates the same pools in place
    conn = {"conn_type": "clova_studio", "password": "KEY", "extra": {"pool_slots": 2, "app_type": "test"}}
    env["AIRFLOW_CONN_CLOVA_SYNC_TEST"] = json.dumps(conn)
    done = _run_cli("sync", "--conn-id", "clova_sync_test", "--model", "HCX-005", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "clova_hcx_005_test: 2 slots" in done.stdout
    assert exported()["clova_hcx_005_test"]["slots"] == 2

    # and a failed import is reported, not swallowed
    with pytest.raises(RuntimeError, match="pools import"):
        pools.sync_pools("test", env=env, airflow_command=[sys.executable, "-c", "import sys; sys.exit(3)"])
