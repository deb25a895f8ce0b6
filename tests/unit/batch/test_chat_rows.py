"""Chat rows for a reasoning model (HCX-007): its parameters checked per row, its reasoning kept."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_clova.batch.chat import ChatRows, chat_validator
from airflow_provider_clova.batch.input import Row, RowInputError
from airflow_provider_clova.client.models import ChatResult, TokenUsage

MESSAGES = [{"role": "user", "content": "6 x 7?"}]


class ReasoningClient:
    async def chat_completion(self, messages: list[dict[str, Any]], **kwargs: Any) -> ChatResult:
        return ChatResult(
            content="42",
            role="assistant",
            finish_reason="stop",
            usage=TokenUsage(prompt_tokens=5, completion_tokens=30),
            api="v3",
            thinking_content="6 x 7 = 42",
        )


def rows() -> ChatRows:
    return ChatRows("HCX-007", None, {"thinking": {"effort": "low"}}, chat_validator("HCX-007", None, 10**6))


async def test_a_reasoning_row_records_its_thinking_content_and_charges_completion_tokens() -> None:
    kind = rows()
    request = kind.parse({"messages": MESSAGES, "parameters": {"maxCompletionTokens": 100}})
    output = await kind.call(ReasoningClient(), Row(line=1, id="q1", payload=request))  # type: ignore[arg-type]
    assert output.fields["thinking_content"] == "6 x 7 = 42"
    assert output.charged_tokens == 5 + 100
    # Without maxCompletionTokens the reservation is the effort's documented default (low: 5,120).
    assert kind.parse({"messages": MESSAGES}).reserved_output_tokens == 5120


def test_max_tokens_on_a_reasoning_model_is_a_row_error() -> None:
    with pytest.raises(RowInputError) as info:
        rows().parse({"messages": MESSAGES, "parameters": {"maxTokens": 100}})
    assert info.value.type == "invalid_parameter" and "maxCompletionTokens" in info.value.message
