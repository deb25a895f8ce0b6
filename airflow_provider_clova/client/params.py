"""Documented parameter ranges of the tuning and chat APIs, checked before a call is sent.

A bad value fails here with the field, the value and the allowed range named, instead of
costing a request (and QPM budget) to learn the same from a 400. Callers may use the API's
camelCase names or Python's snake_case (``max_tokens`` -> ``maxTokens``).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_clova.client.errors import ClovaStudioConfigError


@dataclass(frozen=True)
class Field:
    """One parameter: its type and allowed values. ``low_open`` means the bound is excluded."""

    kind: type | tuple[type, ...]
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()
    #: A credential: error messages name the field but never echo its value.
    secret: bool = False

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.low is not None and self.high is not None:
            left = "(" if self.low_open else "["
            return f"a number in {left}{self.low:g}, {self.high:g}]"
        return f"a {getattr(self.kind, '__name__', 'value')}"

    def check(self, name: str, value: Any, where: str) -> Any:
        if value is None:
            return None
        shown = "***" if self.secret else _shown(value)
        invalid = f"{where}: {name}={shown} is not valid; expected {self.describe()}"
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise ClovaStudioConfigError(invalid)
        if int in kinds and isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = _parsed(int, value, value)
        if float in kinds and isinstance(value, str):
            value = _parsed(float, value, value)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = _parsed(float, value, None)
            if value is None:
                raise ClovaStudioConfigError(f"{where}: {name}={shown} is out of range; expected {self.describe()}")
        if not isinstance(value, kinds):
            raise ClovaStudioConfigError(invalid)
        reject_non_finite(name, value, where)
        if self.choices and value not in self.choices:
            raise ClovaStudioConfigError(invalid)
        if self.low is not None and isinstance(value, (int, float)):
            too_low = value <= self.low if self.low_open else value < self.low
            if too_low or (self.high is not None and value > self.high):
                shown = "***" if self.secret else _shown(value)
                raise ClovaStudioConfigError(f"{where}: {name}={shown} is out of range; expected {self.describe()}")
        return value


def _parsed(kind: type, value: Any, fallback: Any) -> Any:
    """``kind(value)``, or ``fallback`` when it cannot be converted (too long, too large, not a number)."""
    try:
        return kind(value)
    except (ValueError, OverflowError):
        return fallback


def _shown(value: Any, limit: int = 80) -> str:
    """A value for an error message: its repr, shortened (a pasted document is not echoed whole)."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # ints past the digit limit, very deep containers
        return f"<{type(value).__name__}>"
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def reject_non_finite(name: str, value: Any, where: str, *, _depth: int = 0) -> None:
    """Raise naming the field when ``value`` is or holds NaN or an infinity.

    JSON has no such numbers: the request could not even be encoded, so say which field holds
    one instead of failing later in the encoder with a bare ``ValueError``.
    """
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ClovaStudioConfigError(
                f"{where}: {name}={value!r} is not a finite number. Fix: give a real number (JSON has no NaN or "
                "Infinity)"
            )
        return
    if isinstance(value, (str, int)) or value is None:
        return
    if _depth > MAX_NESTING:
        raise ClovaStudioConfigError(
            f"{where}: {name} is nested more than {MAX_NESTING} levels deep. Fix: flatten the value"
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            reject_non_finite(f"{name}.{key}", item, where, _depth=_depth + 1)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            reject_non_finite(f"{name}[{index}]", item, where, _depth=_depth + 1)


#: Deeper parameter values (tools, responseFormat schemas) are refused rather than walked.
MAX_NESTING = 64


_NUM = (int, float)

TUNING_FIELDS: dict[str, Field] = {
    "name": Field(str),
    "model": Field(str),
    "tuningType": Field(str, choices=("PEFT",)),
    "taskType": Field(str, choices=("GENERATION", "CLASSIFICATION")),
    "trainEpochs": Field(int, 1, 20),
    "learningRate": Field(float, 0, 1, low_open=True),
    "validationSplitRatio": Field(float, 0.0, 0.1),
    # The documented ranges of loraR disagree between pages (2-64, 2-8) and loraAlpha's is not
    # readable: check the type only and let the service judge the value.
    "loraR": Field(int),
    "loraAlpha": Field(int),
    "trainingDatasetFilePath": Field(str),
    "trainingDatasetBucket": Field(str),
    "trainingDatasetAccessKey": Field(str, secret=True),
    "trainingDatasetSecretKey": Field(str, secret=True),
}

_CHAT_COMMON: dict[str, Field] = {
    "topK": Field(int, 0, 128),
    "topP": Field(float, 0, 1, low_open=True),
    "includeAiFilters": Field(bool),
    "seed": Field(int, 0, 2**32 - 1),
}

CHAT_V1_FIELDS: dict[str, Field] = {
    **_CHAT_COMMON,
    "temperature": Field(float, 0, 1, low_open=True),
    "repeatPenalty": Field(float, 0, 10, low_open=True),
    "stopBefore": Field(list),
    "maxTokens": Field(int, 0, 4096, low_open=True),
}

CHAT_V3_FIELDS: dict[str, Field] = {
    **_CHAT_COMMON,
    "temperature": Field(float, 0, 1),  # 0 is valid on v3 (greedy), unlike v1
    "repetitionPenalty": Field(float, 0, 2, low_open=True),
    "stop": Field(list),
    "maxTokens": Field(int, 0, 32768, low_open=True),
    "maxCompletionTokens": Field(int, 0, 32768, low_open=True),
    "thinking": Field(dict),
    "tools": Field(list),
    "toolChoice": Field((str, dict)),
    "responseFormat": Field(dict),
}

#: maxTokens the service assumes when a request gives none (documented default for v1).
DEFAULT_MAX_TOKENS = 100
#: A reasoning model's ``thinking.effort`` values and the maxCompletionTokens each defaults to.
THINKING_EFFORT_DEFAULT_TOKENS: dict[str, int] = {"none": 512, "low": 5120, "medium": 10240, "high": 20480}
DEFAULT_THINKING_EFFORT = "low"
#: v3 fields a tuned model does not take (no images, reasoning, tools or structured outputs).
_NOT_FOR_TUNED_V3 = ("thinking", "tools", "toolChoice", "responseFormat")


def camel_case(name: str) -> str:
    """``max_tokens`` -> ``maxTokens``; camelCase names pass through."""
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


def normalize(params: Mapping[str, Any], fields: Mapping[str, Field], *, where: str) -> dict[str, Any]:
    """Check ``params`` against ``fields``; return them with API names, None values dropped."""
    out: dict[str, Any] = {}
    for raw_name, value in params.items():
        if not isinstance(raw_name, str):
            raise ClovaStudioConfigError(f"{where}: parameter names must be strings, got {_shown(raw_name)}")
        name = camel_case(raw_name)
        spec = fields.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, list(fields), n=1)
            suggestion = f"; did you mean {close[0]!r}?" if close else ""
            raise ClovaStudioConfigError(
                f"{where}: unknown parameter {raw_name!r}{suggestion} (known: {', '.join(sorted(fields))})"
            )
        checked = spec.check(name, value, where)
        if checked is not None:
            out[name] = checked
    return out


