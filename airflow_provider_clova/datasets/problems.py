"""Builders for each kind of DatasetProblem, worded from the rules table.

Keeping the construction here means the validator's hot loop only says *what* is wrong and
where; the service's exact wording and the fix sentence come from ``rules`` alone.
"""

from __future__ import annotations

from airflow_provider_clova.datasets.report import DatasetProblem
from airflow_provider_clova.datasets.rules import (
    COLUMNS,
    EXTENSIONS,
    FAILURE_REASONS,
    FORMAT_MESSAGES,
    MIN_ROWS,
    format_bytes,
)


def _service(code: str, line: int | None = None, **values: object) -> DatasetProblem:
    reason = FAILURE_REASONS[code]
    return DatasetProblem(code, reason.template.format(**values), line, None, None, reason.fix)


def _format(
    rule: str, line: int | None, row: int | None, column: str | None, fix: str | None = None, **values: object
) -> DatasetProblem:
    reason = FORMAT_MESSAGES[rule]
    text = reason.template.format(column=column, **values)
    return DatasetProblem("file.format", text, line, row, column, fix or reason.fix.format(column=column, **values))


def extension(filename: str) -> DatasetProblem:
    problem = _service("file.extension")
    suffix = filename.rsplit(".", 1)[1] if "." in filename.rsplit("/", 1)[-1] else ""
    found = f"'.{suffix}'" if suffix else "no extension"
    allowed = " or ".join(EXTENSIONS)
    return _with_fix(problem, f"The file has {found}; save it as {allowed} and upload it under that name.")


def size(limit: int, actual: int | None) -> DatasetProblem:
    problem = _service("file.size", limit=format_bytes(limit))
    if actual is None:
        return problem
    return _with_fix(
        problem,
        f"The file has {actual:,} bytes or more: remove or shorten rows, or split the data, "
        f"to bring it to {format_bytes(limit)} or less.",
    )


def encoding(line: int) -> DatasetProblem:
    return _service("file.encoding", line)


def read_error(detail: str) -> DatasetProblem:
    problem = _service("file.error")
    return DatasetProblem(problem.code, f"{problem.message}: {detail}", None, None, None, problem.fix)


def not_found(detail: str) -> DatasetProblem:
    problem = _service("file.noexist")
    return DatasetProblem(
        problem.code,
        f"{problem.message}: {detail}",
        None,
        None,
        None,
        "Check the path (and, for Object Storage, the bucket and object key) and that the upload finished.",
    )


def line_too_long(line: int, limit: int) -> DatasetProblem:
    return _format("line_too_long", line, None, None, limit=format_bytes(limit))


def invalid_json(line: int, row: int, reason: str) -> DatasetProblem:
    return _format("json", line, row, None, reason=reason)


def required(line: int, row: int | None, column: str) -> DatasetProblem:
    fix = None
    if row is None:
        fix = f"Add a {column} column to the header" + (
            "; its values may be empty." if column == "System_Prompt" else "."
        )
    elif column == "System_Prompt":
        fix = 'Add the key "System_Prompt" to this row; its value may be "".'
    return _format("required", line, row, column, fix)


def unexpected(line: int, row: int | None, column: str) -> DatasetProblem:
    fix = None
    for known in COLUMNS:
        if column.strip().lower() == known.lower():
            fix = f"Rename the column {column!r} to {known!r}; names must match exactly."
    return _format("unexpected", line, row, column, fix)


def duplicate(line: int, row: int | None, column: str) -> DatasetProblem:
    return _format("duplicate", line, row, column)


def order(line: int, row: int | None) -> DatasetProblem:
    return _format("order", line, row, None)


def bad_id(line: int, row: int, column: str, found: object, expected: str | None) -> DatasetProblem:
    if expected is not None:
        fix = f"Found {column}={found!r} where {expected} was expected; " + _id_fix()
    elif found is None or found == "":
        fix = f"{column} is empty; " + _id_fix()
    else:
        fix = f"{column}={found!r} is not a whole number; " + _id_fix()
    return _format("id", line, row, column, fix)


def _id_fix() -> str:
    fix = FORMAT_MESSAGES["id"].fix
    return fix[0].lower() + fix[1:]


def min_rows(rows: int) -> DatasetProblem:
    return _format("min_rows", None, None, None, rows=rows, minimum=MIN_ROWS)


def field_count(line: int, row: int, found: int, expected: int, end_line: int) -> DatasetProblem:
    fix = None
    if end_line > line:  # a record over several lines with the wrong shape: an unclosed quote
        fix = (
            f"This row runs from line {line} to line {end_line}, so a quote is probably not closed: "
            'close it, or write a quote inside a value as "".'
        )
    return _format("field_count", line, row, None, fix, found=found, expected=expected)


def csv_syntax(line: int, row: int | None, reason: str) -> DatasetProblem:
    return _format("csv", line, row, None, reason=reason)


def not_text(line: int, row: int, column: str) -> DatasetProblem:
    return _format("not_text", line, row, column)


def _with_fix(problem: DatasetProblem, fix: str) -> DatasetProblem:
    return DatasetProblem(problem.code, problem.message, problem.line, problem.row, problem.column, fix)
