"""``ClovaStudioEvaluationOperator``: run an evaluation set against candidate models and gate on it.

Each candidate (a base model, a tuned task, the champion a Variable names) answers every row
of the set on the batch engine (:mod:`airflow_provider_clova.batch`): paced by the shared
limiter and the task's pool share, ``max_concurrency`` rows in flight, one result file per
candidate that a retry resumes, per-row errors with a failure threshold. Candidates run one
after another. The rows are scored (:mod:`airflow_provider_clova.evaluation.metrics`), judged
when ``judge_model`` is set, aggregated, and the gate decides (see
:mod:`airflow_provider_clova.evaluation.scoring`).

A gate that no challenger passes is a normal outcome by default: the task succeeds with
``passed: false`` and the champion as ``winner``, so a branch (or a human) decides what
happens next ("keep the champion"). ``fail_on_gate=True`` raises
``ClovaStudioEvaluationGateError`` instead, for DAGs where a failed gate must stop the run.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_clova.batch.chat import ChatRows, chat_validator
from airflow_provider_clova.batch.input import iter_lines
from airflow_provider_clova.batch.job import run_file
from airflow_provider_clova.batch.store import as_input, is_local, local_path, store_for
from airflow_provider_clova.client.catalog import model_info
from airflow_provider_clova.client.errors import ClovaStudioConfigError, ClovaStudioEvaluationGateError
from airflow_provider_clova.client.limits import lookup_budget
from airflow_provider_clova.evaluation.judge import DEFAULT_PARAMETERS, Judge
from airflow_provider_clova.evaluation.metrics import METRICS
from airflow_provider_clova.evaluation.rows import EvalRows
from airflow_provider_clova.evaluation.scoring import (
    Gate,
    aggregate,
    decide,
    disagreements,
    markdown_report,
    markdown_table,
    table_rows,
    text_table,
)
from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook
from airflow_provider_clova.operators._arguments import coerce_parameters
from airflow_provider_clova.operators._lineage import clova_namespace, evaluation_lineage, model_name, record
from airflow_provider_clova.operators.batch import (
    BatchEngineOperator,
    checked_defaults,
    run_settings,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


__all__ = ["ClovaStudioEvaluationGateError", "ClovaStudioEvaluationOperator", "parse_candidates"]

REPORT_NAME = "report.md"
_UNSAFE = re.compile(r"[^\w.-]+")


def parse_candidates(value: Any, *, where: str) -> dict[str, dict[str, str | None]]:
    """Candidates as ``name -> {"model", "tuning_task_id"}``, in order.

    Takes a dict ``name -> spec`` or a list of specs (e.g. the outputs of mapped tuning tasks),
    or either as a JSON string (a rendered template). A spec is a base model name, or a dict
    with ``model`` and/or ``tuning_task_id`` (``task_id``, as the tuning operator returns it,
    works too). A list item is named by its ``label``, else its tuned task id, else its model.
    A spec that renders empty (e.g. a champion Variable not set yet) is left out: the caller
    logs it.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ClovaStudioConfigError(
                f"{where}: candidates is a string that is not JSON; give a dict like "
                '{"champion": {"tuning_task_id": "..."}, "base": "HCX-003"}'
            ) from None
    if isinstance(value, Mapping):
        items: list[tuple[str | None, Any]] = [(str(name), spec) for name, spec in value.items()]
    elif isinstance(value, Sequence) or hasattr(value, "__iter__"):
        items = [(None, spec) for spec in value]
    else:
        raise ClovaStudioConfigError(f"{where}: candidates must be a dict of name -> spec, or a list of specs")
    out: dict[str, dict[str, str | None]] = {}
    for name, spec in items:
        if isinstance(spec, str) or spec is None:
            spec = {"model": spec}
        if not isinstance(spec, Mapping):
            raise ClovaStudioConfigError(
                f"{where}: candidate {name or spec!r} must be a model name or a dict with model and/or tuning_task_id"
            )
        model = str(spec.get("model") or "").strip() or None
        task = str(spec.get("tuning_task_id") or spec.get("task_id") or "").strip() or None
        if not model and not task:
            continue
        label = name or str(spec.get("label") or task or model)
        if label in out:
            raise ClovaStudioConfigError(f"{where}: two candidates are named {label!r}; give each a distinct label")
        out[label] = {"model": model, "tuning_task_id": task}
    return out


def _child(directory: Any, name: str) -> Any:
    """``directory/name`` for a local path, a URI string or an ``ObjectStoragePath``."""
    if is_local(directory):
        return os.path.join(local_path(directory), name)
    return as_input(directory) / name if isinstance(directory, str) else directory / name


def _write_text(target: Any, text: str) -> None:
    if isinstance(target, str):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        with target.open("w", encoding="utf-8") as handle:
            handle.write(text)


def _read_records(source: Any) -> list[dict[str, Any]]:
    return [json.loads(raw) for _, raw in iter_lines(source)]