def chat_fields(api: str) -> dict[str, Field]:
    """The parameter table of a chat API generation (``v1`` or ``v3``)."""
    return CHAT_V1_FIELDS if api == "v1" else CHAT_V3_FIELDS


def normalize_chat_params(
    params: Mapping[str, Any],
    *,
    api: str,
    max_output_tokens: int,
    reasoning: bool = False,
    tuned: bool = False,
) -> dict[str, Any]:
    """Chat parameters checked for ``api``, including the model's own output ceiling.

    ``reasoning`` (HCX-007): ``thinking.effort`` is checked and only ``maxCompletionTokens``
    is taken; ``tuned``: a tuned v3 model takes no reasoning, tools or structured outputs.
    """
    where = f"chat completion ({api})"
    out = normalize(params, chat_fields(api), where=where)
    if "maxTokens" in out and "maxCompletionTokens" in out:
        raise ClovaStudioConfigError(f"{where}: give maxTokens or maxCompletionTokens, not both")
    if reasoning and "maxTokens" in out:
        raise ClovaStudioConfigError(
            f"{where}: a reasoning model takes maxCompletionTokens (1-{max_output_tokens}), not maxTokens; "
            f"nothing was sent. Fix: rename maxTokens to maxCompletionTokens"
        )
    if "thinking" in out:
        if not reasoning:
            raise ClovaStudioConfigError(
                f"{where}: thinking is a reasoning model's parameter (HCX-007); remove it for this model"
            )
        _check_thinking(out["thinking"], where)
    if tuned and api == "v3":
        refused = [name for name in _NOT_FOR_TUNED_V3 if name in out]
        if refused:
            raise ClovaStudioConfigError(
                f"{where}: a tuned model takes no {', '.join(refused)} (no reasoning, tools or structured "
                "outputs); remove them"
            )
    for key in ("maxTokens", "maxCompletionTokens"):
        if key in out and out[key] > max_output_tokens:
            raise ClovaStudioConfigError(
                f"{where}: {key}={out[key]} exceeds this model's output limit of {max_output_tokens} tokens"
            )
    return out


def _check_thinking(value: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(value) - {"effort"})
    if unknown:
        raise ClovaStudioConfigError(f"{where}: thinking takes only 'effort', not {', '.join(unknown)}")
    effort = value.get("effort")
    if effort is not None and effort not in THINKING_EFFORT_DEFAULT_TOKENS:
        raise ClovaStudioConfigError(
            f"{where}: thinking.effort={effort!r} is not valid; expected one of "
            f"{', '.join(THINKING_EFFORT_DEFAULT_TOKENS)}"
        )


def requested_output_tokens(params: Mapping[str, Any], *, reasoning: bool = False) -> int:
    """The output tokens a request reserves against TPM: its maxCompletionTokens or maxTokens,
    else the service's default (a reasoning model's default follows ``thinking.effort``)."""
    given = params.get("maxCompletionTokens") or params.get("maxTokens")
    if given:
        return int(given)
    if reasoning:
        thinking = params.get("thinking") or {}
        effort = thinking.get("effort") if isinstance(thinking, Mapping) else None
        return THINKING_EFFORT_DEFAULT_TOKENS[effort or DEFAULT_THINKING_EFFORT]
    return DEFAULT_MAX_TOKENS
