"""From per-row results to a decision: per-candidate metrics, the gate, the winner, the report.

Aggregation (:func:`aggregate`): ``exact_match``, ``contains`` and ``token_f1`` are means over
**every** row of the set, a failed row scoring 0 (a candidate must not win by failing the hard
rows); ``regex`` is the mean over answered rows that carry a ``pattern``, ``judge`` the mean
1-5 score over judged rows (None when there are none).

The gate (:func:`decide`), on one ``metric``:

* ``min_score``: a challenger passes only with ``score >= min_score`` (in the metric's own
  units: 0-1, or 1-5 for ``judge``);
* ``must_beat``: with a champion evaluated, a challenger passes only with
  ``score > champion's score + must_beat`` (strictly: a tie keeps the champion). Without a
  champion (none named, or its spec was empty, e.g. a first run), ``must_beat`` is moot.

Every candidate that is not the champion is a challenger; the best passing challenger (first
in order on a tie) is the winner and ``passed`` is true. Otherwise ``passed`` is false and the
champion (if any) stays the winner.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_clova.evaluation.metrics import METRICS, ROW_METRICS


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def aggregate(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-candidate metrics from its result records (see the module doc)."""
    rows = ok = 0
    sums = dict.fromkeys(ROW_METRICS, 0.0)
    regex: list[float] = []
    judged: list[float] = []
    for record in records:
        rows += 1
        if not record.get("ok"):
            continue
        ok += 1
        scores = record.get("scores") or {}
        for name in ROW_METRICS:
            sums[name] += float(scores.get(name) or 0.0)
        if scores.get("regex") is not None:
            regex.append(float(scores["regex"]))
        if scores.get("judge") is not None:
            judged.append(float(scores["judge"]))
    metrics: dict[str, Any] = {name: round(sums[name] / rows, 4) if rows else None for name in ROW_METRICS}
    metrics.update({"regex": _mean(regex), "judge": _mean(judged)})
    return {"rows": rows, "ok": ok, "failed": rows - ok, "judged": len(judged), "regex_rows": len(regex), **metrics}


@dataclass(frozen=True)
class Gate:
    """What a challenger must reach on ``metric``."""

    metric: str
    min_score: float | None = None
    must_beat: float | None = None

    def describe(self) -> str:
        parts = []
        if self.min_score is not None:
            parts.append(f"{self.metric} >= {self.min_score:g}")
        if self.must_beat is not None:
            parts.append(f"{self.metric} > champion + {self.must_beat:g}")
        return " and ".join(parts) or "no gate (best challenger wins)"


@dataclass(frozen=True)
class Decision:
    winner: str | None
    best_challenger: str | None
    passed: bool
    reason: str


def decide(results: Mapping[str, Mapping[str, Any]], gate: Gate, champion: str | None) -> Decision:
    """The gate's verdict over ``results`` (candidate name -> aggregated metrics, in order)."""
    if champion is not None and champion not in results:
        champion = None
    champion_score = results[champion][gate.metric] if champion else None
    challengers = [name for name in results if name != champion]
    ranked = sorted(challengers, key=lambda name: -(results[name][gate.metric] or 0.0))  # stable: order on ties
    best = ranked[0] if ranked else None
    verdicts = []
    winner = None
    for name in ranked:
        value = results[name][gate.metric] or 0.0
        why = []
        if gate.min_score is not None and value < gate.min_score:
            why.append(f"{value:.4g} < min_score {gate.min_score:g}")
        if gate.must_beat is not None and champion_score is not None and not value > champion_score + gate.must_beat:
            why.append(f"{value:.4g} does not beat champion {champion}'s {champion_score:.4g} by > {gate.must_beat:g}")
        if not why:
            winner = name
            break
        verdicts.append(f"{name}: {'; '.join(why)}")
    if winner is not None:
        held = f" over champion {champion} ({champion_score:.4g})" if champion_score is not None else ""
        reason = f"{winner} wins with {gate.metric} {results[winner][gate.metric]:.4g}{held}; gate: {gate.describe()}"
        return Decision(winner, best, True, reason)
    kept = f"keeping champion {champion}" if champion else "no candidate passed"
    detail = "; ".join(verdicts) or "no challenger was evaluated"
    return Decision(champion, best, False, f"{kept}: {detail}")


