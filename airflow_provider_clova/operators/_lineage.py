"""Lineage of the provider's operators: OpenLineage facets and asset-event extras, in one place.

Each operator calls :func:`record` once it knows what it did (the upload's object, the tuned
task, the batch's and the evaluation's result files). That stores the facts on the operator
and copies them into the ``extra`` of every outlet's asset event, so a downstream DAG (or the
asset view) sees where a model came from without OpenLineage. The operators'
``get_openlineage_facets_on_complete`` then turn the same facts into an ``OperatorLineage``
(``airflow.providers.openlineage.extractors``), which the openlineage provider's listener
sends. The provider is an optional dependency (extra ``openlineage``): it is imported only
here and only when it asks, so nothing changes without it.

Dataset names follow OpenLineage's naming conventions: an Object Storage object is namespace
``s3://<bucket>``, name ``<key>`` (NAVER Object Storage is S3-compatible); a local file is
namespace ``file``, name ``<absolute path>``; a CLOVA Studio model is namespace
``clova-studio://<host>``, name ``models/<model>`` for a base model and
``tuned-models/<task id>`` for a tuned one. The facts ride in custom run facets named
``clovaStudioTuning``, ``clovaStudioBatch`` and ``clovaStudioEvaluation``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_clova.client.routing import DEFAULT_HOST

FACTS_ATTRIBUTE = "_clova_lineage_facts"
SCHEMA_BASE = "https://github.com/airflow-provider-clova/airflow-provider-clova/blob/main/docs/lineage.md#"


def record(operator: Any, context: Any, facts: Mapping[str, Any]) -> None:
    """Keep ``facts`` for the OpenLineage facets and add them to every outlet's asset-event extra."""
    setattr(operator, FACTS_ATTRIBUTE, dict(facts))
    outlets = getattr(operator, "outlets", None) or []
    events = context.get("outlet_events") if hasattr(context, "get") else None
    if not outlets or events is None:
        return
    for outlet in outlets:
        try:
            events[outlet].extra.update(facts)
        except (KeyError, TypeError, AttributeError):
            operator.log.debug("outlet %r takes no asset event extra", outlet)


def facts_of(operator: Any) -> dict[str, Any] | None:
    facts = getattr(operator, FACTS_ATTRIBUTE, None)
    return dict(facts) if facts else None


def tuning_facts(operator: Any, result: Mapping[str, Any]) -> dict[str, Any]:
    """What a finished training tells downstream: the model's ids, how it was trained, from what."""
    facts = {key: result[key] for key in ("task_id", "name", "model", "train_loss", "chat_completions_path")}
    learning_rate = getattr(operator, "learning_rate", None)
    facts.update(
        {
            "epochs": result.get("epochs"),
            "learning_rate": float(learning_rate) if learning_rate not in (None, "") else None,
            "num_tokens": result.get("num_tokens"),
            "data_rows": result.get("data_rows"),
            "dataset": f"s3://{operator.dataset_bucket}/{operator.dataset_key}",
            "namespace": clova_namespace(getattr(operator.hook.config, "base_url", None) or DEFAULT_HOST),
        }
    )
    return facts


def batch_facts(
    input_path: Any, summary: Mapping[str, Any], base_url: str, model: str, tuning_task_id: str | None
) -> dict[str, Any]:
    """What a finished batch tells downstream: input, output, model, counts."""
    return {
        "input": str(input_path),
        "output": summary["output"],
        "namespace": clova_namespace(base_url),
        "model": model,
        "tuning_task_id": tuning_task_id,
        "rows": summary["rows"],
        "ok": summary["ok"],
        "failed": summary["failed"],
        "charged_tokens": summary["tokens"]["charged_tokens"],
    }


# -- dataset names ---------------------------------------------------------------------
def clova_namespace(base_url: str) -> str:
    return f"clova-studio://{urlsplit(base_url).netloc or base_url}"


def model_name(model: str | None, tuning_task_id: str | None) -> str:
    return f"tuned-models/{tuning_task_id}" if tuning_task_id else f"models/{model}"


def location(target: Any) -> tuple[str, str]:
    """(namespace, name) of a local path, URI or ``ObjectStoragePath``."""
    text = str(target)
    if "://" not in text or text.startswith("file://"):
        path = text[len("file://") :] if text.startswith("file://") else text
        return "file", os.path.abspath(path)
    parts = urlsplit(text)
    bucket = parts.netloc.rpartition("@")[2]  # ObjectStoragePath URIs may carry a conn id: s3://conn@bucket
    return f"{parts.scheme}://{bucket}", parts.path.lstrip("/")


