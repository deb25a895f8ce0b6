"""The OpenAI-compatible API (``/v1/openai/...``): snake_case in, OpenAI shapes out.

The service backs ``/v1/openai/chat/completions`` with chat v1 or v3 (by model) and
``/v1/openai/embeddings`` with the embedding APIs, so this module only translates: a body is
checked for parameters the compatible API does not take (400 ``40002`` naming the first one),
turned into the native camelCase request the chat module already checks (ranges answer
``40001`` as natively), and the native result is rendered the way the ``openai`` SDK parses
it. Which parameters are taken is a decision recorded in ``docs/emulator.md``: the ones the
public page and NAVER's ``langchain-naver`` (built on the ``openai`` SDK) send, mapped to
their native twins.

Errors on these routes use OpenAI's error shape (``{"error": {"message", "type", "code",
"param"}}``, ``code`` holding CLOVA's status code), so the SDK's typed exceptions carry a
readable message; the HTTP status is CLOVA's, so a 429 is the SDK's ``RateLimitError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_clova.client.catalog import ModelInfo
from airflow_provider_clova.testing.emulator import chat
from airflow_provider_clova.testing.emulator.envelope import ApiError, bad_param

#: snake_case field -> the native field it becomes, per chat API; None: only checked here
_V1_FIELDS = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "repeat_penalty": "repeatPenalty",
    "seed": "seed",
}
_V3_FIELDS = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "repetition_penalty": "repetitionPenalty",
    "seed": "seed",
    "tools": "tools",
    "tool_choice": "toolChoice",
    "response_format": "responseFormat",
    "thinking": "thinking",
}
#: taken by both APIs, translated below
_COMMON = frozenset({"model", "messages", "max_tokens", "max_completion_tokens", "stop", "stream", "n"})
#: taken for reasoning models only (mapped to thinking.effort)
_REASONING = frozenset({"reasoning_effort"})

EMBEDDING_FIELDS = frozenset({"model", "input", "dimensions", "encoding_format"})


def unsupported(field: str, why: str = "is not supported by the OpenAI-compatible API") -> ApiError:
    """400 ``40002`` naming the parameter."""
    return ApiError(400, "40002", f"Unsupported parameter: {field} {why}")


def _check_fields(body: Mapping[str, Any], allowed: frozenset[str] | set[str], api: str) -> None:
    for field in body:
        if field not in allowed:
            raise unsupported(field, f"is not supported by the OpenAI-compatible API for {api} models")


def native_chat(body: Mapping[str, Any], info: ModelInfo) -> dict[str, Any]:
    """The native v1/v3 body equivalent to an OpenAI-style ``body`` for ``info``'s API."""
    fields = _V1_FIELDS if info.api == "v1" else _V3_FIELDS
    reasoning = info.name in chat.REASONING_MODELS
    _check_fields(body, set(fields) | _COMMON | (_REASONING if reasoning else set()), info.api)
    if body.get("stream") not in (None, False):
        raise unsupported("stream", "true is not emulated; send stream=false")
    if body.get("n") not in (None, 1):
        raise unsupported("n", "other than 1 is not supported (one choice per request)")
    native: dict[str, Any] = {"includeAiFilters": False}
    for snake, camel in fields.items():
        if body.get(snake) is not None:
            native[camel] = body[snake]
    messages = body.get("messages")
    if isinstance(messages, list):
        # langchain-naver sends content "" for a tool-call turn; OpenAI allows null there
        native["messages"] = [
            {**m, "content": "" if m.get("content") is None else m["content"]} if isinstance(m, Mapping) else m
            for m in messages
        ]
    else:
        native["messages"] = messages
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        raise bad_param("max_completion_tokens", "cannot be sent together with max_tokens; send one of them")
    if body.get("max_completion_tokens") is not None:
        native["maxTokens" if info.api == "v1" else "maxCompletionTokens"] = body["max_completion_tokens"]
    elif body.get("max_tokens") is not None:
        native["maxTokens"] = body["max_tokens"]
    stop = body.get("stop")
    if stop is not None:
        native["stopBefore" if info.api == "v1" else "stop"] = [stop] if isinstance(stop, str) else stop
    if body.get("reasoning_effort") is not None:
        if body.get("thinking") is not None:
            raise bad_param("reasoning_effort", "cannot be sent together with thinking; send one of them")
        native["thinking"] = {"effort": body["reasoning_effort"]}
    return native


def chat_result(
    *, completion_id: str, created: int, model: str, answer: chat.Reply, prompt_tokens: int
) -> dict[str, Any]:
    """A ``chat.completion`` object as the ``openai`` SDK parses it."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.content}
    if answer.thinking is not None:
        message["thinking_content"] = answer.thinking
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "length" if answer.finish == "length" else "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": answer.output_tokens,
            "total_tokens": prompt_tokens + answer.output_tokens,
        },
    }


def embedding_input(body: Mapping[str, Any], models: Mapping[str, int]) -> tuple[str, str]:
    """(model, text) of an embeddings request; one string per request, floats of 1,024 dims."""
    _check_fields(body, EMBEDDING_FIELDS, "embedding")
    model = body.get("model")
    if model not in models:
        raise ApiError(
            400, "40080", f"Model not found: {model!r} is not an embedding model (use one of {', '.join(models)})"
        )
    if body.get("dimensions") not in (None, 1024):
        raise unsupported("dimensions", f"must be 1024 (got {body.get('dimensions')!r})")
    if body.get("encoding_format") not in (None, "float"):
        raise unsupported("encoding_format", f"must be 'float' (got {body.get('encoding_format')!r})")
    text = body.get("input")
    if isinstance(text, list):
        raise unsupported("input", "as a list is not supported: send one string per request")
    if not isinstance(text, str):
        raise bad_param("input", "is required: the text to embed, as a string")
    return str(model), text


def embedding_result(model: str, vector: list[float], tokens: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": vector}],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def models_result(names: list[str]) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "naver"} for n in names]}


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(error: ApiError) -> dict[str, Any]:
    """OpenAI's error shape for an emulator error."""
    param = None
    for prefix in ("Unsupported parameter: ", "Invalid parameter: "):
        if error.message.startswith(prefix):
            param = error.message[len(prefix) :].split(" ", 1)[0]
    return {
        "error": {
            "message": error.message,
            "type": _ERROR_TYPES.get(error.http_status, "server_error"),
            "code": error.code,
            "param": param,
        }
    }
