"""How problems and reports read: code first, where, what, and the fix."""

from __future__ import annotations

import dataclasses

import pytest

from airflow_provider_clova.datasets import DatasetProblem, DatasetReport


def test_problem_str_matches_the_contract_example() -> None:
    problem = DatasetProblem("file.format", "Invalid dataset: T_ID", 12, 11, "T_ID", "Number the turns 0, 1, 2.")
    assert (
        str(problem) == "file.format line 12 row 11 column T_ID: Invalid dataset: T_ID. Fix: Number the turns 0, 1, 2."
    )


def test_problem_str_leaves_out_what_is_unknown() -> None:
    problem = DatasetProblem(
        "file.extension", "Unavailable file extension. Please check the file extension again.", None, None, None, "X."
    )
    assert str(problem) == (
        "file.extension: Unavailable file extension. Please check the file extension again. Fix: X."
    )


def test_problem_is_frozen() -> None:
    problem = DatasetProblem("file.format", "m", 1, 1, None, "f")
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.code = "other"  # type: ignore[misc]


def test_report_format_one_problem_a_line_then_summary() -> None:
    problems = [
        DatasetProblem("file.format", "Invalid dataset: C_ID", 3, 2, "C_ID", "Fix ids."),
        DatasetProblem("file.format", "Invalid dataset: column order", 5, 4, None, "Reorder."),
    ]
    report = DatasetReport(
        ok=False,
        problems=problems,
        truncated=True,
        rows=4,
        conversations=2,
        characters=1234,
        estimated_tokens=400,
        bytes=5678,
    )
    lines = report.format().splitlines()
    assert lines[:2] == [str(problems[0]), str(problems[1])]
    assert lines[2].startswith("summary: INVALID (2 problems, stopped early: more may follow);")
    assert "4 rows, 2 conversations, 1,234 characters, ~400 tokens (estimated), 5,678 bytes" in lines[2]
    assert report.first_failure() is problems[0]


def test_valid_report_format_is_the_summary_only() -> None:
    report = DatasetReport(ok=True, rows=1, conversations=1, characters=10, estimated_tokens=3, bytes=99)
    assert report.format() == ("summary: valid; 1 row, 1 conversation, 10 characters, ~3 tokens (estimated), 99 bytes")
