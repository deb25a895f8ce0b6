"""A cheap, safe estimate of a chat request's input tokens, for reserving budget before sending.

The limiter must charge a request before the service tells us what it cost, and charging too
little is what earns a 429. So the estimate is an *upper bound*, computed without a network
call (the token-count API would itself spend QPM), and it is corrected after every response:
the caller settles the reservation with the real ``usage.promptTokens`` (v3) or
``inputLength`` (v1), see :func:`actual_request_cost`.

The estimate, per message: ``MESSAGE_OVERHEAD_TOKENS`` (4, the role and turn markers) plus the
number of non-whitespace characters of its text.

Against the bundled emulator's tokenizer it is a proven bound. The emulator counts
``4 + len(re.findall(r"[A-Za-z]{1,4}|[0-9]{1,3}|[^\\sA-Za-z0-9]", text))`` per message. Every
alternative of that pattern matches at least one character and only non-whitespace ones
(letters, digits, or a single character that is neither whitespace nor alphanumeric), and
``findall`` matches do not overlap; so the match count is at most the number of
non-whitespace characters. We count those with ``\\S``, the same character class the
pattern's ``[^\\s...]`` uses, so both sides agree on what whitespace is. The error is bounded
too: one emulator token covers at most 4 characters, so the estimate is at most 4x the
emulator's count; it is exact for Korean, other non-Latin scripts and punctuation, and the
over-charge comes from long ASCII words (up to 4x) and numbers (up to 3x).

Against the real HyperCLOVA X tokenizer it is a reasonable, not a proven, bound. Its
vocabulary merges common Korean syllables and English sub-words, so a token almost always
covers one or more characters, and whitespace usually rides on the following word's token.
Where it can be exceeded: characters outside the vocabulary fall back to bytes (up to 4 tokens
for one rare CJK character, emoji or symbol), and long whitespace-only runs (indented code,
blank lines) may become tokens of their own. Text dense in those will be under-charged until
the settle after the response; a 429 then slows the shared limiter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: Tokens charged per message on top of its text (role and turn markers).
MESSAGE_OVERHEAD_TOKENS = 4

_NON_WHITESPACE = re.compile(r"\S")


def count_non_whitespace(text: str) -> int:
    """Characters of ``text`` that ``re``'s ``\\s`` does not match."""
    return len(_NON_WHITESPACE.findall(text))


def _texts(content: Any) -> Iterable[str]:
    """The text of a message's content: a string, or the ``text`` of v3 ``text`` parts.

    Non-text parts (``image_url``) are not counted: their cost is set by the service and
    comes back in ``usage.promptTokens``, which settles the reservation.
    """
    if content is None:
        return
    if isinstance(content, str):
        yield content
        return
    if isinstance(content, Mapping):
        content = [content]
    if isinstance(content, Sequence):
        for part in content:
            if isinstance(part, str):
                yield part
            elif isinstance(part, Mapping) and part.get("text") is not None:
                yield str(part["text"])
        return
    yield str(content)


def estimate_input_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Upper-bound estimate of the input tokens of ``messages`` (see the module docstring).

    ``4 + non-whitespace characters`` per message; ``content`` may be a string or a v3 list
    of parts (``{"type": "text", "text": ...}``).
    """
    total = 0
    for message in messages:
        total += MESSAGE_OVERHEAD_TOKENS
        for text in _texts(message.get("content")):
            total += count_non_whitespace(text)
    return total


def estimate_request_cost(messages: Sequence[Mapping[str, Any]], max_tokens: int) -> int:
    """What a request will be charged against TPM: estimated input tokens + ``maxTokens``."""
    return estimate_input_tokens(messages) + max(0, int(max_tokens))


def actual_request_cost(result: Mapping[str, Any], max_tokens: int) -> int | None:
    """The charged cost from a chat or embedding response's ``result``: input tokens + ``maxTokens``.

    Reads ``usage.promptTokens`` (chat v3), ``usage.prompt_tokens`` (the OpenAI-compatible
    API's body), ``inputLength`` (chat v1) or ``inputTokens`` (embeddings, whose ``max_tokens``
    is 0); ``None`` when none is there, in which case the caller keeps the estimate.
    """
    usage = result.get("usage")
    prompt: Any = None
    if isinstance(usage, Mapping):
        prompt = usage.get("promptTokens", usage.get("prompt_tokens"))
    if prompt is None:
        prompt = result.get("inputLength")
    if prompt is None:  # an embedding answer
        prompt = result.get("inputTokens")
    if isinstance(prompt, bool) or not isinstance(prompt, int) or prompt < 0:
        return None
    return prompt + max(0, int(max_tokens))
