"""Provider metadata read by Airflow's ProvidersManager through the entry point.

Kept free of imports beyond the package version: Airflow calls this while it discovers
providers, before any hook or operator is needed.
"""

from __future__ import annotations

from typing import Any

INTEGRATION = "NAVER Cloud CLOVA Studio"

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port"],
    "relabeling": {
        "host": "Base URL",
        "login": "IAM access key (signs the tuning API; leave empty for an API key only)",
        "password": "API key (Bearer), or the IAM secret key when an access key is set",
    },
    "placeholders": {
        "host": "empty: the documented NAVER hosts; or e.g. http://127.0.0.1:8765 (emulator)",
        "login": "NCP access key, e.g. ncp_iam_BPAMKR...",
        "password": "a CLOVA Studio API key nv-..., or the NCP secret key",
        "extra": '{"api_key": "nv-...", "app_type": "test", "limits": {"HCX-005": {"qpm": 60, "tpm": 60000}}}',
    },
}

CONN_FIELDS: dict[str, Any] = {
    "api_key": {
        "label": "API key next to IAM keys",
        "description": "A CLOVA Studio API key (nv-...) for a connection whose login/password are IAM keys: "
        "the IAM keys sign the tuning API, the API key sends chat, token counts, embeddings and the "
        "OpenAI-compatible API. Leave empty when the password is already the API key.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "auth_type": {
        "label": "Auth type",
        "description": "How login/password are read: bearer (password = API key), apigw_v2 (IAM access key + "
        "secret key) or legacy_keys. Empty: apigw_v2 when an access key is set, else bearer.",
        "schema": {"type": ["string", "null"], "enum": ["bearer", "apigw_v2", "legacy_keys", None]},
    },
    "app_type": {
        "label": "App type",
        "description": "test (default) or service: selects the QPM/TPM budgets and the legacy path prefix.",
        "schema": {"type": ["string", "null"], "enum": ["test", "service", None]},
    },
    "apigw_api_key": {
        "label": "API Gateway key (legacy_keys only)",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "timeout": {"label": "Request timeout (seconds)", "schema": {"type": ["number", "null"]}},
    "verify": {"label": "Verify TLS", "schema": {"type": ["boolean", "null"]}},
    "pool_slots": {
        "label": "Slots of each CLOVA pool",
        "description": "Slots the provider's pools were created with; tasks pace at budget x pool_slots / this.",
        "schema": {"type": ["integer", "null"]},
    },
}


def get_provider_info() -> dict[str, Any]:
    """Describe the provider: hooks, connection type, operators, triggers, sensors and links."""
    from airflow_provider_clova import __version__

    return {
        "package-name": "airflow-provider-clova",
        "name": "NAVER Cloud CLOVA Studio",
        "description": "CLOVA Studio (HyperCLOVA X): tuning, chat completions, batch inference and rate budgets.",
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
                "conn-fields": CONN_FIELDS,
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
    "airflow_provider_clova.operators.evaluation",
]
TRIGGER_MODULES = ["airflow_provider_clova.triggers.tuning"]
SENSOR_MODULES = ["airflow_provider_clova.sensors.tuning"]
EXTRA_LINKS = ["airflow_provider_clova.links.console.ClovaStudioTuningConsoleLink"]


def _existing(names: list[str], *, attribute: bool = False) -> list[str]:
    """Only the modules that this build ships (checked without importing them)."""
    from importlib.util import find_spec

    out = []
    for name in names:
        module = name.rsplit(".", 1)[0] if attribute else name
        try:
            if find_spec(module) is not None:
                out.append(name)
        except ModuleNotFoundError:
            continue
    return out
