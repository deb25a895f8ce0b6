"""The emulator's deterministic tokenizer, shared by chat, token counting and budgets.

The real tokenizer is not public. This one is fixed by contract: every message costs 4
tokens of overhead plus one token per run of up to 4 ASCII letters, up to 3 digits, or any
other single non-space character. The client's own estimate is proven to be an upper bound
of it, so a client that paces on its estimate never exceeds what the emulator charges.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

TOKEN_RE = re.compile(r"[A-Za-z]{1,4}|[0-9]{1,3}|[^\sA-Za-z0-9]")
MESSAGE_OVERHEAD = 4


def count_text(text: str) -> int:
    """Tokens in ``text`` (no per-message overhead)."""
    return len(TOKEN_RE.findall(text))


def message_text(content: Any) -> str:
    """The text of a message's ``content``: a string, or v3's list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type", "text") == "text"
        )
    return ""


def count_message(content: Any) -> int:
    """Tokens one message costs: overhead plus its text."""
    return MESSAGE_OVERHEAD + count_text(message_text(content))


def count_messages(messages: Iterable[Mapping[str, Any]]) -> int:
    """Input tokens of a whole chat request."""
    return sum(count_message(m.get("content")) for m in messages)


def truncate(text: str, max_tokens: int) -> tuple[str, bool]:
    """``text`` cut after ``max_tokens`` tokens; the flag says whether anything was cut."""
    if max_tokens <= 0:
        return "", bool(text.strip())
    for index, match in enumerate(TOKEN_RE.finditer(text), start=1):
        if index == max_tokens:
            rest = text[match.end() :]
            return text[: match.end()], bool(rest.strip())
    return text, False
