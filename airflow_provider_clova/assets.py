"""Assets for tuned models, so downstream DAGs can schedule on a new model or fresh vectors.

The tuning operator attaches the new task id (and its chat path) to the asset event of
every outlet, the embedding operator its output and counts; a consumer reads them from
``triggering_asset_events``.
"""

from __future__ import annotations

from typing import Any

TUNED_MODEL_URI = "clova-studio://tuned-models/{name}"


def tuned_model_asset(name: str) -> Any:
    """The asset standing for "the latest tuned model called ``name``"."""
    from airflow_provider_clova._compat import Asset

    return Asset(TUNED_MODEL_URI.format(name=name))


def annotate_outlet_events(operator: Any, context: Any, extra: dict[str, Any]) -> None:
    """Add ``extra`` to the asset event of each of ``operator``'s outlets (Airflow 3; a no-op where
    the context has no ``outlet_events`` or an outlet takes no extra)."""
    outlets = getattr(operator, "outlets", None) or []
    events = context.get("outlet_events") if hasattr(context, "get") else None
    if not outlets or events is None:
        return
    for outlet in outlets:
        try:
            events[outlet].extra.update(extra)
        except (KeyError, TypeError, AttributeError):
            operator.log.debug("outlet %r takes no asset event extra", outlet)
