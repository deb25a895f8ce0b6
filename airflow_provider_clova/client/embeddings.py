"""What CLOVA Studio's embedding models are, and what a text costs before it is sent.

Packaged data (``data/embedding_models.json``), like the chat catalog: the path each model
is called on, its documented input limit (8,192 tokens for v2, 500 for the v1 models) and
its other names (v2 is ``bge-m3`` in the OpenAI-compatible API).

Two bounds on a text's tokens, both without a network call:

* :func:`estimate_tokens`, an *upper* bound (non-whitespace characters, see
  :mod:`.tokens`): what the limiter reserves before sending, settled with the answer's
  ``inputTokens`` after. An embedding has no ``maxTokens``, so TPM counts input tokens alone.
* :func:`least_tokens`, a *lower* bound (non-whitespace characters / the most characters one
  token can cover): a text is refused before sending only when even this bound is over the
  model's limit, i.e. when the text is proven too long. Anything closer to the limit is sent,
  and the service's 400 becomes that text's error.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from airflow_provider_clova.client.errors import ClovaStudioConfigError
from airflow_provider_clova.client.tokens import count_non_whitespace

DEFAULT_EMBEDDING_MODEL = "embedding-v2"
EMBEDDING_PATH = "/v1/api-tools/embedding"


@dataclass(frozen=True)
class EmbeddingModel:
    """One embedding model's static facts."""

    name: str
    #: The last path segment: ``/v1/api-tools/embedding/<path>``.
    path: str
    max_input_tokens: int
    dimensions: int
    #: The most characters one token covers (proves a text too long; see the module doc).
    max_chars_per_token: int
    aliases: tuple[str, ...] = ()

    @property
    def url_path(self) -> str:
        return f"{EMBEDDING_PATH}/{self.path}"


@lru_cache(maxsize=1)
def _catalog() -> dict[str, EmbeddingModel]:
    text = resources.files(__package__).joinpath("data/embedding_models.json").read_text("utf-8")
    raw = json.loads(text)["models"]
    return {
        name: EmbeddingModel(name=name, **{**entry, "aliases": tuple(entry.get("aliases", ()))})
        for name, entry in raw.items()
    }


def embedding_models() -> list[str]:
    """The embedding models' names (aliases not included)."""
    return sorted(_catalog())


def embedding_model(model: str) -> EmbeddingModel:
    """Facts about ``model`` (a name or an alias, any case); an unknown name raises listing the known ones."""
    wanted = str(model).lower()
    for info in _catalog().values():
        if wanted == info.name.lower() or wanted in (alias.lower() for alias in info.aliases):
            return info
    raise ClovaStudioConfigError(
        f"embedding: unknown model {model!r}. Fix: use one of {', '.join(embedding_models())} "
        "(embedding-v2 is also called bge-m3)"
    )


def estimate_tokens(text: str) -> int:
    """Upper bound of ``text``'s input tokens: what the limiter reserves before sending."""
    return max(1, count_non_whitespace(text))


def least_tokens(text: str, info: EmbeddingModel) -> int:
    """Lower bound of ``text``'s input tokens for ``info``'s tokenizer."""
    return math.ceil(count_non_whitespace(text) / info.max_chars_per_token)


def check_text(text: object, info: EmbeddingModel) -> str:
    """``text`` if it can be sent to ``info``; raises ``ClovaStudioConfigError`` saying why not."""
    if not isinstance(text, str):
        raise ClovaStudioConfigError(
            f"embedding: text must be a string, got {type(text).__name__}. Fix: pass the text to embed as str"
        )
    if not text.strip():
        raise ClovaStudioConfigError("embedding: text is empty. Fix: drop the row or give it some text")
    least = least_tokens(text, info)
    if least > info.max_input_tokens:
        raise ClovaStudioConfigError(
            f"embedding: the text is at least {least} tokens, over {info.name}'s limit of "
            f"{info.max_input_tokens}; nothing was sent. Fix: split the text into chunks of at most "
            f"{info.max_input_tokens} tokens"
        )
    return text


def content_hash(text: str, model: str) -> str:
    """sha256 of the model and the text: equal hashes mean the same vector, so it need not be paid again."""
    digest = hashlib.sha256()
    digest.update(embedding_model(model).name.encode("utf-8"))
    digest.update(b"\0")
    digest.update(text.encode("utf-8"))
    return digest.hexdigest()
