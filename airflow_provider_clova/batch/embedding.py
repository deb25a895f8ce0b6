"""Embedding rows: ``{<id_field>, <text_field>, <carried fields>...}`` in, one embedding each, a vector out.

The :class:`~airflow_provider_clova.batch.run.RowKind` of ``ClovaStudioEmbeddingOperator``.
The field names are the user's (a document set rarely calls its text ``text``), so this
kind declares them per instance; fields listed in ``carry`` are copied into the result
(a title or URL to load next to the vector), any other field is an input error.

Every row is content-hashed (sha256 of the model and the text, :func:`content_hash`): the
engine writes the hash into the record, and a result from an earlier try or an earlier
output counts only for the same text and model. So a nightly refresh given last night's
output pays only for the texts that changed.

A success records ``embedding`` (the floats), ``input_tokens`` and ``content_hash``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_clova.batch.input import Row, RowInputError
from airflow_provider_clova.batch.run import RowOutput
from airflow_provider_clova.client.embeddings import (
    check_text,
    content_hash,
    embedding_model,
    estimate_tokens,
)
from airflow_provider_clova.client.errors import ClovaStudioConfigError

if TYPE_CHECKING:
    from airflow_provider_clova.client.client import AsyncClovaStudioClient


@dataclass(frozen=True)
class EmbeddingRequest:
    """The payload of an embedding row."""

    text: str
    content_hash: str
    #: The ``carry`` fields the line has, copied into the result.
    carried: Mapping[str, Any]


@dataclass(frozen=True)
class EmbeddingRows:
    """Rows whose ``text_field`` is embedded with ``model`` (checked against ``token_ceiling`` per window)."""

    model: str
    text_field: str = "text"
    id_field: str = "id"
    carry: tuple[str, ...] = ()
    #: The most tokens one request may cost in this task's window (budget x share): a text
    #: whose estimate is larger could never be sent.
    token_ceiling: int | None = None

    def __post_init__(self) -> None:
        # the canonical name: "bge-m3" and "embedding-v2" hash (and are paced) as one model
        object.__setattr__(self, "model", embedding_model(self.model).name)

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.text_field, *self.carry)

    def parse(self, item: dict[str, Any]) -> EmbeddingRequest:
        text = item.get(self.text_field)
        if not isinstance(text, str):
            raise RowInputError(
                "invalid_request", f"{self.text_field} is missing or not a string; give the text to embed"
            )
        if not text.strip():
            raise RowInputError("empty_text", f"{self.text_field} is empty; there is nothing to embed")
        info = embedding_model(self.model)
        try:
            check_text(text, info)
        except ClovaStudioConfigError as exc:
            raise RowInputError("text_too_long", str(exc)) from None
        estimate = estimate_tokens(text)
        if self.token_ceiling is not None and estimate > self.token_ceiling:
            raise RowInputError(
                "budget",
                f"this text may cost up to {estimate} tokens, more than the {self.token_ceiling} tokens per "
                f"window this task may spend on {self.model}. Fix: split the text, take more pool slots, or "
                f"raise {self.model}'s tpm in the connection's extra.limits",
            )
        carried = {name: item[name] for name in self.carry if name in item}
        return EmbeddingRequest(text, content_hash(text, self.model), carried)

    async def call(self, client: AsyncClovaStudioClient, row: Row) -> RowOutput:
        request: EmbeddingRequest = row.payload
        result = await client.embed(request.text, self.model)
        return RowOutput(
            {**request.carried, "embedding": result.embedding, "input_tokens": result.input_tokens},
            prompt_tokens=result.input_tokens,
            charged_tokens=result.input_tokens,
        )
