"""Operator arguments turned into what the core takes: templated strings parsed, a tuned
task's base model looked up. Shared by the chat and batch operators (and the ones to come),
so a rendered XCom string or a missing model fails the same way, with the same fix, in each.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_clova.client.errors import ClovaStudioConfigError

if TYPE_CHECKING:
    from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook


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


def resolve_base_model(hook: ClovaStudioHook, model: str | None, tuning_task_id: str | None) -> str:
    """The model whose API generation and budget a call uses; a tuned task is looked up once."""
    if model:
        return str(model)
    if not tuning_task_id:
        raise ClovaStudioConfigError("chat: give model= (a base model) or tuning_task_id= (a tuned task)")
    task = hook.get_tuning_task(str(tuning_task_id))
    if not task.model:
        raise ClovaStudioConfigError(
            f"tuning task {tuning_task_id} reports no base model; pass model= naming the model it was tuned from"
        )
    return task.model
