"""Property tests: whatever the bytes, the validator answers with a report, never an exception."""

from __future__ import annotations

import csv
import io
import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_clova.datasets import FAILURE_REASONS, DatasetReport, validate_stream
from airflow_provider_clova.datasets.rules import COLUMNS

# DATASET_PROP_EXAMPLES=3000 searches longer, e.g. after changing the validator.
EXAMPLES = int(os.environ.get("DATASET_PROP_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.sampled_from([*COLUMNS, "text", "TEXT", "c_id", "Label", "", " Text"])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["0", "1", " 2 ", "1.0", "x", "", "   ", "9" * 5000]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=3), scalars, max_size=2))


def assert_sane(report: DatasetReport, data: bytes, max_errors: int) -> None:
    assert isinstance(report, DatasetReport)
    assert report.ok == (not report.problems)
    assert len(report.problems) <= max_errors
    assert not report.truncated or len(report.problems) == max_errors
    physical_lines = data.count(b"\n") + 1
    for problem in report.problems:
        assert problem.code in FAILURE_REASONS
        assert problem.message and problem.fix
        assert problem.line is None or 1 <= problem.line <= physical_lines
        assert problem.row is None or 1 <= problem.row <= report.rows
        assert str(problem).startswith(problem.code)
    assert report.rows >= 0 and report.conversations <= report.rows
    assert 0 <= report.estimated_tokens <= report.characters
    assert report.format().splitlines()[-1].startswith("summary: ")


@SETTINGS
@given(data=st.binary(max_size=2000), kind=st.sampled_from(["jsonl", "csv"]), max_errors=st.integers(1, 30))
def test_random_bytes(data: bytes, kind: str, max_errors: int) -> None:
    report = validate_stream(io.BytesIO(data), filename=f"f.{kind}", max_errors=max_errors)
    assert_sane(report, data, max_errors)


@SETTINGS
@given(
    rows=st.lists(st.dictionaries(names, values, max_size=7), max_size=40),
    junk=st.lists(st.sampled_from(["", "{", "[1]", "null", '{"a":', "\r", "\ufeff{}"]), max_size=3),
    bom=st.booleans(),
)
def test_random_jsonl_rows(rows: list[dict[str, object]], junk: list[str], bom: bool) -> None:
    lines = [json.dumps(row, ensure_ascii=False) for row in rows] + junk
    data = (b"\xef\xbb\xbf" if bom else b"") + "\n".join(lines).encode("utf-8", "surrogatepass")
    report = validate_stream(io.BytesIO(data), filename="f.jsonl")
    assert_sane(report, data, 20)


@SETTINGS
@given(
    header=st.lists(names, max_size=7),
    rows=st.lists(st.lists(st.text(max_size=12), max_size=7), max_size=40),
    terminator=st.sampled_from(["\n", "\r\n"]),
)
def test_random_csv_rows(header: list[str], rows: list[list[str]], terminator: str) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=terminator)
    writer.writerow(header)
    writer.writerows(rows)
    data = out.getvalue().encode("utf-8", "surrogatepass")
    report = validate_stream(io.BytesIO(data), filename="f.csv")
    assert_sane(report, data, 20)


conversation_turns = st.lists(st.integers(min_value=1, max_value=4), min_size=25, max_size=60)
contents = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30).filter(lambda s: not s.isspace())


@SETTINGS
@given(turns=conversation_turns, content=contents, kind=st.sampled_from(["jsonl", "csv"]), ascii_only=st.booleans())
def test_generated_valid_datasets_are_valid(turns: list[int], content: str, kind: str, ascii_only: bool) -> None:
    rows = [
        {"System_Prompt": "", "C_ID": c_id, "T_ID": t_id, "Text": content, "Completion": content + "!"}
        for c_id, count in enumerate(turns)
        for t_id in range(count)
    ]
    if kind == "jsonl":
        text = "".join(json.dumps(row, ensure_ascii=ascii_only) + "\n" for row in rows)
    else:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        writer.writerows([list(row.values()) for row in rows])
        text = out.getvalue()
    report = validate_stream(io.BytesIO(text.encode()), filename=f"f.{kind}")
    if len(rows) >= 100:
        assert report.ok, report.format()
    else:
        assert [p.message.split(" (")[0] for p in report.problems] == ["Invalid dataset: too few rows"]
    assert report.rows == len(rows)
    assert report.conversations == len(turns)
    assert report.characters == sum(len(content) * 2 + 1 for _ in rows)


VALID_PREFIX = "".join(
    json.dumps({"System_Prompt": "", "C_ID": c, "T_ID": 0, "Text": "q?", "Completion": "a."}) + "\n" for c in range(100)
)


@SETTINGS
@given(
    line=st.one_of(
        st.text(max_size=40),
        st.tuples(st.builds(json.dumps, values), st.text(" \t\r\x0b\x0c\x85\u3000x", max_size=3)).map("".join),
        st.tuples(st.text(" \t\r\x0b\ufeff", max_size=3), st.builds(json.dumps, values)).map("".join),
    )
)
def test_json_verdict_matches_json_loads(line: str) -> None:
    """The fast scanner path must call a line invalid exactly when json.loads does."""
    line = line.replace("\n", " ")
    data = (VALID_PREFIX + line + "\n").encode("utf-8", "surrogatepass")
    report = validate_stream(io.BytesIO(data), filename="f.jsonl")
    json_problems = [p for p in report.problems if p.message.startswith("Invalid json format.")]
    if not line or line.isspace():
        return  # a blank line, not a row
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        assert len(json_problems) == 1
    else:
        assert len(json_problems) == (0 if isinstance(value, dict) else 1)
