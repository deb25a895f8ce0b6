"""What CLOVA Studio's models are: chat API generation, tunability and context sizes.

Kept as packaged data (``data/models.json``) rather than code so that a new model is a
one-line change, and so the client and the emulator read the same facts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

from airflow_provider_clova.client.errors import ClovaStudioConfigError

ChatApi = Literal["v1", "v3"]


@dataclass(frozen=True)
class ModelInfo:
    """One model's static facts from the catalog."""

    name: str
    api: ChatApi
    tunable: bool
    context_tokens: int
    max_input_tokens: int
    max_output_tokens: int


@lru_cache(maxsize=1)
def _catalog() -> dict[str, ModelInfo]:
    raw = json.loads(resources.files(__package__).joinpath("data/models.json").read_text("utf-8"))
    return {name: ModelInfo(name=name, **fields) for name, fields in raw["models"].items()}


def known_models() -> list[str]:
    """Names of every model in the catalog."""
    return sorted(_catalog())


def tunable_models() -> list[str]:
    """Base models that the tuning API accepts."""
    return sorted(name for name, info in _catalog().items() if info.tunable)


def model_info(model: str) -> ModelInfo:
    """Facts about ``model``; an unknown name raises with the list of known ones."""
    try:
        return _catalog()[model]
    except KeyError:
        raise ClovaStudioConfigError(
            f"unknown CLOVA Studio model {model!r}; known models: {', '.join(known_models())}"
        ) from None
