"""Operator arguments turned into what the core takes: templated strings parsed. Shared by
the chat and batch operators (and the ones to come), so a rendered XCom string fails the same
way, with the same fix, in each. (A tuned task's base model is the client's to resolve:
``ClovaStudioHook.base_model``.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_clova.client.errors import ClovaStudioConfigError


def coerce_messages(value: Any, *, where: str) -> list[dict[str, Any]]:
    """Messages as a list of dicts; a JSON string (e.g. a rendered XCom) is parsed first."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ClovaStudioConfigError(
                f"{where}: messages is a string that is not JSON; give a list of {{role, content}} objects, "
                "or use prompt= for a single user message"
            ) from None
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise ClovaStudioConfigError(f"{where}: messages must be a list of {{role, content}} objects")
    return [dict(item) if isinstance(item, Mapping) else item for item in value]


def coerce_parameters(value: Any, *, where: str) -> dict[str, Any]:
    """Chat parameters as a dict; None is empty and a JSON object string is parsed."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = None
    if not isinstance(value, Mapping):
        raise ClovaStudioConfigError(f'{where}: parameters must be an object like {{"maxTokens": 256}}')
    return {str(key): item for key, item in value.items()}