class ClovaStudioEvaluationOperator(BatchEngineOperator):
    """Evaluate two or more candidate models on a JSONL evaluation set; pick a winner through a gate.

    :param input_path: the evaluation set: local path, ``file://``/``s3://`` URI or
        ``ObjectStoragePath``; one row a line, ``{"id", "prompt" | "messages", "reference",
        "pattern"?}`` (see :mod:`airflow_provider_clova.evaluation.rows`).
    :param output_dir: where ``<candidate>.jsonl`` (per-row results) and ``report.md`` go
        (local directory, URI or ``ObjectStoragePath``). Keep it per run (template it with
        ``{{ run_id }}``) so that a retry resumes and another run starts fresh.
    :param candidates: ``{"name": spec}`` or a list of specs; a spec is a base model name or
        ``{"model": ..., "tuning_task_id": ...}`` (see :func:`parse_candidates`). Templated.
    :param champion: the candidate that serves today; the others are challengers.
    :param metric: the gate's metric: ``token_f1`` (default), ``exact_match``, ``contains``,
        ``regex`` or ``judge``.
    :param min_score: a challenger must reach this (metric units: 0-1, ``judge`` 1-5).
    :param must_beat: a challenger must beat the champion by more than this margin (0: any
        improvement; a tie keeps the champion). None: no comparison.
    :param fail_on_gate: raise ``ClovaStudioEvaluationGateError`` when no challenger passes;
        by default the task succeeds with ``passed: false``.
    :param judge_model: a CLOVA model grading every answer 1-5 with the documented rubric
        (:mod:`airflow_provider_clova.evaluation.judge`); its calls are paced and budgeted too.
    :param judge_parameters: chat parameters of the judge calls (default ``{"maxTokens": 8}``).
    :param parameters: chat parameters of every candidate call (e.g. ``{"maxTokens": 256}``).
    :param clova_conn_id, max_concurrency, max_failed_rows, max_failed_fraction, resume,
        progress_interval, checkpoint_interval, work_dir: as ``ClovaStudioBatchInferenceOperator``,
        applied to each candidate's run.
    :return: ``{"metric", "gate", "candidates": {name: {"model", "tuning_task_id", "metrics",
        "results", "tokens"}}, "champion", "best_challenger", "winner", "winner_model",
        "passed", "reason", "losers", "table", "report"}``; ``table`` is the Markdown table,
        ``losers`` the tuned task ids of the challengers that did not win.
    """

    #: Candidates run one after another, each with its rows in flight together.
    default_concurrency = 8
    template_fields: Sequence[str] = (
        "input_path",
        "output_dir",
        "candidates",
        "champion",
        "metric",
        "min_score",
        "must_beat",
        "judge_model",
        "judge_parameters",
        "parameters",
        "clova_conn_id",
    )
    template_fields_renderers = {"candidates": "json", "parameters": "json", "judge_parameters": "json"}
    ui_color = "#03c75a"

    def __init__(
        self,
        *,
        input_path: Any,
        output_dir: Any,
        candidates: Any,
        champion: str | None = None,
        metric: str = "token_f1",
        min_score: float | str | None = None,
        must_beat: float | str | None = None,
        fail_on_gate: bool = False,
        judge_model: str | None = None,
        judge_parameters: Mapping[str, Any] | str | None = None,
        parameters: Mapping[str, Any] | str | None = None,
        clova_conn_id: str = "clova_studio_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_path = input_path
        self.output_dir = output_dir
        self.candidates = candidates
        self.champion = champion
        self.metric = metric
        self.min_score = min_score
        self.must_beat = must_beat
        self.fail_on_gate = fail_on_gate
        self.judge_model = judge_model
        self.judge_parameters = judge_parameters
        self.parameters = parameters
        self.clova_conn_id = clova_conn_id

    # -- arguments ---------------------------------------------------------------------
    def _where(self) -> str:
        return f"{type(self).__name__}({self.task_id})"

    def _number(self, field: str) -> float | None:
        value = getattr(self, field)
        if value in (None, ""):
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ClovaStudioConfigError(f"{self._where()}: {field} must be a number, got {value!r}") from None

    def _gate(self) -> Any:
        metric = str(self.metric)
        if metric not in METRICS:
            raise ClovaStudioConfigError(f"{self._where()}: metric={metric!r}; use one of {', '.join(METRICS)}")
        if metric == "judge" and not self.judge_model:
            raise ClovaStudioConfigError(f"{self._where()}: metric='judge' needs judge_model= (e.g. 'HCX-005')")
        return Gate(metric, self._number("min_score"), self._number("must_beat"))

    def _judge(self) -> Judge | None:
        if not self.judge_model:
            return None
        given = coerce_parameters(self.judge_parameters, where=f"{self._where()} judge_parameters")
        return Judge(str(self.judge_model), {**DEFAULT_PARAMETERS, **given})

    # -- execute -----------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        gate = self._gate()
        judge = self._judge()
        candidates = parse_candidates(self.candidates, where=self._where())
        champion = str(self.champion) if self.champion else None
        if champion and champion not in candidates:
            self.log.info(
                "champion %r has no model or task id (not set yet?); every candidate is a challenger", champion
            )
            champion = None
        if not [name for name in candidates if name != champion]:
            raise ClovaStudioConfigError(
                f"{self._where()}: no challenger to evaluate (candidates: {sorted(candidates) or 'none'}); "
                "give at least one candidate besides the champion"
            )
        results: dict[str, dict[str, Any]] = {}
        records: dict[str, list[dict[str, Any]]] = {}
        for name, spec in candidates.items():
            results[name], records[name] = self._run_candidate(name, spec, judge)
            results[name]["metrics"] = aggregate(records[name])
        decision = decide({name: info["metrics"] for name, info in results.items()}, gate, champion)
        return self._finish(context, gate, champion, results, records, decision)

    def _run_candidate(
        self, name: str, spec: Mapping[str, str | None], judge: Judge | None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        started = time.monotonic()
        probe = hook = ClovaStudioHook(self.clova_conn_id)
        try:
            model = probe.base_model(spec["model"], spec["tuning_task_id"])
            hook = probe.with_pool_share(self, model)
            return self._send(hook, name, model, spec["tuning_task_id"], judge, started)
        finally:
            probe.close()
            if hook is not probe:
                hook.close()

    def _send(
        self,
        hook: ClovaStudioHook,
        name: str,
        model: str,
        tuning_task_id: str | None,
        judge: Judge | None,
        started: float,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        config = hook.config
        self._base_url = config.base_url
        budget = lookup_budget(model, config.app_type, config.limits)
        defaults = checked_defaults(self.parameters, model, where=self._where(), models=config.models)
        validate = chat_validator(model, tuning_task_id, budget.token_ceiling(config.pacing_share), config.models)
        rows = EvalRows(ChatRows(model, tuning_task_id, defaults, validate), judge)
        output = _child(self.output_dir, f"{_UNSAFE.sub('_', name)}.jsonl")
        tuned = f" tuned task {tuning_task_id}" if tuning_task_id else ""
        api = model_info(model, config.models).api
        self.log.info("evaluation: candidate %s: %s%s", name, model, tuned)
        summary = run_file(
            rows,
            as_input(self.input_path),
            store_for(output, work_dir=self.work_dir),
            run_settings(self, hook, budget),
            connect=hook.aget_async_conn,
            resume=self.resume,
            target=f"{model}{tuned} ({api})" + (f", judged by {judge.model}" if judge else ""),
            log=self.log.info,
            started=started,
        )
        info = {
            "model": model,
            "tuning_task_id": tuning_task_id,
            "results": summary["output"],
            "tokens": summary["tokens"],
        }
        return info, _read_records(as_input(summary["output"]))

    def _finish(
        self,
        context: Context,
        gate: Any,
        champion: str | None,
        results: dict[str, dict[str, Any]],
        records: dict[str, list[dict[str, Any]]],
        decision: Any,
    ) -> dict[str, Any]:
        rows = table_rows(results, gate.metric, decision)
        table = markdown_table(rows)
        report = _child(self.output_dir, REPORT_NAME)
        title = f"Evaluation {self.dag_id}.{self.task_id}"
        _write_text(report, markdown_report(title, table, decision, gate, results, disagreements(records, gate.metric)))
        self.log.info("evaluation on %s (* = gate metric):\n%s", self.input_path, text_table(rows))
        self.log.info(
            "evaluation %s: %s; report: %s", "PASSED" if decision.passed else "NOT PASSED", decision.reason, report
        )
        winner = results.get(decision.winner) if decision.winner else None
        result = {
            "metric": gate.metric,
            "gate": gate.describe(),
            "candidates": results,
            "champion": champion,
            "best_challenger": decision.best_challenger,
            "winner": decision.winner,
            "winner_model": {"model": winner["model"], "tuning_task_id": winner["tuning_task_id"]} if winner else None,
            "passed": decision.passed,
            "reason": decision.reason,
            "losers": [
                info["tuning_task_id"]
                for name, info in results.items()
                if name not in (decision.winner, champion) and info["tuning_task_id"]
            ],
            "table": table,
            "report": str(report),
        }
        self._record_lineage(context, result)
        if not decision.passed and self.fail_on_gate:
            raise ClovaStudioEvaluationGateError(f"evaluation gate not passed: {decision.reason}", result)
        return result

    # -- lineage -----------------------------------------------------------------------
    def _record_lineage(self, context: Context, result: Mapping[str, Any]) -> None:
        record(
            self,
            context,
            {
                "input": str(self.input_path),
                "namespace": clova_namespace(self._base_url),
                "metric": result["metric"],
                "gate": result["gate"],
                "passed": result["passed"],
                "winner": result["winner"],
                "winner_model": result["winner_model"],
                "report": result["report"],
                "candidates": {
                    name: {
                        "model": info["model"],
                        "tuning_task_id": info["tuning_task_id"],
                        "dataset": model_name(info["model"], info["tuning_task_id"]),
                        "results": info["results"],
                        "score": info["metrics"][result["metric"]],
                    }
                    for name, info in result["candidates"].items()
                },
            },
        )

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: evaluation set + candidate models -> result files and report (see ``_lineage``)."""
        return evaluation_lineage(self)
