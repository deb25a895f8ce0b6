"""Chat completions v1 and v3 and the token counter: request checks, replies, result shapes.

Replies are deterministic: the same model (or task), messages and parameters always give the
same text, so a DAG test can assert on it. A tuned task whose training data has a ``Text``
equal to the last user message (ignoring case and spacing) answers that row's ``Completion``,
which lets a demo show that tuning "worked". Output never exceeds ``maxTokens``: a cut reply
ends with ``length``; a natural end is ``end_token`` (v1) or ``stop`` (v3); a reply cut at a
``stopBefore`` string is ``stop_before`` (v1), at a ``stop`` string ``stop`` (v3).

HCX-007 reasons: it takes ``thinking.effort`` and only ``maxCompletionTokens`` (the budget
for the reasoning and the answer together), and answers the reasoning in
``message.thinkingContent``.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from airflow_provider_clova.client.catalog import ModelInfo
from airflow_provider_clova.testing.emulator.envelope import ApiError, bad_param
from airflow_provider_clova.testing.emulator.params import (
    bool_param,
    float_param,
    int_param,
    str_list_param,
)
from airflow_provider_clova.testing.emulator.storage import normalize
from airflow_provider_clova.testing.emulator.tokenizer import count_message, count_text, message_text, truncate

Api = Literal["v1", "v3"]

#: maxTokens (or maxCompletionTokens) when the request leaves it out
DEFAULT_MAX_TOKENS = 100
V1_ROLES = ("system", "user", "assistant")
V3_ROLES = ("system", "user", "assistant", "tool")
MAX_SEED = 2**32 - 1
EFFORTS = ("none", "low", "medium", "high")
#: models that reason (HCX-007 page): thinking.effort, maxCompletionTokens only, thinkingContent
REASONING_MODELS = frozenset({"HCX-007"})
DEFAULT_EFFORT = "low"
#: maxCompletionTokens of a reasoning model when the request leaves it out, by effort (doc)
REASONING_DEFAULT_MAX = {"none": 512, "low": 5120, "medium": 10240, "high": 20480}
#: tokens of reasoning the emulator writes per effort (at most half of maxCompletionTokens)
THINKING_TOKENS = {"none": 0, "low": 24, "medium": 48, "high": 96}
Finish = Literal["length", "end", "stop_sequence"]

# Words of at most 4 letters: one token each, so a reply's length is easy to reason about.
_WORDS = (
    *("data", "plan", "tune", "step", "task", "flow", "goal", "test", "path", "node", "loop"),
    *("time", "rate", "fact", "note", "form", "line", "page", "rule", "case", "base", "core"),
    *("unit", "view", "work", "yes", "well", "good", "idea", "sure", "next", "then"),
)


@dataclass(frozen=True)
class ChatRequest:
    """A checked chat request: what the reply and the budgets depend on."""

    messages: list[dict[str, Any]]
    max_tokens: int
    stop: list[str]
    seed: int
    include_ai_filters: bool
    sampling: dict[str, Any]
    effort: str | None = None  # reasoning effort of a reasoning model; None for the others


def parse_messages(body: Mapping[str, Any], roles: tuple[str, ...], *, parts: bool) -> list[dict[str, Any]]:
    """``messages``: a non-empty list of {role, content}; v3 also takes content-part lists."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_param("messages", "is required: a non-empty list of {role, content}")
    checked = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise bad_param(f"messages[{index}]", "must be an object with role and content")
        if message.get("role") not in roles:
            raise bad_param(f"messages[{index}].role", f"must be one of {', '.join(roles)}", message.get("role"))
        content = message.get("content")
        if not isinstance(content, str) and not (parts and isinstance(content, list)):
            kind = "a string or a list of content parts" if parts else "a string"
            raise bad_param(f"messages[{index}].content", f"must be {kind}")
        checked.append(dict(message))
    return checked