COLUMNS = (
    ("rows", "rows"),
    ("ok", "ok"),
    ("failed", "failed"),
    ("exact_match", "exact"),
    ("contains", "contains"),
    ("regex", "regex"),
    ("token_f1", "F1"),
    ("judge", "judge 1-5"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def table_rows(candidates: Mapping[str, Mapping[str, Any]], metric: str, decision: Decision) -> list[list[str]]:
    """Header plus one row per candidate: name (marked), target, the metric columns."""
    header = ["candidate", "model", *(f"{label}*" if key == metric else label for key, label in COLUMNS)]
    body = []
    for name, info in candidates.items():
        mark = " (winner)" if name == decision.winner else ""
        target = info.get("tuning_task_id") or info.get("model") or ""
        metrics = info["metrics"]
        body.append([f"{name}{mark}", str(target), *(_cell(metrics.get(key)) for key, _ in COLUMNS)])
    return [header, *body]


def text_table(rows: list[list[str]]) -> str:
    """A fixed-width side-by-side table for the task log."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(rows: list[list[str]]) -> str:
    """The same table in Markdown (the report, and the approval form's body)."""
    escape = [[cell.replace("|", "\\|") for cell in row] for row in rows]
    lines = ["| " + " | ".join(escape[0]) + " |", "|" + "---|" * len(escape[0])]
    lines += ["| " + " | ".join(row) + " |" for row in escape[1:]]
    return "\n".join(lines)


def markdown_report(
    title: str,
    table: str,
    decision: Decision,
    gate: Gate,
    candidates: Mapping[str, Mapping[str, Any]],
    disagreements: Sequence[Mapping[str, Any]],
) -> str:
    """The report written next to the results."""
    verdict = "PASSED" if decision.passed else "NOT PASSED"
    lines = [
        f"# {title}",
        "",
        table,
        "",
        f"`*` marks the gate's metric. Gate: {gate.describe()}.",
        "",
        f"**{verdict}**: {decision.reason}",
        "",
        "## Result files",
        "",
        *(f"- {name}: `{info['results']}`" for name, info in candidates.items()),
    ]
    if disagreements:
        lines += ["", "## Rows where the candidates differ most", ""]
        for row in disagreements:
            lines.append(f"- **{row['id']}**: {json.dumps(row['question'], ensure_ascii=False)[:200]}")
            lines.append(f"  - reference: {json.dumps(row['reference'], ensure_ascii=False)[:200]}")
            for name, answer in row["answers"].items():
                lines.append(f"  - {name} ({row['scores'][name]:.2f}): {json.dumps(answer, ensure_ascii=False)[:200]}")
    return "\n".join(lines) + "\n"


def disagreements(
    per_candidate: Mapping[str, Sequence[Mapping[str, Any]]], metric: str, limit: int = 10
) -> list[dict[str, Any]]:
    """The rows whose ``metric`` differs most between candidates (for the report)."""
    if metric not in ROW_METRICS and metric not in METRICS:
        return []
    by_id: dict[str, dict[str, Any]] = {}
    for name, records in per_candidate.items():
        for record in records:
            entry = by_id.setdefault(
                json.dumps(record.get("id")),
                {"id": record.get("id"), "question": record.get("question", ""), "answers": {}, "scores": {}},
            )
            if record.get("ok"):
                entry["question"] = record.get("question", "")
                entry["reference"] = record.get("reference", "")
            entry["answers"][name] = record.get("answer") if record.get("ok") else f"(failed: {record.get('error')})"
            entry["scores"][name] = float((record.get("scores") or {}).get(metric) or 0.0)
    spread = [
        entry
        for entry in by_id.values()
        if len(entry["scores"]) > 1 and max(entry["scores"].values()) != min(entry["scores"].values())
    ]
    spread.sort(key=lambda e: -(max(e["scores"].values()) - min(e["scores"].values())))
    for entry in spread:
        entry.setdefault("reference", "")
    return spread[:limit]