# -- OpenLineage (optional) -------------------------------------------------------------
@functools.cache
def _facet_types() -> dict[str, type]:
    """Custom run facets, defined on first use so that ``openlineage`` stays optional."""
    # lazy: the OpenLineage provider is the optional [openlineage] extra
    import attr
    from openlineage.client.facet_v2 import RunFacet

    def schema(name: str) -> Any:
        return staticmethod(lambda: SCHEMA_BASE + name)

    @attr.define
    class ClovaStudioTuningRunFacet(RunFacet):  # type: ignore[misc]
        model: str | None = None
        tuningTaskId: str | None = None
        trainEpochs: int | None = None
        learningRate: float | None = None
        finalTrainLoss: float | None = None
        numTokens: int | None = None
        dataRows: int | None = None
        _get_schema = schema("ClovaStudioTuningRunFacet")

    @attr.define
    class ClovaStudioBatchRunFacet(RunFacet):  # type: ignore[misc]
        model: str | None = None
        tuningTaskId: str | None = None
        rows: int | None = None
        ok: int | None = None
        failed: int | None = None
        chargedTokens: int | None = None
        _get_schema = schema("ClovaStudioBatchRunFacet")

    @attr.define
    class ClovaStudioEvaluationRunFacet(RunFacet):  # type: ignore[misc]
        metric: str | None = None
        gate: str | None = None
        passed: bool | None = None
        winner: str | None = None
        scores: dict[str, Any] = attr.field(factory=dict)
        _get_schema = schema("ClovaStudioEvaluationRunFacet")

    return {
        "tuning": ClovaStudioTuningRunFacet,
        "batch": ClovaStudioBatchRunFacet,
        "evaluation": ClovaStudioEvaluationRunFacet,
    }


def _lineage(inputs: list[tuple[str, str]], outputs: list[tuple[str, str]], run_facets: dict[str, Any]) -> Any:
    # lazy: the OpenLineage provider is the optional [openlineage] extra
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import Dataset

    return OperatorLineage(
        inputs=[Dataset(namespace=ns, name=name) for ns, name in inputs],
        outputs=[Dataset(namespace=ns, name=name) for ns, name in outputs],
        run_facets=run_facets,
    )


def _empty() -> Any:
    # lazy: the OpenLineage provider is the optional [openlineage] extra
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage()


def upload_lineage(operator: Any) -> Any:
    """Local file (or source object) -> the Object Storage object."""
    facts = facts_of(operator)
    if not facts:
        return _empty()
    return _lineage([location(facts["source"])], [(f"s3://{facts['bucket']}", facts["key"])], {})


def tuning_lineage(operator: Any) -> Any:
    """Dataset object -> tuned model, with the training's figures as a run facet."""
    facts = facts_of(operator)
    if not facts:
        return _empty()
    facet = _facet_types()["tuning"](
        model=facts.get("model"),
        tuningTaskId=facts.get("task_id"),
        trainEpochs=facts.get("epochs"),
        learningRate=facts.get("learning_rate"),
        finalTrainLoss=facts.get("train_loss"),
        numTokens=facts.get("num_tokens"),
        dataRows=facts.get("data_rows"),
    )
    return _lineage(
        [location(facts["dataset"])],
        [(facts["namespace"], model_name(facts.get("model"), facts.get("task_id")))],
        {"clovaStudioTuning": facet},
    )


def batch_lineage(operator: Any) -> Any:
    """Input file + model -> result file."""
    facts = facts_of(operator)
    if not facts:
        return _empty()
    facet = _facet_types()["batch"](
        model=facts.get("model"),
        tuningTaskId=facts.get("tuning_task_id"),
        rows=facts.get("rows"),
        ok=facts.get("ok"),
        failed=facts.get("failed"),
        chargedTokens=facts.get("charged_tokens"),
    )
    model = (facts["namespace"], model_name(facts.get("model"), facts.get("tuning_task_id")))
    return _lineage([location(facts["input"]), model], [location(facts["output"])], {"clovaStudioBatch": facet})


def evaluation_lineage(operator: Any) -> Any:
    """Evaluation set + every candidate model -> per-candidate result files and the report."""
    facts = facts_of(operator)
    if not facts:
        return _empty()
    candidates = facts.get("candidates") or {}
    facet = _facet_types()["evaluation"](
        metric=facts.get("metric"),
        gate=facts.get("gate"),
        passed=facts.get("passed"),
        winner=facts.get("winner"),
        scores={name: info.get("score") for name, info in candidates.items()},
    )
    models = [(facts["namespace"], info["dataset"]) for info in candidates.values()]
    outputs = [location(info["results"]) for info in candidates.values()] + [location(facts["report"])]
    return _lineage([location(facts["input"]), *models], outputs, {"clovaStudioEvaluation": facet})
