"""The input-token estimate is an upper bound of the emulator's tokenizer."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_clova.client.tokens import (
    MESSAGE_OVERHEAD_TOKENS,
    actual_request_cost,
    estimate_input_tokens,
    estimate_request_cost,
)

# The emulator's tokenizer, as specified for the bundled emulator: per message 4 overhead
# tokens + the matches of this pattern in the message text.
_EMULATOR = re.compile(r"[A-Za-z]{1,4}|[0-9]{1,3}|[^\sA-Za-z0-9]")


def emulator_tokens(texts: list[str]) -> int:
    return sum(4 + len(_EMULATOR.findall(text)) for text in texts)


# Random unicode, biased towards the characters that matter: whitespace of every kind,
# ASCII letters and digits, Hangul, punctuation, emoji and other astral characters.
tricky = st.sampled_from(
    list(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u2029\u202f\u3000\u200b\ufeff")
    + list("aZ09_-.,!?한국어가힣ㄱ漢字😀🇰🇷\U0001f9ea\u0301")
)
texts = st.text(alphabet=st.one_of(st.characters(), tricky), max_size=300)


@settings(max_examples=500, deadline=None)
@given(st.lists(texts, max_size=6))
def test_estimate_bounds_the_emulator_for_string_content(contents: list[str]) -> None:
    messages = [{"role": "user", "content": text} for text in contents]
    estimate = estimate_input_tokens(messages)
    exact = emulator_tokens(contents)
    assert estimate >= exact
    # and the bound is not loose beyond the documented 4x (one token covers <= 4 characters)
    assert estimate <= 4 * exact


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(texts, min_size=1, max_size=4), max_size=4), st.sampled_from(["", " ", "\n"]))
def test_estimate_bounds_the_emulator_for_v3_parts(parts: list[list[str]], joiner: str) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": text} for text in message]} for message in parts]
    # however the emulator joins the parts (nothing, a space, a newline) the bound holds
    assert estimate_input_tokens(messages) >= emulator_tokens([joiner.join(message) for message in parts])


def test_examples() -> None:
    assert estimate_input_tokens([]) == 0
    assert estimate_input_tokens([{"role": "system", "content": ""}]) == MESSAGE_OVERHEAD_TOKENS
    assert estimate_input_tokens([{"role": "user", "content": "안녕하세요 반가워요"}]) == 4 + 9
    assert emulator_tokens(["안녕하세요 반가워요"]) == 4 + 9  # exact on Hangul
    assert estimate_input_tokens([{"role": "user", "content": "hello world"}]) == 4 + 10
    assert emulator_tokens(["hello world"]) == 4 + 4  # hell|o|worl|d
    assert estimate_input_tokens([{"role": "assistant", "content": None, "toolCalls": []}]) == 4
    parts = [{"type": "text", "text": "ab c"}, {"type": "image_url", "imageUrl": {"url": "https://x/y.png"}}]
    assert estimate_input_tokens([{"role": "user", "content": parts}]) == 4 + 3
    assert estimate_input_tokens([{"role": "user", "content": [{"type": "text", "text": 12345}]}]) == 4 + 5


def test_bound_against_the_bundled_emulator_itself() -> None:
    # The emulator's own tokenizer module, when present, must agree with the formula above.
    tokenizer = pytest.importorskip("airflow_provider_clova.testing.emulator.tokenizer")
    samples = ["hello world 12345", "안녕 😀 \u3000 x", "", "a\tb\nc"]
    for text in samples:
        messages = [
            {"role": "user", "content": text},
            {"role": "user", "content": [{"text": text}, {"type": "text", "text": text}]},
        ]
        assert tokenizer.count_messages(messages) == emulator_tokens([text, text + text])
        assert estimate_input_tokens(messages) >= tokenizer.count_messages(messages)


def test_request_cost_and_the_settled_cost() -> None:
    messages = [{"role": "user", "content": "abc"}]
    assert estimate_request_cost(messages, 100) == 4 + 3 + 100
    assert actual_request_cost({"usage": {"promptTokens": 12, "completionTokens": 5}}, 100) == 112
    assert actual_request_cost({"inputLength": 9, "outputLength": 3}, 50) == 59
    assert actual_request_cost({"message": {}}, 50) is None
    assert actual_request_cost({"usage": {"promptTokens": "x"}}, 50) is None
