"""File-level rules: extension, size, encoding, missing and unreadable files."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from airflow_provider_clova.datasets import validate_path, validate_stream

from ._data import csv_text, jsonl_text, make_rows, write


class NoRead(io.RawIOBase):
    """A stream that fails the test if anything reads it."""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the stream should not have been read")


@pytest.mark.parametrize("name", ["train.json", "train.txt", "train", "train.jsonl.gz", "train.tsv"])
def test_extension(tmp_path: Path, name: str) -> None:
    report = validate_path(write(tmp_path / name, jsonl_text(make_rows())))
    assert [(p.code, p.message, p.line, p.row) for p in report.problems] == [
        ("file.extension", "Unavailable file extension. Please check the file extension again.", None, None)
    ]
    assert ".csv or .jsonl" in report.problems[0].fix


def test_extension_is_case_insensitive(tmp_path: Path) -> None:
    assert validate_path(write(tmp_path / "TRAIN.JSONL", jsonl_text(make_rows()))).ok
    assert validate_path(write(tmp_path / "Train.Csv", csv_text(make_rows()))).ok


def test_extension_checked_without_reading() -> None:
    report = validate_stream(NoRead(), filename="data/train.xlsx", size=10)  # type: ignore[arg-type]
    assert report.first_failure() is not None
    assert report.problems[0].code == "file.extension"
    assert "'.xlsx'" in report.problems[0].fix


def test_size_known_in_advance_fails_without_reading() -> None:
    report = validate_stream(NoRead(), filename="a.jsonl", size=2_000_000, max_bytes=1_000_000)  # type: ignore[arg-type]
    assert [(p.code, p.message) for p in report.problems] == [
        ("file.size", "Exceeded the disk usage limit. Please check if the file size is 1 MB or less.")
    ]
    assert report.bytes == 2_000_000


def test_size_enforced_while_reading_when_unknown() -> None:
    data = jsonl_text(make_rows()).encode()
    report = validate_stream(io.BytesIO(data), filename="a.jsonl", max_bytes=len(data) - 1)
    assert [p.code for p in report.problems] == ["file.size"]
    assert report.problems[0].terminal


def test_size_exactly_at_the_limit_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", jsonl_text(make_rows()))
    assert validate_path(path, max_bytes=path.stat().st_size).ok
    assert [p.code for p in validate_path(path, max_bytes=path.stat().st_size - 1).problems] == ["file.size"]


def test_negative_max_bytes_is_an_error() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        validate_stream(io.BytesIO(b""), filename="a.jsonl", max_bytes=-1)


def test_encoding_cp949_names_the_line(tmp_path: Path) -> None:
    rows = make_rows()
    text = jsonl_text(rows[:7]) + jsonl_text([dict(rows[7], Text="한글 질문?")]) + jsonl_text(rows[8:])
    lines = text.splitlines(keepends=True)
    data = b"".join(line.encode("cp949") for line in lines)
    report = validate_path(write(tmp_path / "a.jsonl", data))
    assert [(p.code, p.message, p.line) for p in report.problems] == [("file.encoding", "Unsupported charset", 8)]
    assert "UTF-8" in report.problems[0].fix
    assert report.rows == 7  # the lines before it were read and checked


def test_encoding_utf16(tmp_path: Path) -> None:
    data = csv_text(make_rows()).encode("utf-16")
    report = validate_path(write(tmp_path / "a.csv", data))
    assert [(p.code, p.line) for p in report.problems] == [("file.encoding", 1)]


def test_encoding_latin1_in_csv(tmp_path: Path) -> None:
    text = csv_text(make_rows()).replace("Answer 3.0.", "Café 3.0.")
    report = validate_path(write(tmp_path / "a.csv", text.encode("latin-1")))
    assert [(p.code, p.line) for p in report.problems] == [("file.encoding", 8)]


def test_encoded_surrogates_are_not_utf8(tmp_path: Path) -> None:
    data = jsonl_text(make_rows()).encode() + b'{"Text": "\xed\xa0\x80"}\n'
    report = validate_path(write(tmp_path / "a.jsonl", data))
    assert [(p.code, p.line) for p in report.problems] == [("file.encoding", 101)]


def test_missing_file(tmp_path: Path) -> None:
    report = validate_path(tmp_path / "nope.jsonl")
    problem = report.first_failure()
    assert problem is not None and problem.code == "file.noexist"
    assert "nope.jsonl" in problem.message


def test_directory_is_a_read_error(tmp_path: Path) -> None:
    (tmp_path / "dir.jsonl").mkdir()
    problem = validate_path(tmp_path / "dir.jsonl").first_failure()
    assert problem is not None and problem.code == "file.error"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_is_a_read_error(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", jsonl_text(make_rows()))
    path.chmod(0)
    problem = validate_path(path).first_failure()
    assert problem is not None and problem.code == "file.error"


def test_path_may_be_a_str(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", jsonl_text(make_rows()))
    assert validate_path(str(path)).ok


def test_path_through_a_file_is_a_read_error(tmp_path: Path) -> None:
    parent = write(tmp_path / "plain.jsonl", "x")
    problem = validate_path(parent / "child.jsonl").first_failure()
    assert problem is not None and problem.code == "file.error"
