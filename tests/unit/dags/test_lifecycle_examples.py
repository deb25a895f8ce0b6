"""The model-lifecycle examples: the retraining DAG's promotion rule, its approval step and the
2.11 fallback without it, the sweep's mapping, and the evaluation sample the emulator answers."""

from __future__ import annotations

import json
import sys
from importlib import resources
from typing import Any

import pytest

from tests.unit.tuning.test_example_dags import load  # a fresh module each call

SAMPLES = resources.files("airflow_provider_clova.datasets") / "samples"


def evaluation(passed: bool, champion: str | None = "old") -> dict[str, Any]:
    candidates = {"challenger": {"tuning_task_id": "new"}}
    if champion:
        candidates["champion"] = {"tuning_task_id": champion}
    return {"passed": passed, "candidates": candidates}


@pytest.mark.parametrize(
    ("passed", "approval", "champion", "expected"),
    [
        (True, {"chosen_options": ["Promote the challenger"]}, "old", {"promote": "new", "delete": "old"}),
        (True, {"chosen_options": ["Keep the champion"]}, "old", {"promote": None, "delete": "new"}),
        (False, None, "old", {"promote": None, "delete": "new"}),
        (True, None, "old", {"promote": "new", "delete": "old"}),  # Airflow 2.11: the gate alone
        (True, {"chosen_options": ["Promote the challenger"]}, None, {"promote": "new", "delete": None}),
    ],
)
def test_promotion_needs_the_gate_and_the_person(
    passed: bool, approval: dict[str, Any] | None, champion: str | None, expected: dict[str, Any]
) -> None:
    decide = load("clova_scheduled_retraining").decide_promotion
    assert decide(evaluation(passed, champion), approval) == expected


def test_retraining_asks_a_person_between_evaluation_and_promotion() -> None:
    pytest.importorskip("airflow.providers.standard.operators.hitl")
    dag = load("clova_scheduled_retraining").dag
    approve = dag.get_task("approve_promotion")
    assert type(approve).__name__ == "HITLOperator"
    assert "['table']" in approve.body and approve.defaults == ["Keep the champion"]
    assert dag.get_task("settle").upstream_task_ids == {"evaluate", "gate", "approve_promotion"}
    evaluate = dag.get_task("evaluate")
    assert evaluate.champion == "champion" and evaluate.must_beat > 0 and evaluate.min_score > 0
    assert "clova_active_tuning_task_id" in evaluate.candidates["champion"]["tuning_task_id"]
    assert dag.get_task("retrain").model == "HCX-003"


def test_without_human_in_the_loop_the_gate_alone_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    """What Airflow 2.11 (no ``airflow.providers.standard.operators.hitl``) gets."""
    monkeypatch.setitem(sys.modules, "airflow.providers.standard.operators.hitl", None)
    module = load("clova_scheduled_retraining")
    assert module.HITLOperator is None
    dag = module.dag
    assert "approve_promotion" not in dag.task_dict and "gate" not in dag.task_dict
    assert dag.get_task("settle").upstream_task_ids == {"evaluate"}
    assert dag.get_task("delete_replaced_model").upstream_task_ids == {"settle"}


def test_sweep_maps_tuning_over_the_grid_and_deletes_the_losers() -> None:
    module = load("clova_tuning_sweep")
    dag = module.dag
    tune = dag.get_task("tune")
    assert type(tune).__name__ == "MappedOperator"
    assert tune.expand_input.value == {"train_epochs": module.EPOCHS, "learning_rate": module.LEARNING_RATES}
    evaluate = dag.get_task("evaluate")
    assert evaluate.champion is None and evaluate.candidates.operator is tune
    assert type(dag.get_task("delete_loser")).__name__ == "MappedOperator"
    assert dag.get_task("delete_loser").upstream_task_ids == {"losers"}


def test_the_evaluation_sample_asks_what_the_tuning_sample_teaches() -> None:
    """So the emulator's tuned model (a training row's completion for its exact text) answers it."""
    taught = {}
    for line in (SAMPLES / "tuning_sample.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        taught.setdefault(row["Text"], []).append(row["Completion"])
    rows = [json.loads(line) for line in (SAMPLES / "evaluation_sample.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 20 and len({r["id"] for r in rows}) == len(rows)
    assert any(any("\uac00" <= c <= "\ud7a3" for c in r["reference"]) for r in rows)  # Korean rows too
    for row in rows:
        question = row["messages"][-1]["content"]
        assert taught[question] == [row["reference"]], row["id"]
