"""The same rules on CSV files: header checks, quoting, line versus row numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_clova.datasets import DatasetReport, validate_path

from ._data import COLUMNS, csv_text, make_rows, with_row, write


def check(tmp_path: Path, text: str, **kwargs: object) -> DatasetReport:
    return validate_path(write(tmp_path / "train.csv", text), **kwargs)  # type: ignore[arg-type]


def problems(report: DatasetReport) -> list[tuple[str, str, int | None, int | None, str | None]]:
    return [(p.code, p.message, p.line, p.row, p.column) for p in report.problems]


@pytest.mark.parametrize("lineterminator", ["\r\n", "\n"])
def test_valid_file(tmp_path: Path, lineterminator: str) -> None:
    report = check(tmp_path, csv_text(make_rows(), lineterminator=lineterminator))
    assert report.ok, report.format()
    assert (report.rows, report.conversations) == (100, 40)


def test_bom_is_accepted(tmp_path: Path) -> None:
    # Excel's "CSV UTF-8" writes a BOM; the header must still read System_Prompt.
    path = write(tmp_path / "excel.csv", csv_text(make_rows()), bom=True)
    assert validate_path(path).ok


def test_quoted_values_with_commas_quotes_and_line_breaks(tmp_path: Path) -> None:
    rows = with_row(make_rows(), 0, Text='Hello, "world"\nsecond line', Completion="a,b\r\nc")
    report = check(tmp_path, csv_text(rows))
    assert report.ok, report.format()
    assert report.characters == sum(
        len(str(r["System_Prompt"])) + len(str(r["Text"])) + len(str(r["Completion"])) for r in rows
    )


def test_line_and_row_numbers_after_a_multiline_value(tmp_path: Path) -> None:
    rows = with_row(make_rows(), 1, Completion="one\ntwo\nthree")  # data row 2 spans lines 3-5
    rows = with_row(rows, 4, Text="")  # data row 5 starts on physical line 8
    assert problems(check(tmp_path, csv_text(rows))) == [
        ("file.format", "Invalid dataset: required field empty. Text", 8, 5, "Text")
    ]


@pytest.mark.parametrize("column", ["Text", "Completion"])
def test_required_field_empty(tmp_path: Path, column: str) -> None:
    rows = with_row(make_rows(), 10, **{column: ""})
    assert problems(check(tmp_path, csv_text(rows))) == [
        ("file.format", f"Invalid dataset: required field empty. {column}", 12, 11, column)
    ]


def test_missing_header_column_is_reported_once(tmp_path: Path) -> None:
    header = ("System_Prompt", "C_ID", "T_ID", "Text")
    rows = [[r["System_Prompt"], r["C_ID"], r["T_ID"], r["Text"]] for r in make_rows()]
    assert problems(check(tmp_path, csv_text(rows, header=header))) == [
        ("file.format", "Invalid dataset: required field empty. Completion", 1, None, "Completion")
    ]


def test_unexpected_column(tmp_path: Path) -> None:
    header = (*COLUMNS, "Notes")
    rows = [[*r.values(), "note"] for r in make_rows()]
    assert problems(check(tmp_path, csv_text(rows, header=header))) == [
        ("file.format", "Invalid dataset: unexpected column. Notes", 1, None, "Notes")
    ]


def test_duplicate_columns_case_insensitive(tmp_path: Path) -> None:
    header = (*COLUMNS, "completion")
    rows = [[*r.values(), "again"] for r in make_rows()]
    assert problems(check(tmp_path, csv_text(rows, header=header))) == [
        ("file.format", "Invalid dataset: duplicate columns. completion", 1, None, "completion")
    ]


def test_exact_duplicate_columns(tmp_path: Path) -> None:
    header = (*COLUMNS, "Text")
    rows = [[*r.values(), "again"] for r in make_rows()]
    assert problems(check(tmp_path, csv_text(rows, header=header))) == [
        ("file.format", "Invalid dataset: duplicate columns. Text", 1, None, "Text")
    ]


def test_column_order(tmp_path: Path) -> None:
    header = ("System_Prompt", "T_ID", "C_ID", "Text", "Completion")
    rows = [[r["System_Prompt"], r["T_ID"], r["C_ID"], r["Text"], r["Completion"]] for r in make_rows()]
    report = check(tmp_path, csv_text(rows, header=header))
    # the values are still read by name, so the ids themselves are fine
    assert problems(report) == [("file.format", "Invalid dataset: column order", 1, None, None)]


@pytest.mark.parametrize(
    "changes, column",
    [({"C_ID": "x"}, "C_ID"), ({"T_ID": ""}, "T_ID"), ({"T_ID": "3"}, "T_ID"), ({"C_ID": "-1"}, "C_ID")],
)
def test_id_rules(tmp_path: Path, changes: dict[str, object], column: str) -> None:
    rows = with_row(make_rows(), 20, **changes)
    assert problems(check(tmp_path, csv_text(rows))) == [("file.format", f"Invalid dataset: {column}", 22, 21, column)]


def test_huge_id_is_reported_not_raised(tmp_path: Path) -> None:
    rows = with_row(make_rows(), 20, C_ID="9" * 5000)
    assert [p.column for p in check(tmp_path, csv_text(rows)).problems] == ["C_ID"]


def test_wrong_number_of_fields(tmp_path: Path) -> None:
    text = csv_text(make_rows())
    lines = text.split("\r\n")
    lines[30] += ",extra"
    lines[40] = lines[40].rsplit(",", 1)[0]
    report = check(tmp_path, "\r\n".join(lines))
    assert problems(report) == [
        ("file.format", "Invalid dataset: row has 6 fields, the header has 5", 31, 30, None),
        ("file.format", "Invalid dataset: row has 4 fields, the header has 5", 41, 40, None),
    ]
    assert "Quote every value" in report.problems[0].fix


def test_blank_lines_are_not_rows(tmp_path: Path) -> None:
    lines = csv_text(make_rows()).split("\r\n")
    lines.insert(0, "")
    lines.insert(10, "")
    report = check(tmp_path, "\r\n".join(lines))
    assert report.ok, report.format()
    assert report.rows == 100


def test_min_rows(tmp_path: Path) -> None:
    assert problems(check(tmp_path, csv_text(make_rows()[:50]))) == [
        ("file.format", "Invalid dataset: too few rows (50). At least 100 rows are required", None, None, None)
    ]


def test_header_only(tmp_path: Path) -> None:
    report = check(tmp_path, csv_text([]))
    assert report.rows == 0 and len(report.problems) == 1


def test_long_values_beyond_csv_default_field_limit(tmp_path: Path) -> None:
    rows = with_row(make_rows(), 0, Completion="가" * 300_000)
    report = check(tmp_path, csv_text(rows))
    assert report.ok, report.format()


def test_unclosed_quote_is_a_csv_problem_not_a_crash(tmp_path: Path) -> None:
    text = csv_text(make_rows()) + ',100,0,"never closed,x\n'
    report = check(tmp_path, text)
    assert not report.ok
    assert all(p.code == "file.format" for p in report.problems)


def test_unclosed_quote_in_the_middle_points_at_its_line(tmp_path: Path) -> None:
    lines = csv_text(make_rows()).split("\r\n")
    lines[5] = ',2,"1,oops,ok'
    report = check(tmp_path, "\r\n".join(lines))
    first = report.problems[0]
    assert (first.line, first.row) == (6, 5)
    assert first.fix.startswith("This row runs from line 6 to line 101, so a quote is probably not closed")
