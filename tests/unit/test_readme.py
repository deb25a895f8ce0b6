"""The README's troubleshooting table covers every code the errors module has a fix for."""

from __future__ import annotations

import re
from pathlib import Path

from airflow_provider_clova.client.errors import CODE_HINTS
from airflow_provider_clova.datasets import FAILURE_REASONS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def test_every_error_code_is_in_the_troubleshooting_table() -> None:
    table = _section("Troubleshooting by error code")
    listed = set(re.findall(r"\b\d{3,5}\b", table))
    assert set(CODE_HINTS) - listed == set()


def test_every_failure_reason_is_in_the_datasets_table() -> None:
    table = _section("Tuning datasets")
    assert {code for code in FAILURE_REASONS if f"`{code}`" not in table} == set()


def test_first_dag_parses_on_this_airflow(tmp_path: Path) -> None:
    # The README's first DAG, exactly as printed, loads on Airflow 3 and (its import fallback) 2.11.
    import runpy

    from tests.docs_blocks import under

    (block,) = under("A first DAG", "python")
    path = tmp_path / "support_bot_tuning.py"
    path.write_text(block.code)
    namespace = runpy.run_path(str(path))
    from airflow_provider_clova.operators.tuning import ClovaStudioTuningOperator

    tune = namespace["tune"]
    assert isinstance(tune, ClovaStudioTuningOperator)
    assert tune.dag is not None and tune.dag.dag_id == "support_bot_tuning"
    assert {t.task_id for t in tune.dag.tasks} == {"upload", "tune", "ask"}
