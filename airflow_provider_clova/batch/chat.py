"""Chat rows: ``{"id", "messages", "parameters"}`` in, one chat completion each, content out.

The :class:`~airflow_provider_clova.batch.run.RowKind` of ``ClovaStudioBatchInferenceOperator``.
A row's ``parameters`` win over the operator's defaults key by key; the merged request is
checked against the model's documented ranges and the task's token budget before it can
cost anything. A success records ``content``, ``finish_reason`` and ``usage``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_clova.batch.input import Row, RowInputError
from airflow_provider_clova.batch.run import RowOutput
from airflow_provider_clova.client import calls
from airflow_provider_clova.client.catalog import Overrides
from airflow_provider_clova.client.errors import ClovaStudioBudgetError, ClovaStudioConfigError

if TYPE_CHECKING:
    from airflow_provider_clova.client.client import AsyncClovaStudioClient

#: ``validate(messages, parameters) -> output tokens the request reserves``; raises
#: ``ClovaStudioConfigError`` for a bad request, ``ClovaStudioBudgetError`` for one too big.
Validator = Callable[[list[dict[str, Any]], dict[str, Any]], int]


@dataclass(frozen=True)
class ChatRequest:
    """The payload of a chat row."""

    messages: list[dict[str, Any]]
    parameters: dict[str, Any]
    #: Output tokens the request reserves (its maxTokens, or the default): TPM charges them.
    reserved_output_tokens: int


def chat_validator(
    model: str, tuning_task_id: str | None, token_ceiling: int, models: Overrides | None = None
) -> Validator:
    """Check a request as the client would build it (with the connection's ``extra.models``),
    and that it fits ``token_ceiling`` per window."""

    def validate(messages: list[dict[str, Any]], parameters: dict[str, Any]) -> int:
        call = calls.chat_completion(
            messages, model=model, task_id=tuning_task_id, params=parameters, prefix="", models=models
        )
        if call.estimated_cost > token_ceiling:
            raise ClovaStudioBudgetError(
                f"this request costs about {call.estimated_cost} tokens (input + maxTokens), more than the "
                f"{token_ceiling} tokens per window this task may spend; lower maxTokens or shorten the messages"
            )
        return call.reserved_output_tokens

    return validate


@dataclass(frozen=True)
class ChatRows:
    """Rows sent as chat completions to ``model`` (or the tuned task ``tuning_task_id``)."""

    model: str
    tuning_task_id: str | None
    #: Parameters of every row; a row's own ``parameters`` win key by key.
    defaults: Mapping[str, Any]
    validate: Validator

    fields: ClassVar[tuple[str, ...]] = ("messages", "parameters")
    id_field: ClassVar[str] = "id"

    def parse(self, item: dict[str, Any]) -> ChatRequest:
        messages = item.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RowInputError(
                "invalid_request", "messages is missing or empty; give a list of {role, content} objects"
            )
        parameters = item.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise RowInputError("invalid_parameter", "parameters must be an object")
        merged = {**self.defaults, **parameters}
        try:
            reserved = self.validate(messages, merged)
        except ClovaStudioConfigError as exc:
            raise RowInputError("invalid_parameter", str(exc)) from None
        except ClovaStudioBudgetError as exc:
            raise RowInputError("budget", str(exc)) from None
        return ChatRequest(messages, merged, reserved)

    async def call(self, client: AsyncClovaStudioClient, row: Row) -> RowOutput:
        request: ChatRequest = row.payload
        result = await client.chat_completion(
            request.messages, model=self.model, task_id=self.tuning_task_id, **request.parameters
        )
        usage = result.usage
        fields = {"content": result.content, "finish_reason": result.finish_reason, "usage": usage.to_dict()}
        if result.thinking_content is not None:  # a reasoning model's (HCX-007) reasoning text
            fields["thinking_content"] = result.thinking_content
        return RowOutput(
            fields,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            charged_tokens=usage.prompt_tokens + request.reserved_output_tokens,
        )