def parse_v1(body: object, info: ModelInfo) -> ChatRequest:
    """A v1 body with the documented ranges."""
    if not isinstance(body, Mapping):
        raise ApiError(400, "40000", "Invalid request: the body must be a JSON object")
    messages = parse_messages(body, V1_ROLES, parts=False)
    sampling = {
        "temperature": float_param(body, "temperature", 0.0, 1.0, 0.5, lo_open=True),
        "topK": int_param(body, "topK", 0, 128, 0),
        "topP": float_param(body, "topP", 0.0, 1.0, 0.8, lo_open=True),
        "repeatPenalty": float_param(body, "repeatPenalty", 0.0, 10.0, 5.0, lo_open=True),
    }
    max_tokens = int_param(body, "maxTokens", 1, min(4096, info.max_output_tokens), DEFAULT_MAX_TOKENS)
    assert max_tokens is not None
    return ChatRequest(
        messages=messages,
        max_tokens=max_tokens,
        stop=str_list_param(body, "stopBefore"),
        seed=int_param(body, "seed", 0, MAX_SEED, 0) or 0,
        include_ai_filters=bool_param(body, "includeAiFilters", True),
        sampling=sampling,
    )


def parse_v3(body: object, info: ModelInfo, *, tuned: bool = False) -> ChatRequest:
    """A v3 body: ``repetitionPenalty``, ``stop``, ``maxTokens`` xor ``maxCompletionTokens``."""
    if not isinstance(body, Mapping):
        raise ApiError(400, "40000", "Invalid request: the body must be a JSON object")
    messages = parse_messages(body, V3_ROLES, parts=True)
    sampling: dict[str, Any] = {
        "temperature": float_param(body, "temperature", 0.0, 1.0, 0.5),
        "topK": int_param(body, "topK", 0, 128, 0),
        "topP": float_param(body, "topP", 0.0, 1.0, 0.8, lo_open=True),
        "repetitionPenalty": float_param(body, "repetitionPenalty", 0.0, 2.0, 1.1, lo_open=True),
    }
    effort = _effort(body, info, tuned=tuned)  # None unless the model reasons
    if effort is not None:
        if body.get("maxTokens") is not None:
            raise bad_param("maxTokens", f"is not supported by {info.name}; send maxCompletionTokens instead")
        max_tokens = int_param(body, "maxCompletionTokens", 1, info.max_output_tokens, REASONING_DEFAULT_MAX[effort])
        sampling["thinking"] = effort
    else:
        if body.get("maxTokens") is not None and body.get("maxCompletionTokens") is not None:
            raise bad_param("maxCompletionTokens", "cannot be sent together with maxTokens; send one of them")
        field = "maxCompletionTokens" if body.get("maxCompletionTokens") is not None else "maxTokens"
        max_tokens = int_param(body, field, 1, info.max_output_tokens, DEFAULT_MAX_TOKENS)
    assert max_tokens is not None
    return ChatRequest(
        messages=messages,
        max_tokens=max_tokens,
        stop=str_list_param(body, "stop"),
        seed=int_param(body, "seed", 0, MAX_SEED, 0) or 0,
        include_ai_filters=bool_param(body, "includeAiFilters", True),
        sampling=sampling,
        effort=effort,
    )


def _effort(body: Mapping[str, Any], info: ModelInfo, *, tuned: bool) -> str | None:
    """``thinking.effort`` for a reasoning model (default low); refused for every other model."""
    thinking = body.get("thinking")
    if info.name not in REASONING_MODELS or tuned:
        if thinking is not None:
            what = "a tuned model" if tuned else info.name
            raise bad_param(
                "thinking", f"is not supported by {what}; only {', '.join(sorted(REASONING_MODELS))} reasons"
            )
        return None
    if thinking is None:
        return DEFAULT_EFFORT
    if not isinstance(thinking, Mapping):
        raise bad_param("thinking", "must be an object like {'effort': 'low'}")
    effort = thinking.get("effort", DEFAULT_EFFORT)
    if effort not in EFFORTS:
        raise bad_param("thinking.effort", f"must be one of {', '.join(EFFORTS)}", effort)
    return str(effort)


def input_tokens(request: ChatRequest) -> int:
    return sum(count_message(m.get("content")) for m in request.messages)


def check_context(tokens: int, max_tokens: int, info: ModelInfo) -> None:
    """400 ``40003`` when the prompt, or prompt + maxTokens, does not fit the model."""
    if tokens > info.max_input_tokens:
        raise ApiError(
            400,
            "40003",
            f"Text too long: {tokens} input tokens exceed {info.name}'s input limit of {info.max_input_tokens}",
        )
    if tokens + max_tokens > info.context_tokens:
        raise ApiError(
            400,
            "40003",
            f"Text too long: {tokens} input tokens + maxTokens {max_tokens} exceed {info.name}'s context "
            f"of {info.context_tokens}",
        )


