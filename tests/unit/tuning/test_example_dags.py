"""The example DAGs load on this Airflow and their dataset key renders for every kind of run."""

from __future__ import annotations

import importlib.util
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import jinja2
import pytest

EXAMPLES = Path(__file__).resolve().parents[3] / "example_dags"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render(dag: Any, template: str, context: dict[str, Any]) -> str:
    env = dag.get_template_env()
    assert env.undefined is jinja2.StrictUndefined  # a missing name is an error, not ""
    return str(env.from_string(template).render(**context))


@pytest.mark.parametrize("name", ["clova_tuning_pipeline", "clova_scheduled_retraining"])
def test_dataset_key_renders_with_and_without_a_logical_date(name: str) -> None:
    dag = load(name).dag
    upload = dag.get_task("upload_dataset")
    due = SimpleNamespace(run_after=datetime(2026, 3, 5, 3, 0, tzinfo=timezone.utc))
    scheduled = render(dag, upload.key, {"ds_nodash": "20260302", "dag_run": due})
    assert scheduled == "datasets/haneul-support/20260302.jsonl"
    # Airflow 3: a run made by an asset event (or the API) has no logical date, so no ds_nodash
    asset_triggered = render(dag, upload.key, {"dag_run": due})
    assert asset_triggered == "datasets/haneul-support/20260305.jsonl"


@pytest.mark.parametrize("name", ["clova_tuning_pipeline", "clova_scheduled_retraining"])
def test_the_tuning_task_is_deferrable_and_reads_the_uploaded_key(name: str) -> None:
    dag = load(name).dag
    tune = next(t for t in dag.tasks if type(t).__name__ == "ClovaStudioTuningOperator")
    assert tune.deferrable is True
    assert "upload_dataset" in tune.dataset_key and "upload_dataset" in tune.dataset_bucket
    assert tune.outlets, "the tuned model is published as an asset"


@pytest.mark.parametrize("name", ["clova_tuning_pipeline", "clova_scheduled_retraining", "clova_tuning_sweep"])
def test_every_task_retries(name: str) -> None:
    """A worker lost mid-submit (reported by Airflow as a likely OOM) leaves the training running:
    the retry reattaches to it, so the examples must retry."""
    dag = load(name).dag
    assert all(task.retries >= 1 for task in dag.tasks), {task.task_id: task.retries for task in dag.tasks}
