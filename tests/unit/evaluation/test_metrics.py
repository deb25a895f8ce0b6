"""The evaluation metrics and the judge's score parsing: pure functions, Korean text included."""

from __future__ import annotations

import pytest

from airflow_provider_clova.evaluation.judge import RUBRIC, judge_messages, parse_score
from airflow_provider_clova.evaluation.metrics import contains, exact_match, regex_match, score, token_f1, tokens


def test_normalization_makes_width_case_and_spacing_irrelevant() -> None:
    assert exact_match("  The 2-Year\tWarranty ", "the 2-year warranty") == 1.0
    assert exact_match("\uff21\uff22\uff23\u3000\uff11\uff12\uff13", "abc 123") == 1.0  # full-width forms (NFKC)
    assert exact_match("2-year warranty.", "2-year warranty") == 0.0


def test_contains_looks_for_the_reference_inside_the_answer() -> None:
    assert contains("All purifiers come with a 2-Year warranty.", "2-year warranty") == 1.0
    assert contains("무상 보증 기간은 구매일로부터 2년입니다.", "2년") == 1.0
    assert contains("three years", "2-year") == 0.0


def test_regex_searches_anywhere_and_is_absent_without_pattern() -> None:
    assert regex_match("Costs 39,000 won", r"\d{2},\d{3}\s*won") == 1.0
    assert regex_match("Costs \uff13\uff19,\uff10\uff10\uff10 won", r"39,000") == 1.0  # NFKC before matching
    assert regex_match("free", r"\d") == 0.0
    assert score("a", "a")["regex"] is None


def test_korean_is_tokenized_into_syllable_bigrams_so_particles_do_not_hide_overlap() -> None:
    assert tokens("보증기간은 2년입니다") == ["보증", "증기", "기간", "간은", "2", "년입", "입니", "니다"]
    assert tokens("년") == ["년"]
    assert tokens("HCX-003 모델") == ["hcx", "003", "모델"]
    # with particles attached, whole words would share nothing; bigrams share the stem
    assert token_f1("보증기간은 2년입니다", "보증기간 2년") > 0.5
    assert token_f1("필터는 6개월마다 교체", "필터 교체 주기는 6개월") > 0.3


def test_token_f1_is_precision_recall_harmonic_mean() -> None:
    assert token_f1("a b c d", "a b") == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert token_f1("the warranty", "the warranty") == 1.0
    assert token_f1("nothing shared", "other words") == 0.0
    assert token_f1("", "") == 1.0 and token_f1("", "x") == 0.0


@pytest.mark.parametrize(
    ("reply", "expected"),
    [("4", 4), ("Score: 5", 5), ("5/5", 5), ("12 and 3", 3), ("none", None), ("0", None), ("10", None)],
)
def test_judge_reads_the_first_standalone_digit_one_to_five(reply: str, expected: int | None) -> None:
    assert parse_score(reply) == expected


def test_judge_request_carries_rubric_question_reference_and_answer() -> None:
    system, user = judge_messages("Q?", "REF", "ANS")
    assert system == {"role": "system", "content": RUBRIC}
    assert "QUESTION:\nQ?" in user["content"] and "REFERENCE:\nREF" in user["content"]
    assert "ANSWER:\nANS" in user["content"]
