"""Assets for tuned models, so downstream DAGs can schedule on a new model.

The tuning operator attaches the new task id (and its chat path) to the asset event of
every outlet; a consumer reads it from ``triggering_asset_events``.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import Asset

TUNED_MODEL_URI = "clova-studio://tuned-models/{name}"


def tuned_model_asset(name: str) -> Any:
    """The asset standing for "the latest tuned model called ``name``"."""
    return Asset(TUNED_MODEL_URI.format(name=name))
