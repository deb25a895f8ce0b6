"""Provider metadata read by Airflow's ProvidersManager through the entry point.

Kept free of imports beyond the package version and the (standard-library) form declaration:
Airflow calls this while it discovers providers, before any hook or operator is needed.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

from airflow_provider_clova import __version__
from airflow_provider_clova.connection_form import UI_FIELD_BEHAVIOUR, conn_fields

INTEGRATION = "NAVER Cloud CLOVA Studio"

#: Where the provider's documentation lives (placeholder home until published; see pyproject's urls).
DOCUMENTATION_URL = "https://github.com/airflow-provider-clova/airflow-provider-clova#readme"


def get_provider_info() -> dict[str, Any]:
    """Describe the provider: hooks, connection type, operators, triggers, sensors and links."""
    return {
        "package-name": "airflow-provider-clova",
        "name": "NAVER Cloud CLOVA Studio",
        "description": (
            "CLOVA Studio (HyperCLOVA X): tuning, chat completions, batch inference, embeddings and rate budgets."
        ),
        "documentation-url": DOCUMENTATION_URL,
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://api.ncloud-docs.com/docs/en/ai-naver-clovastudio-summary",
                "tags": ["ai", "llm"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": ["airflow_provider_clova.hooks.clova_studio"]}],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_clova.hooks.clova_studio.ClovaStudioHook",
                "hook-name": "CLOVA Studio",
                "connection-type": "clova_studio",
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
                "conn-fields": conn_fields(),
            }
        ],
        "operators": [{"integration-name": INTEGRATION, "python-modules": _existing(OPERATOR_MODULES)}],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": _existing(TRIGGER_MODULES)}],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": _existing(SENSOR_MODULES)}],
        "extra-links": _existing(EXTRA_LINKS, attribute=True),
    }


OPERATOR_MODULES = [
    "airflow_provider_clova.operators.tuning",
    "airflow_provider_clova.operators.cleanup",
    "airflow_provider_clova.operators.dataset",
    "airflow_provider_clova.operators.chat",
    "airflow_provider_clova.operators.batch",
    "airflow_provider_clova.operators.embedding",
    "airflow_provider_clova.operators.evaluation",
]
TRIGGER_MODULES = ["airflow_provider_clova.triggers.tuning"]
SENSOR_MODULES = ["airflow_provider_clova.sensors.tuning"]
EXTRA_LINKS = ["airflow_provider_clova.links.console.ClovaStudioTuningConsoleLink"]


def _existing(names: list[str], *, attribute: bool = False) -> list[str]:
    """Only the modules that this build ships (checked without importing them)."""
    out = []
    for name in names:
        module = name.rsplit(".", 1)[0] if attribute else name
        try:
            if find_spec(module) is not None:
                out.append(name)
        except ModuleNotFoundError:
            continue
    return out
