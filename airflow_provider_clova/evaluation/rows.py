"""Evaluation rows: the batch :class:`~airflow_provider_clova.batch.run.RowKind` of an evaluation set.

A line is ``{"id", "prompt" | "messages", "reference", "pattern"?}``:

* ``prompt`` (one user message) or ``messages`` (a chat, ending with the user turn to answer);
* ``reference``: the expected answer, a non-empty string;
* ``pattern`` (optional): a Python regular expression the answer should match (the ``regex``
  metric, averaged over the rows that carry one).

Each row is sent to one candidate through the chat row kind (so parameters, ranges and the
token budget are checked exactly as for a batch), scored with :mod:`.metrics`, and, when a
judge is set, graded by it through the same client. A record carries ``question``,
``reference``, ``answer``, ``finish_reason``, ``usage``, ``scores`` and, judged, ``judge``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_clova.batch.chat import ChatRequest, ChatRows
from airflow_provider_clova.batch.input import Row, RowInputError
from airflow_provider_clova.batch.run import RowOutput
from airflow_provider_clova.evaluation.metrics import score

if TYPE_CHECKING:
    from airflow_provider_clova.client.client import AsyncClovaStudioClient
    from airflow_provider_clova.evaluation.judge import Judge


@dataclass(frozen=True)
class EvalRequest:
    """The payload of an evaluation row."""

    chat: ChatRequest
    question: str
    reference: str
    pattern: re.Pattern[str] | None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # v3 content parts
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


@dataclass(frozen=True)
class EvalRows:
    """Rows of an evaluation set, asked of one candidate (``chat``) and optionally judged."""

    chat: ChatRows
    judge: Judge | None = None

    fields: ClassVar[tuple[str, ...]] = ("prompt", "messages", "reference", "pattern")

    def parse(self, item: dict[str, Any]) -> EvalRequest:
        prompt, messages = item.get("prompt"), item.get("messages")
        if (prompt is None) == (messages is None):
            raise RowInputError("invalid_request", "give exactly one of prompt (a string) or messages (a list)")
        if prompt is not None:
            if not isinstance(prompt, str) or not prompt.strip():
                raise RowInputError("invalid_request", "prompt must be a non-empty string")
            messages = [{"role": "user", "content": prompt}]
        reference = item.get("reference")
        if not isinstance(reference, str) or not reference.strip():
            raise RowInputError("invalid_request", "reference is missing or empty; give the expected answer as text")
        pattern = item.get("pattern")
        compiled = None
        if pattern is not None:
            try:
                compiled = re.compile(str(pattern))
            except re.error as exc:
                raise RowInputError("invalid_request", f"pattern is not a valid regular expression: {exc}") from None
        chat: ChatRequest = self.chat.parse({"messages": messages})
        users = [m for m in chat.messages if isinstance(m, dict) and m.get("role") == "user"]
        question = _text(users[-1].get("content")) if users else ""
        return EvalRequest(chat, question, reference, compiled)

    async def call(self, client: AsyncClovaStudioClient, row: Row) -> RowOutput:
        request: EvalRequest = row.payload
        answered = await self.chat.call(client, Row(row.line, row.id, request.chat))
        answer = str(answered.fields["content"] or "")
        fields: dict[str, Any] = {
            "question": request.question,
            "reference": request.reference,
            "answer": answer,
            "finish_reason": answered.fields["finish_reason"],
            "usage": answered.fields["usage"],
            "scores": score(answer, request.reference, request.pattern),
        }
        prompt, completion, charged = answered.prompt_tokens, answered.completion_tokens, answered.charged_tokens
        if self.judge is not None:
            grade, result = await self.judge.grade(client, request.question, request.reference, answer)
            fields["scores"]["judge"] = grade
            fields["judge"] = {"model": self.judge.model, "score": grade, "reply": result.content}
            prompt += result.usage.prompt_tokens
            completion += result.usage.completion_tokens
            reserved = self.judge.parameters.get("maxTokens") or self.judge.parameters.get("maxCompletionTokens")
            charged += result.usage.prompt_tokens + int(reserved or result.usage.completion_tokens)
        return RowOutput(fields, prompt_tokens=prompt, completion_tokens=completion, charged_tokens=charged)
