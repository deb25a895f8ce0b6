"""The dataset package is core: importing it must not pull in Airflow or httpx."""

from __future__ import annotations

import subprocess
import sys


def test_import_is_airflow_free() -> None:
    code = (
        "import sys, airflow_provider_clova.datasets as d; "
        "assert d.validate_path and d.validate_stream and d.FAILURE_REASONS; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'httpx', 'boto3', 'pendulum')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_public_api_names() -> None:
    import airflow_provider_clova.datasets as datasets

    for name in (
        "validate_path",
        "validate_stream",
        "DatasetReport",
        "DatasetProblem",
        "FAILURE_REASONS",
        "DEFAULT_MAX_BYTES",
    ):
        assert hasattr(datasets, name), name
