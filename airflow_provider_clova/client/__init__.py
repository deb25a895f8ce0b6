"""The Airflow-free core: talk to CLOVA Studio over httpx.

Importing this package never imports Airflow, so the client can be used (and tested) on its
own. Names are loaded lazily to keep ``import airflow_provider_clova.client`` cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ClovaStudioClient": "airflow_provider_clova.client.client",
    "AsyncClovaStudioClient": "airflow_provider_clova.client.client",
    "ClientConfig": "airflow_provider_clova.client.config",
    "config_from_connection": "airflow_provider_clova.client.config",
    "TuningDataset": "airflow_provider_clova.client.calls",
    "TuningTask": "airflow_provider_clova.client.models",
    "TuningStatus": "airflow_provider_clova.client.models",
    "StatusInfo": "airflow_provider_clova.client.models",
    "ChatResult": "airflow_provider_clova.client.models",
    "TokenUsage": "airflow_provider_clova.client.models",
    "RetryPolicy": "airflow_provider_clova.client.retry",
}

if TYPE_CHECKING:
    from airflow_provider_clova.client.calls import TuningDataset
    from airflow_provider_clova.client.client import AsyncClovaStudioClient, ClovaStudioClient
    from airflow_provider_clova.client.config import ClientConfig, config_from_connection
    from airflow_provider_clova.client.models import (
        ChatResult,
        StatusInfo,
        TokenUsage,
        TuningStatus,
        TuningTask,
    )
    from airflow_provider_clova.client.retry import RetryPolicy

__all__ = [
    "AsyncClovaStudioClient",
    "ChatResult",
    "ClientConfig",
    "ClovaStudioClient",
    "RetryPolicy",
    "StatusInfo",
    "TokenUsage",
    "TuningDataset",
    "TuningStatus",
    "TuningTask",
    "config_from_connection",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
