"""ClovaStudioEvaluationOperator with an async client double: per-candidate results, the gate's
pass and fail, the judge path, resume after a crash, row errors, candidates from XCom, lineage."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_clova.client.errors import (
    ClovaStudioBatchFailedError,
    ClovaStudioConfigError,
    ClovaStudioServerError,
)
from airflow_provider_clova.client.models import ChatResult, TokenUsage
from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook
from airflow_provider_clova.operators.evaluation import (
    ClovaStudioEvaluationGateError,
    ClovaStudioEvaluationOperator,
    parse_candidates,
)
from tests.unit.batch._doubles import Killed, write_input

API_KEY = "nv-eval-op-api-key-0123456789abcdef"
QUESTIONS = [(f"q{i}", f"answer number {i}") for i in range(10)]


@pytest.fixture(autouse=True)
def connection(monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"conn_type": "clova_studio", "host": "https://clova.evaltest.invalid", "password": API_KEY}
    body["extra"] = {"auth_type": "bearer"}
    monkeypatch.setenv("AIRFLOW_CONN_CLOVA_STUDIO_DEFAULT", json.dumps(body))


class Client:
    """Answers from ``answers[target][question]`` (target: task id or model); the judge replies ``judge``."""

    def __init__(self, answers: dict[str, dict[str, str]], *, judge: str = "4", kill_after: int | None = None):
        self.answers = answers
        self.judge = judge
        self.kill_after = kill_after
        self.calls: list[tuple[str, str]] = []
        self.fail: set[tuple[str, str]] = set()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def chat_completion(self, messages: list[dict[str, Any]], model: str | None = None, **kw: Any) -> ChatResult:
        target = kw.get("task_id") or model or ""
        text = messages[-1]["content"]
        if self.kill_after is not None and len(self.calls) >= self.kill_after:
            raise Killed(text)
        self.calls.append((target, text))
        await asyncio.sleep(0)
        if (target, text) in self.fail:
            raise ClovaStudioServerError("upstream", http_status=503, code="50000")
        if messages[0].get("role") == "system" and "REFERENCE:" in text:
            content = self.judge
        else:
            content = self.answers.get(target, {}).get(text, "I do not know")
        return ChatResult(content, "assistant", "stop", TokenUsage(len(text), len(content.split())), "v3")


@pytest.fixture
def use(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(client: Client) -> Client:
        async def aget_async_conn(self: ClovaStudioHook) -> Client:
            return client

        monkeypatch.setattr(ClovaStudioHook, "aget_async_conn", aget_async_conn)
        return client

    return install


def eval_set(tmp_path: Path, rows: list[dict[str, Any]] | None = None) -> Path:
    rows = rows or [{"id": f"r{i}", "prompt": q, "reference": ref} for i, (q, ref) in enumerate(QUESTIONS)]
    return write_input(tmp_path / "eval.jsonl", rows)


def good(n: int = len(QUESTIONS)) -> dict[str, str]:
    return {q: ref for q, ref in QUESTIONS[:n]}


def operator(tmp_path: Path, **kwargs: Any) -> ClovaStudioEvaluationOperator:
    kwargs.setdefault("task_id", "evaluate")
    kwargs.setdefault("input_path", str(tmp_path / "eval.jsonl"))
    kwargs.setdefault("output_dir", str(tmp_path / "out"))
    kwargs.setdefault(
        "candidates",
        {
            "champion": {"model": "HCX-003", "tuning_task_id": "oldtask1"},
            "challenger": {"model": "HCX-003", "tuning_task_id": "newtask1"},
        },
    )
    kwargs.setdefault("champion", "champion")
    kwargs.setdefault("max_concurrency", 3)
    return ClovaStudioEvaluationOperator(**kwargs)


def test_template_fields_are_a_tuple_with_the_templated_arguments() -> None:
    fields = ClovaStudioEvaluationOperator.template_fields
    assert isinstance(fields, tuple)
    assert {"input_path", "output_dir", "candidates", "champion", "min_score", "must_beat", "judge_model"} <= set(
        fields
    )


def test_a_better_challenger_passes_and_is_the_winner(tmp_path: Path, use: Any, caplog: Any, capsys: Any) -> None:
    eval_set(tmp_path)
    client = use(Client({"newtask1": good(), "oldtask1": good(3)}))
    caplog.set_level(logging.INFO)
    result = operator(tmp_path, must_beat=0.1, min_score=0.5).execute({})
    assert result["passed"] is True and result["winner"] == "challenger"
    assert result["winner_model"] == {"model": "HCX-003", "tuning_task_id": "newtask1"}
    assert result["losers"] == []  # the champion is never a loser: replacing it is the DAG's call
    challenger, champion = result["candidates"]["challenger"], result["candidates"]["champion"]
    assert challenger["metrics"]["exact_match"] == 1.0 and champion["metrics"]["exact_match"] == 0.3
    assert challenger["metrics"]["rows"] == 10 and challenger["metrics"]["judge"] is None
    assert len(client.calls) == 20  # each candidate answered every row once
    rows = [json.loads(line) for line in Path(challenger["results"]).read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(10)]
    assert rows[0]["answer"] == "answer number 0" and rows[0]["scores"]["token_f1"] == 1.0
    report = Path(result["report"]).read_text()
    assert report.startswith("# Evaluation") and "| challenger (winner) | newtask1 |" in report
    assert "**PASSED**" in report and "## Rows where the candidates differ most" in report
    assert "| candidate | model | rows | ok | failed | exact | contains | regex | F1* | judge 1-5 |" in result["table"]
    log = caplog.text + capsys.readouterr().out  # Airflow 3 logs through structlog to stdout
    assert "challenger (winner)  newtask1" in log and "evaluation PASSED" in log


def test_a_tie_keeps_the_champion_and_is_a_normal_outcome(tmp_path: Path, use: Any) -> None:
    eval_set(tmp_path)
    use(Client({"newtask1": good(), "oldtask1": good()}))
    result = operator(tmp_path, must_beat=0).execute({})
    assert result["passed"] is False and result["winner"] == "champion"
    assert result["best_challenger"] == "challenger"
    assert result["losers"] == ["newtask1"]
    assert "keeping champion champion" in result["reason"] and "does not beat" in result["reason"]


def test_min_score_fails_the_gate_and_fail_on_gate_raises(tmp_path: Path, use: Any) -> None:
    eval_set(tmp_path)
    use(Client({"newtask1": good(4), "oldtask1": {}}))
    with pytest.raises(ClovaStudioEvaluationGateError, match=r"0\.4 < min_score 0\.9") as caught:
        operator(tmp_path, min_score="0.9", metric="exact_match", fail_on_gate=True).execute({})
    assert caught.value.result["passed"] is False
    assert Path(caught.value.result["report"]).read_text().count("NOT PASSED") == 1


def test_without_a_champion_the_best_candidate_wins(tmp_path: Path, use: Any) -> None:
    eval_set(tmp_path)
    use(Client({"t1": good(2), "t2": good(7), "t3": good(5)}))
    tuned = [{"task_id": t, "model": "HCX-003", "name": f"sweep.{t}"} for t in ("t1", "t2", "t3")]
    result = operator(tmp_path, candidates=tuned, champion=None).execute({})
    assert result["winner"] == "t2" and result["passed"] is True
    assert result["losers"] == ["t1", "t3"]


def test_an_unset_champion_is_left_out(tmp_path: Path, use: Any) -> None:
    eval_set(tmp_path)
    client = use(Client({"newtask1": good()}))
    candidates = {"champion": {"tuning_task_id": ""}, "challenger": {"model": "HCX-003", "tuning_task_id": "newtask1"}}
    result = operator(tmp_path, candidates=candidates, must_beat=0.05).execute({})
    assert result["champion"] is None and result["passed"] is True and list(result["candidates"]) == ["challenger"]
    assert {target for target, _ in client.calls} == {"newtask1"}


def test_the_judge_grades_every_answer_through_the_same_client(tmp_path: Path, use: Any) -> None:
    eval_set(tmp_path)
    client = use(Client({"newtask1": good(), "oldtask1": good(5)}, judge="Score: 4"))
    result = operator(tmp_path, judge_model="HCX-005", metric="judge", min_score=3.5).execute({})
    assert ("HCX-005", "q0") not in client.calls
    judged = [text for target, text in client.calls if target == "HCX-005"]
    assert len(judged) == 20 and all("REFERENCE:" in text for text in judged)
    metrics = result["candidates"]["challenger"]["metrics"]
    assert metrics["judge"] == 4.0 and metrics["judged"] == 10
    assert result["passed"] is True
    row = json.loads(Path(result["candidates"]["challenger"]["results"]).read_text().splitlines()[0])
    assert row["judge"] == {"model": "HCX-005", "score": 4, "reply": "Score: 4"}
    # judge tokens are spent and counted with the candidate's
    assert result["candidates"]["challenger"]["tokens"]["charged_tokens"] > 10 * (2 + 8)


def test_an_unreadable_judge_reply_leaves_the_row_unjudged(tmp_path: Path, use: Any) -> None:
    eval_set(tmp_path)
    use(Client({"newtask1": good()}, judge="excellent"))
    result = operator(tmp_path, judge_model="HCX-005", champion=None, candidates=["HCX-003"]).execute({})
    metrics = result["candidates"]["HCX-003"]["metrics"]
    assert metrics["judge"] is None and metrics["judged"] == 0 and metrics["ok"] == 10


def test_the_judge_metric_needs_a_judge_model(tmp_path: Path) -> None:
    with pytest.raises(ClovaStudioConfigError, match="judge_model"):
        operator(tmp_path, metric="judge").execute({})
    with pytest.raises(ClovaStudioConfigError, match="metric='bleu'"):
        operator(tmp_path, metric="bleu").execute({})


def test_a_retry_after_a_crash_resumes_each_candidate(tmp_path: Path, use: Any) -> None:
    eval_set(tmp_path)
    answers = {"newtask1": good(), "oldtask1": good(3)}
    use(Client(answers, kill_after=14))  # dies during the second candidate
    with pytest.raises(Killed):
        operator(tmp_path, max_concurrency=1).execute({})
    assert (tmp_path / "out" / "champion.jsonl").exists()  # the first candidate finished
    assert (tmp_path / "out" / "challenger.jsonl.journal").exists()
    retry = use(Client(answers))
    result = operator(tmp_path, max_concurrency=1).execute({})
    assert len(retry.calls) == 6  # only the challenger's unanswered rows
    assert {target for target, _ in retry.calls} == {"newtask1"}
    assert result["candidates"]["challenger"]["metrics"]["exact_match"] == 1.0
    assert result["candidates"]["champion"]["metrics"]["exact_match"] == 0.3


def test_failed_rows_score_zero_and_too_many_fail_the_task(tmp_path: Path, use: Any) -> None:
    eval_set(tmp_path)
    client = Client({"newtask1": good(), "oldtask1": good()})
    client.fail = {("newtask1", "q1")}
    use(client)
    result = operator(tmp_path, max_failed_rows=1, max_failed_fraction=None).execute({})
    assert result["candidates"]["challenger"]["metrics"]["failed"] == 1
    assert result["candidates"]["challenger"]["metrics"]["exact_match"] == 0.9
    client.fail = {("oldtask1", q) for q, _ in QUESTIONS[:3]}
    with pytest.raises(ClovaStudioBatchFailedError, match=r"past max_failed_rows=1.*a retry sends only"):
        operator(tmp_path, output_dir=str(tmp_path / "again"), max_failed_rows=1).execute({})


def test_bad_rows_are_row_errors_not_crashes(tmp_path: Path, use: Any) -> None:
    rows: list[dict[str, Any]] = [
        {"id": f"r{i}", "prompt": q, "reference": ref} for i, (q, ref) in enumerate(QUESTIONS)
    ]
    rows[2] = {"id": "r2", "prompt": "q2"}  # no reference
    rows[3] = {"id": "r3", "prompt": "q3", "messages": [], "reference": "x"}
    rows[4] = {"id": "r4", "prompt": "q4", "reference": "answer number 4", "pattern": "("}
    eval_set(tmp_path, rows)
    use(Client({"HCX-003": good()}))
    with pytest.raises(ClovaStudioBatchFailedError) as caught:
        operator(tmp_path, candidates=["HCX-003"], champion=None).execute({})
    text = str(caught.value)
    assert "reference is missing" in text and "exactly one of prompt" in text and "regular expression" in text


def test_candidates_parse_dicts_lists_and_json() -> None:
    got = parse_candidates('{"base": "HCX-005", "tuned": {"task_id": "abc", "model": "HCX-003"}}', where="t")
    assert got == {
        "base": {"model": "HCX-005", "tuning_task_id": None},
        "tuned": {"model": "HCX-003", "tuning_task_id": "abc"},
    }
    assert list(parse_candidates([{"label": "x", "model": "HCX-003"}, "HCX-005"], where="t")) == ["x", "HCX-005"]
    with pytest.raises(ClovaStudioConfigError, match="not JSON"):
        parse_candidates("champion", where="t")
    with pytest.raises(ClovaStudioConfigError, match="two candidates are named"):
        parse_candidates(["HCX-005", "HCX-005"], where="t")


def test_lineage_facts_reach_the_outlets_and_openlineage(tmp_path: Path, use: Any) -> None:
    eval_set(tmp_path)
    use(Client({"newtask1": good(), "oldtask1": good(3)}))

    class Event:
        def __init__(self) -> None:
            self.extra: dict[str, Any] = {}

    events = {"model": Event()}
    op = operator(tmp_path, outlets=["model"])
    op.outlets = ["model"]
    op.execute({"outlet_events": events})
    extra = events["model"].extra
    assert extra["winner"] == "challenger" and extra["passed"] is True
    assert extra["candidates"]["challenger"]["dataset"] == "tuned-models/newtask1"
    pytest.importorskip("airflow.providers.openlineage")
    lineage = op.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("file", str(tmp_path / "eval.jsonl")),
        ("clova-studio://clova.evaltest.invalid", "tuned-models/oldtask1"),
        ("clova-studio://clova.evaltest.invalid", "tuned-models/newtask1"),
    ]
    assert lineage.outputs[-1].name == str(tmp_path / "out" / "report.md")
    facet = lineage.run_facets["clovaStudioEvaluation"]
    assert facet.winner == "challenger" and facet.scores == {"champion": 0.3, "challenger": 1.0}


def test_a_model_described_in_extra_models_can_be_a_candidate(
    tmp_path: Path, use: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Base models newer than the provider, described in extra.models, are checked with that catalog."""
    body = {"conn_type": "clova_studio", "host": "https://clova.evaltest.invalid", "password": API_KEY}
    body["extra"] = {"auth_type": "bearer", "models": {"HCX-NEXT": {"api": "v3", "max_output_tokens": 64}}}
    monkeypatch.setenv("AIRFLOW_CONN_CLOVA_STUDIO_DEFAULT", json.dumps(body))
    eval_set(tmp_path)
    client = use(Client({"HCX-NEXT": good(), "HCX-005": good(3)}))
    candidates = {"champion": {"model": "HCX-005"}, "challenger": {"model": "HCX-NEXT"}}
    result = operator(tmp_path, candidates=candidates, parameters={"maxTokens": 64}).execute({})
    assert result["winner"] == "challenger" and len(client.calls) == 20
    with pytest.raises(ClovaStudioConfigError, match="maxTokens"):  # the override's bound holds
        operator(tmp_path, candidates=candidates, parameters={"maxTokens": 65}, resume=False).execute({})
