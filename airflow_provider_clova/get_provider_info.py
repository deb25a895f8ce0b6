"""Provider metadata read by Airflow's ProvidersManager through the entry point."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """Describe the provider; filled in as hooks, operators and triggers land."""
    from airflow_provider_clova import __version__

    return {
        "package-name": "airflow-provider-clova",
        "name": "NAVER Cloud CLOVA Studio",
        "description": "CLOVA Studio (HyperCLOVA X) tuning, chat completions and rate budgets.",
        "versions": [__version__],
    }
