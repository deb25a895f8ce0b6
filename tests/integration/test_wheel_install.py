"""The built wheel on its own: a fresh virtualenv, no repository on ``sys.path``, runs a packaged
example DAG against the packaged offline stack, with the README's command.

``uv build`` makes the wheel; ``uv pip install --offline`` installs it with the ``emulator`` extra
from uv's cache (tests have no network; the cache holds what ``make venv`` downloaded).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs_blocks import ROOT, under
from tests.integration.test_docs_commands import OFFLINE, Shell, stack_env, stop

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SUMMARY = "CLOVA_PIPELINE_SUMMARY "


def _uv() -> str:
    found = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    if not Path(found).exists():
        pytest.skip("uv is not installed (make venv installs it)")
    return found


def test_wheel_alone_runs_a_packaged_example_dag(tmp_path: Path) -> None:
    uv = _uv()
    dist, venv, cwd = tmp_path / "dist", tmp_path / "venv", tmp_path / "reader"
    cwd.mkdir()
    built = subprocess.run(
        [uv, "build", "--wheel", "--offline", "--out-dir", str(dist)], cwd=ROOT, capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("airflow_provider_clova-*.whl")
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, cwd=cwd)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [uv, "pip", "install", "-q", "--offline", "--python", str(python), f"{wheel}[emulator]"],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHONPATH", "VIRTUAL_ENV"))}
    env.update(
        {
            "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(tmp_path / "home"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
            "CLOVA_EXAMPLE_POLL_INTERVAL": "2",
            "PYTHONWARNINGS": "ignore",
        }
    )
    reader = Shell(cwd, env)
    where = reader.run("python -c 'import airflow_provider_clova as p; print(p.__file__)'", source_stack=False)
    assert where.stdout.strip().startswith(str(venv)), where.stdout  # the wheel's copy, not the repository
    migrate = reader.run("airflow db migrate", source_stack=False)
    assert migrate.returncode == 0, migrate.stdout[-3000:]

    stack, _ = reader.serve(under(OFFLINE, "sh")[0].commands()[0])
    try:
        (command,) = [c for b in under(OFFLINE, "sh") for c in b.commands() if "clova_tuning_pipeline" in c]
        run = reader.run(command)
        assert run.returncode == 0, run.stdout[-6000:]
        summary = [line for line in run.stdout.splitlines() if line.startswith(SUMMARY)]
        assert len(summary) == 1, run.stdout[-6000:]
        assert '"status": "SUCCEEDED"' in summary[0]
        # the DAG file came from the installed package
        assert re.search(re.escape(str(venv)) + r".*example_dags", run.stdout), run.stdout[-3000:]
        assert "AIRFLOW_CONN_NCLOUD_OBJECT_STORAGE" in stack_env(reader)
    finally:
        stop(stack)
