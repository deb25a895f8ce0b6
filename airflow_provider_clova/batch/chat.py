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

from airflow_provider_clova.batch.input import Request, Row, RowInputError
from airflow_provider_clova.batch.run import RowOutput
from airflow_provider_clova.client import calls
from airflow_provider_clova.client.errors import ClovaStudioBudgetError, ClovaStudioConfigError

if TYPE_CHECKING:
    from airflow_provider_clova.client.client import AsyncClovaStudioClient

#: ``validate(messages, parameters) -> (cost, reserved output tokens)``; raises
#: ``ClovaStudioConfigError`` for a bad request, ``ClovaStudioBudgetError`` for one too big.
Validator = Callable[[list[dict[str, Any]], dict[str, Any]], tuple[int, int]]


@dataclass(frozen=True)
class ChatRequest:
    """The payload of a chat row."""

    messages: list[dict[str, Any]]
    parameters: dict[str, Any]


def chat_validator(model: str, tuning_task_id: str | None, token_ceiling: int) -> Validator:
    """Check a request as the client would build it, and that it fits ``token_ceiling`` per window."""

    def validate(messages: list[dict[str, Any]], parameters: dict[str, Any]) -> tuple[int, int]:
        call = calls.chat_completion(messages, model=model, task_id=tuning_task_id, params=parameters, prefix="")
        if call.estimated_cost > token_ceiling:
            raise ClovaStudioBudgetError(
                f"this request costs about {call.estimated_cost} tokens (input + maxTokens), more than the "
                f"{token_ceiling} tokens per window this task may spend; lower maxTokens or shorten the messages"
            )
        return call.estimated_cost, call.reserved_output_tokens

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

    def parse(self, item: dict[str, Any]) -> Request:
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
            cost, reserved = self.validate(messages, merged)
        except ClovaStudioConfigError as exc:
            raise RowInputError("invalid_parameter", str(exc)) from None
        except ClovaStudioBudgetError as exc:
            raise RowInputError("budget", str(exc)) from None
        return Request(ChatRequest(messages, merged), cost, reserved)

    async def call(self, client: AsyncClovaStudioClient, row: Row) -> RowOutput:
        request: ChatRequest = row.payload
        result = await client.chat_completion(
            request.messages, model=self.model, task_id=self.tuning_task_id, **request.parameters
        )
        usage = result.usage
        return RowOutput(
            {"content": result.content, "finish_reason": result.finish_reason, "usage": usage.to_dict()},
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            charged_tokens=usage.prompt_tokens + row.reserved_output_tokens,
        )
