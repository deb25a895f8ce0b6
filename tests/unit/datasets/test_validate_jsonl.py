"""One case per rule on JSON Lines files, with exact messages, lines and rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_clova.datasets import DatasetReport, validate_path

from ._data import jsonl_text, make_rows, with_row, write


def check(tmp_path: Path, text: str, name: str = "train.jsonl", **kwargs: object) -> DatasetReport:
    return validate_path(write(tmp_path / name, text), **kwargs)  # type: ignore[arg-type]


def only(report: DatasetReport) -> tuple[str, str, int | None, int | None, str | None]:
    assert len(report.problems) == 1, report.format()
    p = report.problems[0]
    return p.code, p.message, p.line, p.row, p.column


def test_valid_file(tmp_path: Path) -> None:
    report = check(tmp_path, jsonl_text(make_rows()))
    assert report.ok, report.format()
    assert report.problems == [] and not report.truncated
    assert report.first_failure() is None
    assert (report.rows, report.conversations) == (100, 40)


def test_bom_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.jsonl", jsonl_text(make_rows()), bom=True)
    report = validate_path(path)
    assert report.ok, report.format()
    assert report.bytes == path.stat().st_size


def test_crlf_line_endings_and_blank_lines(tmp_path: Path) -> None:
    lines = jsonl_text(make_rows()).splitlines()
    lines.insert(5, "")
    lines.insert(9, "   ")
    report = check(tmp_path, "\r\n".join(lines) + "\r\n\r\n")
    assert report.ok, report.format()
    assert report.rows == 100


def test_invalid_json_names_line_row_and_reason(tmp_path: Path) -> None:
    lines = jsonl_text(make_rows()).splitlines()
    lines.insert(3, "")  # a blank line: line numbers move on, row numbers do not
    lines[11] = lines[11][:-1]  # drop the closing brace of physical line 12, data row 11
    report = check(tmp_path, "\n".join(lines) + "\n")
    code, message, line, row, column = only(report)
    assert (code, line, row, column) == ("file.format", 12, 11, None)
    assert message.startswith("Invalid json format. Expecting ',' delimiter: column ")
    assert "JSON object" in report.problems[0].fix


@pytest.mark.parametrize(
    "line, found",
    [("[1, 2]", "an array"), ('"text"', "a string"), ("42", "a number"), ("null", "null")],
)
def test_a_line_that_is_not_an_object(tmp_path: Path, line: str, found: str) -> None:
    lines = jsonl_text(make_rows()).splitlines()
    lines.insert(100, line)
    code, message, line_no, row, _ = only(check(tmp_path, "\n".join(lines)))
    assert (code, message, line_no, row) == (
        "file.format",
        f"Invalid json format. expected an object, found {found}",
        101,
        101,
    )


def test_deeply_nested_json_is_reported_not_raised(tmp_path: Path) -> None:
    text = jsonl_text(make_rows()) + "[" * 100_000 + "\n"
    code, message, line, _, _ = only(check(tmp_path, text))
    assert (code, message, line) == ("file.format", "Invalid json format. values nested too deeply", 101)


@pytest.mark.parametrize("value", ["", "   ", None])
@pytest.mark.parametrize("column", ["Text", "Completion"])
def test_required_field_empty(tmp_path: Path, column: str, value: object) -> None:
    rows = with_row(make_rows(), 6, **{column: value})
    problem = only(check(tmp_path, jsonl_text(rows)))
    assert problem == ("file.format", f"Invalid dataset: required field empty. {column}", 7, 7, column)


def test_required_field_missing(tmp_path: Path) -> None:
    rows = make_rows()
    del rows[3]["Completion"]
    problem = only(check(tmp_path, jsonl_text(rows)))
    assert problem == ("file.format", "Invalid dataset: required field empty. Completion", 4, 4, "Completion")


@pytest.mark.parametrize("value", ["", None])
def test_system_prompt_may_be_empty(tmp_path: Path, value: object) -> None:
    rows = [dict(row, System_Prompt=value) for row in make_rows()]
    assert check(tmp_path, jsonl_text(rows)).ok


def test_system_prompt_column_must_be_present(tmp_path: Path) -> None:
    rows = make_rows()
    del rows[0]["System_Prompt"]
    report = check(tmp_path, jsonl_text(rows))
    assert only(report) == (
        "file.format",
        "Invalid dataset: required field empty. System_Prompt",
        1,
        1,
        "System_Prompt",
    )
    assert "may be" in report.problems[0].fix


def test_numbers_are_accepted_as_text(tmp_path: Path) -> None:
    rows = with_row(make_rows(), 0, Text=12, Completion=3.5)
    assert check(tmp_path, jsonl_text(rows)).ok


@pytest.mark.parametrize("value", [["a"], {"a": 1}, True])
def test_text_must_be_text(tmp_path: Path, value: object) -> None:
    rows = with_row(make_rows(), 2, Completion=value)
    assert only(check(tmp_path, jsonl_text(rows))) == (
        "file.format",
        "Invalid dataset: Completion must be text",
        3,
        3,
        "Completion",
    )


def test_unexpected_column(tmp_path: Path) -> None:
    rows = make_rows()
    rows[4]["Label"] = "x"
    assert only(check(tmp_path, jsonl_text(rows))) == (
        "file.format",
        "Invalid dataset: unexpected column. Label",
        5,
        5,
        "Label",
    )


def test_wrong_case_column_is_unexpected_with_a_rename_hint(tmp_path: Path) -> None:
    rows = make_rows()
    rows[0] = {("text" if k == "Text" else k): v for k, v in rows[0].items()}
    report = check(tmp_path, jsonl_text(rows))
    messages = [p.message for p in report.problems]
    assert messages == [
        "Invalid dataset: unexpected column. text",
        "Invalid dataset: required field empty. Text",
    ]
    assert "Rename the column 'text' to 'Text'" in report.problems[0].fix


def test_duplicate_columns_case_insensitive(tmp_path: Path) -> None:
    rows = make_rows()
    rows[9]["TEXT"] = "again"
    assert only(check(tmp_path, jsonl_text(rows))) == (
        "file.format",
        "Invalid dataset: duplicate columns. TEXT",
        10,
        10,
        "TEXT",
    )


def test_column_order(tmp_path: Path) -> None:
    rows = make_rows()
    rows[1] = {k: rows[1][k] for k in ("C_ID", "System_Prompt", "T_ID", "Text", "Completion")}
    assert only(check(tmp_path, jsonl_text(rows))) == ("file.format", "Invalid dataset: column order", 2, 2, None)


@pytest.mark.parametrize(
    "index, changes, column, hint",
    [
        (0, {"C_ID": 1}, "C_ID", "C_ID=1 where 0 (the first row starts conversation 0) was expected"),
        (0, {"T_ID": 1}, "T_ID", "T_ID=1 where 0 (a new conversation starts at T_ID 0) was expected"),
        (2, {"T_ID": 2}, "T_ID", "T_ID=2 where 1 was expected"),  # rows 1-2 are conversation 1
        (3, {"C_ID": 3}, "C_ID", "C_ID=3 where 1 (same conversation) or 2 (next conversation) was expected"),
        (3, {"C_ID": 0}, "C_ID", "C_ID=0 where 1 (same conversation) or 2 (next conversation)"),
        (3, {"C_ID": 2, "T_ID": 1}, "T_ID", "T_ID=1 where 0 (a new conversation starts"),
        (3, {"C_ID": ""}, "C_ID", "C_ID is empty"),
        (3, {"T_ID": None}, "T_ID", "T_ID is empty"),
        (3, {"T_ID": "two"}, "T_ID", "T_ID='two' is not a whole number"),
        (3, {"C_ID": 2.5}, "C_ID", "C_ID=2.5 is not a whole number"),
        (3, {"C_ID": True}, "C_ID", "C_ID=True is not a whole number"),
    ],
)
def test_id_sequence(tmp_path: Path, index: int, changes: dict[str, object], column: str, hint: str) -> None:
    report = check(tmp_path, jsonl_text(with_row(make_rows(), index, **changes)))
    problem = only(report)
    assert problem == ("file.format", f"Invalid dataset: {column}", index + 1, index + 1, column)
    assert hint in report.problems[0].fix


@pytest.mark.parametrize("c_id, t_id", [("1", "0"), (1.0, 0), (" 1 ", "0")])
def test_ids_as_numeric_strings_or_whole_floats(tmp_path: Path, c_id: object, t_id: object) -> None:
    rows = with_row(make_rows(), 1, C_ID=c_id, T_ID=t_id)
    assert check(tmp_path, jsonl_text(rows)).ok


def test_one_wrong_id_gives_one_problem_not_a_cascade(tmp_path: Path) -> None:
    rows = make_rows()
    # conversation 3 has rows 6..9 (T_ID 0..3); a typo in the middle one
    typo = with_row(rows, 7, T_ID=5)
    assert len(check(tmp_path, jsonl_text(typo)).problems) == 1
    # a shifted numbering from there on is also one problem
    shifted = with_row(with_row(rows, 7, T_ID=2), 8, T_ID=3)
    shifted = with_row(shifted, 9, T_ID=4)
    assert len(check(tmp_path, jsonl_text(shifted)).problems) == 1
    # a C_ID typo
    c_typo = with_row(rows, 7, C_ID=30)
    assert len(check(tmp_path, jsonl_text(c_typo)).problems) == 1


def test_broken_line_does_not_cascade(tmp_path: Path) -> None:
    lines = jsonl_text(make_rows()).splitlines()
    lines[7] = "{not json"
    report = check(tmp_path, "\n".join(lines))
    assert [p.line for p in report.problems] == [8]


def test_min_rows_is_our_rule(tmp_path: Path) -> None:
    rows = make_rows()[:99]
    code, message, line, row, column = only(check(tmp_path, jsonl_text(rows)))
    assert (code, line, row, column) == ("file.format", None, None, None)
    assert message == "Invalid dataset: too few rows (99). At least 100 rows are required"


def test_empty_file(tmp_path: Path) -> None:
    report = check(tmp_path, "")
    assert [p.message for p in report.problems] == ["Invalid dataset: too few rows (0). At least 100 rows are required"]
    assert (report.rows, report.bytes) == (0, 0)


def test_summary_figures(tmp_path: Path) -> None:
    rows = [
        {"System_Prompt": "abcd", "C_ID": c, "T_ID": 0, "Text": "안녕하세요", "Completion": "abcdefgh"}
        for c in range(100)
    ]
    text = jsonl_text(rows)
    report = check(tmp_path, text)
    assert report.ok
    assert report.rows == 100
    assert report.conversations == 100
    assert report.characters == 100 * (4 + 5 + 8)
    # 5 Hangul syllables a row at one token each, 12 ASCII characters at four a token
    assert report.estimated_tokens == 100 * 5 + 100 * 12 // 4
    assert report.bytes == len(text.encode("utf-8"))


def test_token_estimate_sees_through_json_escapes(tmp_path: Path) -> None:
    rows = [
        {"System_Prompt": "", "C_ID": c, "T_ID": 0, "Text": "배송은 언제 오나요?", "Completion": "내일 도착합니다."}
        for c in range(100)
    ]
    plain = check(tmp_path, jsonl_text(rows), name="plain.jsonl")
    escaped = check(tmp_path, jsonl_text(rows, ensure_ascii=True), name="escaped.jsonl")
    assert plain.characters == escaped.characters
    assert plain.estimated_tokens == escaped.estimated_tokens


def test_max_errors_truncates_and_says_so(tmp_path: Path) -> None:
    rows = [dict(row, Text="") for row in make_rows()]
    report = check(tmp_path, jsonl_text(rows), max_errors=5)
    assert len(report.problems) == 5 and report.truncated and not report.ok
    assert [p.row for p in report.problems] == [1, 2, 3, 4, 5]
    assert "stopped early: more may follow" in report.format()


def test_exactly_max_errors_is_not_truncated(tmp_path: Path) -> None:
    rows = make_rows()
    for index in (3, 40, 77):
        rows[index]["Completion"] = ""
    report = check(tmp_path, jsonl_text(rows), max_errors=3)
    assert len(report.problems) == 3 and not report.truncated


def test_default_max_errors_is_20(tmp_path: Path) -> None:
    rows = [dict(row, Text=" ") for row in make_rows()]
    report = check(tmp_path, jsonl_text(rows))
    assert len(report.problems) == 20 and report.truncated


def test_max_errors_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_errors"):
        check(tmp_path, jsonl_text(make_rows()), max_errors=0)


def test_rows_after_a_problem_still_checked_in_fast_path(tmp_path: Path) -> None:
    rows = with_row(make_rows(), 0, Text="")
    rows = with_row(rows, 99, Completion="")
    report = check(tmp_path, jsonl_text(rows))
    assert [p.row for p in report.problems] == [1, 100]
    assert report.rows == 100 and report.conversations == 40


def test_keys_in_json_may_use_any_json_spacing(tmp_path: Path) -> None:
    text = "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in make_rows())
    assert check(tmp_path, text).ok


@pytest.mark.parametrize(
    "suffix, ok",
    [
        ("", True),
        ("   ", True),
        ("\t\r", True),
        (" x", False),
        (' {"a": 1}', False),
    ],
)
def test_text_after_the_object(tmp_path: Path, suffix: str, ok: bool) -> None:
    lines = jsonl_text(make_rows()).splitlines()
    lines[50] += suffix
    report = check(tmp_path, "\n".join(lines))
    assert report.ok is ok, report.format()
    if not ok:
        assert report.problems[0].message.startswith("Invalid json format. Extra data")


def test_blanks_before_the_object_are_fine(tmp_path: Path) -> None:
    lines = jsonl_text(make_rows()).splitlines()
    lines[50] = "  \t" + lines[50]
    assert check(tmp_path, "\n".join(lines)).ok


def test_utf8_bom_in_the_middle_is_invalid_json(tmp_path: Path) -> None:
    lines = jsonl_text(make_rows()).splitlines()
    lines[50] = "\ufeff" + lines[50]
    report = check(tmp_path, "\n".join(lines))
    assert [(p.line, p.message.split(":")[0]) for p in report.problems] == [
        (51, "Invalid json format. Unexpected UTF-8 BOM (decode using utf-8-sig)")
    ]
