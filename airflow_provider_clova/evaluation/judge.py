"""The LLM judge: a CLOVA model grades each answer 1-5 against the reference.

The rubric (:data:`RUBRIC`) is fixed and documented so that scores are comparable between
runs; the judge sees the question, the reference and the answer, and must reply with one
digit. Judge calls go through the same async client as the candidates, so the limiter paces
and charges them against the judge model's QPM/TPM budget (and the task's pool share) like
any other call; a judge reply is short (``maxTokens`` 8 by default), so a judged row costs
about one more prompt's worth of tokens.

A reply without a digit 1-5 leaves the row unjudged (``judge: null`` with the reply kept):
it is the judge's failure, not the candidate's, so it neither scores 1 nor fails the row;
the judge metric is the mean over judged rows and the report shows how many were judged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_clova.client.client import AsyncClovaStudioClient
    from airflow_provider_clova.client.models import ChatResult

RUBRIC = """You grade answers of an assistant. Compare the ANSWER with the REFERENCE answer to the QUESTION \
and score the ANSWER from 1 to 5:
5 - states the same facts as the REFERENCE, nothing wrong or missing;
4 - correct, with a minor omission or harmless extra detail;
3 - partly correct: some key facts right, some missing or wrong;
2 - mostly wrong, or misses the key fact of the REFERENCE;
1 - wrong, contradicts the REFERENCE, off-topic or empty.
Judge facts, not wording or language: a correct answer in other words scores 5.
Reply with the single digit only."""

#: Parameters of every judge call unless ``judge_parameters`` say otherwise.
DEFAULT_PARAMETERS: dict[str, Any] = {"maxTokens": 8}

_SCORE = re.compile(r"(?<!\d)([1-5])(?!\d)")


def judge_messages(question: str, reference: str, answer: str) -> list[dict[str, str]]:
    """The judge's request: the rubric as system prompt, the three texts as the user turn."""
    user = f"QUESTION:\n{question}\n\nREFERENCE:\n{reference}\n\nANSWER:\n{answer}\n\nScore (1-5):"
    return [{"role": "system", "content": RUBRIC}, {"role": "user", "content": user}]


def parse_score(reply: str) -> int | None:
    """The first stand-alone digit 1-5 of the judge's reply, or None."""
    found = _SCORE.search(reply)
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class Judge:
    """Which model judges, with which parameters."""

    model: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_PARAMETERS))

    async def grade(
        self, client: AsyncClovaStudioClient, question: str, reference: str, answer: str
    ) -> tuple[int | None, ChatResult]:
        """Ask the judge; the score (or None when the reply has no score) and the raw result."""
        result = await client.chat_completion(
            judge_messages(question, reference, answer), model=self.model, **dict(self.parameters)
        )
        return parse_score(result.content), result
