"""What CLOVA Studio's models are: chat API generation, tunability, reasoning and context sizes.

Kept as packaged data (``data/models.json``) rather than code so that a new model is a
one-line change, and so the client and the emulator read the same facts. A connection can
override it (``extra.models``), e.g. ``{"HCX-005": {"tunable": true}}`` the day NAVER opens a
model to training, or describe a model newer than this provider.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from airflow_provider_clova.client.errors import ClovaStudioConfigError

ChatApi = Literal["v1", "v3"]
#: Catalog entries keyed by model name, as a connection's ``extra.models`` gives them.
Overrides = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class ModelInfo:
    """One model's static facts from the catalog."""

    name: str
    api: ChatApi
    tunable: bool
    context_tokens: int
    max_input_tokens: int
    max_output_tokens: int
    #: A reasoning model (HCX-007): takes ``thinking`` and ``maxCompletionTokens`` only.
    reasoning: bool = False


_FIELDS = {f.name: f for f in fields(ModelInfo) if f.name != "name"}
_INT_FIELDS = ("context_tokens", "max_input_tokens", "max_output_tokens")
_BOOL_FIELDS = ("tunable", "reasoning")


@lru_cache(maxsize=1)
def _packaged() -> dict[str, ModelInfo]:
    raw = json.loads(resources.files(__package__).joinpath("data/models.json").read_text("utf-8"))
    return {name: ModelInfo(name=name, **entry) for name, entry in raw["models"].items()}


def validate_overrides(overrides: Overrides) -> dict[str, dict[str, Any]]:
    """Check ``extra.models``: known field names and types; a model new to the catalog needs ``api``.

    Raises naming the field (``extra.models.HCX-005.tunable``) so a typo fails when the
    connection is read, not at the first call that happens to use that model.
    """
    if not isinstance(overrides, Mapping):
        raise ClovaStudioConfigError('extra.models must be an object like {"HCX-005": {"tunable": true}}')
    out: dict[str, dict[str, Any]] = {}
    for model, entry in overrides.items():
        where = f"extra.models.{model}"
        if not isinstance(entry, Mapping):
            raise ClovaStudioConfigError(f'{where} must be an object, e.g. {{"tunable": true}}')
        unknown = sorted(set(entry) - set(_FIELDS))
        if unknown:
            raise ClovaStudioConfigError(
                f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}"
            )
        for name, value in entry.items():
            if name in _BOOL_FIELDS and not isinstance(value, bool):
                raise ClovaStudioConfigError(f"{where}.{name} must be true or false, got {value!r}")
            if name in _INT_FIELDS and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ClovaStudioConfigError(f"{where}.{name} must be a whole number >= 1, got {value!r}")
            if name == "api" and value not in ("v1", "v3"):
                raise ClovaStudioConfigError(f"{where}.api must be 'v1' or 'v3', got {value!r}")
        if str(model) not in _packaged() and "api" not in entry:
            raise ClovaStudioConfigError(
                f"{where}: {model!r} is not in the provider's catalog, so give at least its chat API, "
                'e.g. {"api": "v3", "max_output_tokens": 4096}'
            )
        out[str(model)] = dict(entry)
    return out


def catalog(overrides: Overrides | None = None) -> dict[str, ModelInfo]:
    """The packaged catalog with a connection's overrides applied."""
    merged = dict(_packaged())
    for name, entry in (overrides or {}).items():
        base = merged.get(name)
        if base is None:
            # A model newer than the catalog: the fields not given take the current v3 models' values.
            context = int(entry.get("context_tokens", 128000))
            base = ModelInfo(name, entry["api"], False, context, context, 4096)
        merged[name] = replace(base, **entry)
    return merged


def known_models(overrides: Overrides | None = None) -> list[str]:
    """Names of every model in the catalog."""
    return sorted(catalog(overrides))


def tunable_models(overrides: Overrides | None = None) -> list[str]:
    """Base models that the tuning API accepts."""
    return sorted(name for name, info in catalog(overrides).items() if info.tunable)


def model_info(model: str, overrides: Overrides | None = None) -> ModelInfo:
    """Facts about ``model``; an unknown name raises with the list of known ones."""
    try:
        return catalog(overrides)[model] if overrides else _packaged()[model]
    except KeyError:
        raise ClovaStudioConfigError(
            f"unknown CLOVA Studio model {model!r}; known models: {', '.join(known_models(overrides))}. "
            "Fix: pick one of them, or describe the model in the connection's extra.models"
        ) from None


def tunable_model_info(model: str, overrides: Overrides | None = None, *, where: str = "tuning") -> ModelInfo:
    """Facts about a model to be tuned; an unknown or untunable name raises listing the tunable ones."""
    info = catalog(overrides).get(model)
    if info is None or not info.tunable:
        reason = "is not a CLOVA Studio model this provider knows" if info is None else "cannot be tuned"
        tunable = ", ".join(tunable_models(overrides)) or "none"
        entry = '{"tunable": true}' if info is not None else '{"api": "v3", "tunable": true}'
        raise ClovaStudioConfigError(
            f"{where}: model {model!r} {reason}; tunable models: {tunable}. Nothing was sent. "
            f"Fix: tune one of them, or, if NAVER has opened {model} to training, set the connection's "
            f'extra.models to {{"{model}": {entry}}}'
        )
    return info