@dataclass(frozen=True)
class Reply:
    content: str
    output_tokens: int  # reasoning included
    finish: Finish
    seed: int
    thinking: str | None = None


def _digest(target: str, request: ChatRequest) -> bytes:
    # Stop sequences only cut the text, so they are not part of what picks it.
    material = json.dumps([target, request.messages, request.seed, request.sampling], sort_keys=True, default=str)
    return hashlib.sha256(material.encode("utf-8")).digest()


def _generated(rng: random.Random, model: str) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randrange(12, 60))]
    sentences, start = [], 0
    while start < len(words):
        end = start + rng.randrange(5, 11)
        chunk = words[start:end]
        sentences.append(" ".join([chunk[0].capitalize(), *chunk[1:]]) + ".")
        start = end
    return f"({model} emulator) " + " ".join(sentences)


def reply(request: ChatRequest, *, target: str, model: str, answers: Mapping[str, str] | None = None) -> Reply:
    """The deterministic answer to ``request`` from ``target`` (a model name or a task id)."""
    digest = _digest(target, request)
    seed = request.seed or int.from_bytes(digest[:4], "big") or 1
    last_user = next((m for m in reversed(request.messages) if m.get("role") == "user"), None)
    content = None
    if answers and last_user is not None:
        content = answers.get(normalize(message_text(last_user.get("content"))))
    rng = random.Random(digest)
    if content is None:
        content = _generated(rng, model)
    thinking, budget = None, request.max_tokens
    if request.effort is not None and THINKING_TOKENS[request.effort] > 0:
        thinking, _ = truncate(
            "Thinking: " + _generated(rng, model), min(THINKING_TOKENS[request.effort], request.max_tokens // 2)
        )
        budget -= count_text(thinking)
    finish: Finish = "end"
    stops = [s for s in request.stop if s and s in content]
    if stops:
        content, finish = content[: min(content.index(s) for s in stops)], "stop_sequence"
    content, cut = truncate(content, budget)
    output = count_text(content) + (count_text(thinking) if thinking else 0)
    return Reply(content, output, "length" if cut else finish, seed, thinking)


AI_FILTER = (("curse", "insult"), ("curse", "discrimination"), ("unsafeContents", "sexualHarassment"))


def _ai_filter(enabled: bool) -> list[dict[str, str]] | None:
    if not enabled:
        return None
    return [{"groupName": g, "name": n, "score": "0", "result": "OK"} for g, n in AI_FILTER]


def v1_result(request: ChatRequest, answer: Reply, prompt_tokens: int) -> dict[str, Any]:
    return {
        "message": {"role": "assistant", "content": answer.content},
        "stopReason": {"length": "length", "end": "end_token", "stop_sequence": "stop_before"}[answer.finish],
        "inputLength": prompt_tokens,
        "outputLength": answer.output_tokens,
        "seed": answer.seed,
        "aiFilter": _ai_filter(request.include_ai_filters),
    }


def v3_result(request: ChatRequest, answer: Reply, prompt_tokens: int) -> dict[str, Any]:
    message = {"role": "assistant", "content": answer.content}
    if answer.thinking is not None:
        message["thinkingContent"] = answer.thinking
    return {
        "message": message,
        "finishReason": "length" if answer.finish == "length" else "stop",
        "usage": {
            "promptTokens": prompt_tokens,
            "completionTokens": answer.output_tokens,
            "totalTokens": prompt_tokens + answer.output_tokens,
        },
        "seed": answer.seed,
        "aiFilter": _ai_filter(request.include_ai_filters),
    }


def tokenize_result(body: object, api: Api) -> dict[str, Any]:
    """The token counter: each message echoed with its ``count`` (overhead included)."""
    if not isinstance(body, Mapping):
        raise ApiError(400, "40000", "Invalid request: the body must be a JSON object")
    messages = parse_messages(body, V1_ROLES if api == "v1" else V3_ROLES, parts=api == "v3")
    return {
        "messages": [
            {"role": m["role"], "content": m["content"], "count": count_message(m["content"])} for m in messages
        ]
    }
