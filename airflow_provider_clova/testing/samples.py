"""Service-shaped test data: the tuning task object and the response envelope, built in one place.

The shapes are the ones the API guide shows (the seed's sample task, ``seeds/001``), so a unit
test with respx, the emulator, the integration suites and ``bench/`` all speak the same JSON.
DAG authors get them too::

    from airflow_provider_clova.testing.samples import fail, ok, task_json

    respx.get(".../tuning/v2/tasks/abc12345").mock(return_value=ok(task_json("abc12345", "RUNNING", currStep=5)))

The dict builders (``task_json``, ``ok_body``, ``fail_body``) need nothing; ``ok`` and ``fail``
wrap them in an ``httpx.Response`` for respx or an ``httpx.MockTransport``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

#: A task's ``statusInfo`` keys, in the order the service sends them.
STATUS_INFO_FIELDS = (
    "label",
    "dataRows",
    "numOfTokens",
    "currStep",
    "totalTrainSteps",
    "currEpoch",
    "totalTrainEpochs",
    "estimatedTime",
    "trainLoss",
    "sendWeightSuccess",
    "failureReason",
    "message",
    "endDatetime",
)
#: A task object's top-level keys, in the order the service sends them.
TASK_FIELDS = (
    "id",
    "name",
    "model",
    "method",
    "taskType",
    "trainEpochs",
    "learningRate",
    "status",
    "statusInfo",
    "createdClientType",
    "createdDate",
    "updatedDate",
)
SEED_CREATED = "2023-08-21T13:07:06+0900"
OK_STATUS: Mapping[str, str] = {"code": "20000", "message": "OK"}


def status_info(**fields: Any) -> dict[str, Any]:
    """A ``statusInfo`` object: every field null but the ``fields`` given (camelCase names)."""
    unknown = set(fields) - set(STATUS_INFO_FIELDS)
    if unknown:
        raise TypeError(f"not statusInfo fields: {sorted(unknown)}; the fields are {', '.join(STATUS_INFO_FIELDS)}")
    return {**dict.fromkeys(STATUS_INFO_FIELDS), **fields}


def task_json(
    task_id: str = "czf9fbky",
    status: str = "WAIT",
    *,
    name: str = "230821-130704",
    model: str | None = "HCX-003",
    created: str = SEED_CREATED,
    **fields: Any,
) -> dict[str, Any]:
    """A tuning task object as the service answers it (by default the seed's sample task).

    A keyword named after a ``statusInfo`` field sets that field (``currStep=5``); one named after
    a top-level field replaces it (``trainEpochs=4``, ``updatedDate=None``, or a whole
    ``statusInfo``); any other name is a ``TypeError``, so a typo cannot pass silently.
    """
    info = {key: fields.pop(key) for key in list(fields) if key in STATUS_INFO_FIELDS}
    unknown = set(fields) - set(TASK_FIELDS)
    if unknown:
        raise TypeError(f"not task fields: {sorted(unknown)}; see STATUS_INFO_FIELDS and TASK_FIELDS")
    return {
        "id": task_id,
        "name": name,
        "model": model,
        "method": "LoRA",
        "taskType": "GENERATION",
        "trainEpochs": 8,
        "learningRate": 1e-4,
        "status": status,
        "statusInfo": status_info(**info),
        "createdClientType": "API",
        "createdDate": created,
        "updatedDate": created,
        **fields,
    }


def running_json(task_id: str = "czf9fbky", **fields: Any) -> dict[str, Any]:
    """A task a quarter through its training (step 150 of 600, epoch 2 of 8, about an hour left)."""
    progress: dict[str, Any] = {
        "dataRows": 1200,
        "numOfTokens": 345678,
        "currStep": 150,
        "totalTrainSteps": 600,
        "currEpoch": 2,
        "totalTrainEpochs": 8,
        "estimatedTime": 3725,
        "trainLoss": 0.8123,
    }
    return task_json(task_id, "RUNNING", **{**progress, **fields})


def succeeded_json(task_id: str = "czf9fbky", **fields: Any) -> dict[str, Any]:
    """A finished task whose weights were delivered."""
    done: dict[str, Any] = {
        "dataRows": 120,
        "numOfTokens": 9000,
        "currStep": 60,
        "totalTrainSteps": 60,
        "currEpoch": 4,
        "totalTrainEpochs": 4,
        "estimatedTime": 0,
        "trainLoss": 0.3125,
        "sendWeightSuccess": True,
        "endDatetime": "2023-08-21T15:07:06+0900",
    }
    return task_json(task_id, "SUCCEEDED", **{**done, **fields})


def failed_json(task_id: str, reason: str, message: str | None, **fields: Any) -> dict[str, Any]:
    """A failed task: ``failureReason`` (e.g. ``dataset.invalid``) and the service's message."""
    failure: dict[str, Any] = {
        "failureReason": reason,
        "message": message,
        "sendWeightSuccess": False,
        "endDatetime": "2023-08-21T14:07:06+0900",
    }
    return task_json(task_id, "FAILED", **{**failure, **fields})


# -- the envelope -------------------------------------------------------------------------------


def ok_body(result: Any = None, *, with_result: bool = True) -> dict[str, Any]:
    """A CLOVA success envelope: ``{"status": {"code": "20000", ...}, "result": ...}``."""
    body: dict[str, Any] = {"status": dict(OK_STATUS)}
    if with_result:
        body["result"] = result
    return body


def fail_body(code: str, message: str = "error") -> dict[str, Any]:
    """A CLOVA error envelope: ``{"status": {"code": code, "message": message}}``."""
    return {"status": {"code": code, "message": message}}


def ok(result: Any = None, *, status: int = 200, headers: Mapping[str, str] | None = None) -> httpx.Response:
    """A success answer for respx / ``httpx.MockTransport`` (no ``result`` key when ``result`` is None)."""
    return httpx.Response(status, json=ok_body(result, with_result=result is not None), headers=headers)


def fail(status: int, code: str, message: str = "error", *, headers: Mapping[str, str] | None = None) -> httpx.Response:
    """An error answer: HTTP ``status`` with the CLOVA ``code`` and ``message`` (e.g. 429, ``42901``)."""
    return httpx.Response(status, json=fail_body(code, message), headers=headers)


# -- the OpenAI-compatible API ------------------------------------------------------------------


def openai_completion(content: str = "hello", *, prompt_tokens: int = 7, completion_tokens: int = 1) -> dict[str, Any]:
    """A ``/v1/openai/chat/completions`` answer, as the ``openai`` SDK parses it."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "HCX-005",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def openai_error(code: str, message: str = "error", error_type: str = "invalid_request_error") -> dict[str, Any]:
    """An error answer of the OpenAI-compatible API: CLOVA's ``code`` in OpenAI's error shape."""
    return {"error": {"message": message, "type": error_type, "code": code, "param": None}}
