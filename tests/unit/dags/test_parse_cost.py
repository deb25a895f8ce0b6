"""A DAG file that uses the provider must parse cheaply: the DAG processor parses it often.

The operator modules and the example DAGs may import Airflow itself, but not the HTTP client,
boto3, tenacity, redis, openai, pyarrow or the emulator's web stack; those load when a task
runs. Airflow 3's Task SDK loads httpx and tenacity itself, so on Airflow 3 the baseline hides
them: the Airflow 2.11 run of this test is the one that guards httpx. Where a module keeps a
library out this way it imports it inside a function, marked ``# lazy: <reason>``
(``tests/unit/test_honest_imports.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
HEAVY = (
    "httpx",
    "boto3",
    "botocore",
    "tenacity",
    "starlette",
    "uvicorn",
    "pendulum.parsing",
    "redis",
    "openai",
    "pyarrow",
)
MODULES = [
    "airflow_provider_clova.operators.tuning",
    "airflow_provider_clova.operators.dataset",
    "airflow_provider_clova.operators.chat",
    "airflow_provider_clova.operators.batch",
    "airflow_provider_clova.operators.embedding",
    "airflow_provider_clova.operators.cleanup",
    "airflow_provider_clova.operators.evaluation",
    "airflow_provider_clova.hooks.clova_studio",
    "airflow_provider_clova.links.console",
    "airflow_provider_clova.sensors.tuning",
    "airflow_provider_clova.triggers.tuning",
    "airflow_provider_clova.assets",
    "airflow_provider_clova.pools",
]


def _loaded_after(code: str) -> list[str]:
    probe = (
        "import sys, json\n"
        f"{code}\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules if m.startswith({HEAVY!r})}})))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def _baseline() -> set[str]:
    """What Airflow itself loads for a DAG with an asset (not the provider's doing).

    Airflow's asset URI handling imports every provider's asset module, and the amazon
    provider's imports boto3, so any DAG with an outlet pays for boto3 whatever its scheme.
    """
    return set(
        _loaded_after(
            "from datetime import datetime\n"
            "from airflow.providers.common.compat.sdk import Asset\n"
            "try:\n    from airflow.sdk import DAG\nexcept ImportError:\n    from airflow import DAG\n"
            "with DAG('baseline', start_date=datetime(2026, 1, 1), schedule=None):\n"
            "    Asset('s3://bucket/key')"
        )
    )


@pytest.mark.slow
def test_operator_modules_import_no_heavy_library() -> None:
    imports = "\n".join(f"import {name}" for name in MODULES)
    assert set(_loaded_after(imports)) - _baseline() == set()


@pytest.mark.slow
@pytest.mark.parametrize(
    "dag_file",
    sorted(p for p in (ROOT / "airflow_provider_clova" / "example_dags").glob("*.py") if p.stem != "__init__"),
    ids=lambda p: p.stem,
)
def test_example_dag_parses_without_heavy_imports(dag_file: Path) -> None:
    code = f"import runpy; runpy.run_path({str(dag_file)!r})"
    assert set(_loaded_after(code)) - _baseline() == set()
