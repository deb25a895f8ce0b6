"""validate_stream on awkward streams: non-seekable, short reads, failures, chunk boundaries."""

from __future__ import annotations

import io
import random

import pytest

from airflow_provider_clova.datasets import validate_stream
from airflow_provider_clova.datasets.reader import LineReader, StopReading

from ._data import csv_text, jsonl_text, make_rows, with_row


class Trickle:
    """A non-seekable stream (like an S3 body) whose reads return a few bytes at a time."""

    def __init__(self, data: bytes, seed: int = 0, fail_after: int | None = None) -> None:
        self._data = data
        self._pos = 0
        self._rng = random.Random(seed)
        self._fail_after = fail_after

    def read(self, size: int = -1) -> bytes:
        if self._fail_after is not None and self._pos >= self._fail_after:
            raise ConnectionResetError("connection reset by peer")
        n = self._rng.randint(1, 13)
        chunk = self._data[self._pos : self._pos + n]
        self._pos += len(chunk)
        return chunk

    def seek(self, *args: object) -> int:
        raise io.UnsupportedOperation("seek")

    def tell(self) -> int:
        raise io.UnsupportedOperation("tell")

    def seekable(self) -> bool:
        return False


def broken_rows() -> list[dict[str, object]]:
    rows = with_row(make_rows(), 4, Text="")
    return with_row(rows, 50, T_ID=7)


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_trickling_stream_gives_the_same_report_as_one_read(kind: str, bom: bytes) -> None:
    text = jsonl_text(broken_rows()) if kind == "jsonl" else csv_text(broken_rows())
    data = bom + text.replace("Question 1.0?", "질문 1.0?").encode()
    whole = validate_stream(io.BytesIO(data), filename=f"x.{kind}", size=len(data))
    for seed in range(5):
        trickled = validate_stream(Trickle(data, seed), filename=f"x.{kind}")  # type: ignore[arg-type]
        assert trickled == whole
    assert [p.row for p in whole.problems] == [5, 51]


def test_read_failure_is_file_error() -> None:
    data = jsonl_text(make_rows()).encode()
    report = validate_stream(Trickle(data, fail_after=500), filename="x.jsonl")  # type: ignore[arg-type]
    problem = report.first_failure()
    assert problem is not None
    assert problem.code == "file.error"
    assert "ConnectionResetError" in problem.message
    assert 0 < report.rows < 100


def test_stream_is_not_closed() -> None:
    stream = io.BytesIO(jsonl_text(make_rows()).encode())
    validate_stream(stream, filename="x.jsonl")
    assert not stream.closed


def test_text_stream_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="binary mode"):
        validate_stream(io.StringIO("{}"), filename="x.jsonl")  # type: ignore[arg-type]


def lines_of(data: bytes, chunk_size: int, **kwargs: int) -> list[tuple[int, str]]:
    reader = LineReader(io.BytesIO(data), max_bytes=10**9, chunk_size=chunk_size, **kwargs)
    return [(first + i, line) for first, lines in reader.batches() for i, line in enumerate(lines)]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 64])
def test_reader_numbers_lines_across_chunks(chunk_size: int) -> None:
    data = "\ufeffa\n한글\r\n\n last".encode()
    assert lines_of(data, chunk_size) == [(1, "a"), (2, "한글\r"), (3, ""), (4, " last")]


@pytest.mark.parametrize("chunk_size", [1, 4, 1024])
def test_reader_reports_the_line_of_a_bad_byte(chunk_size: int) -> None:
    reader = LineReader(io.BytesIO(b"ok\nfine\nbad \xff here\nnever\n"), max_bytes=10**9, chunk_size=chunk_size)
    seen: list[str] = []
    with pytest.raises(StopReading) as stop:
        for _, lines in reader.batches():
            seen.extend(lines)
    assert (stop.value.problem.code, stop.value.problem.line) == ("file.encoding", 3)
    assert seen == ["ok", "fine"]


def test_reader_stops_a_line_without_end() -> None:
    reader = LineReader(io.BytesIO(b"short\n" + b"x" * 100), max_bytes=10**9, chunk_size=8, max_line_bytes=50)
    with pytest.raises(StopReading) as stop:
        list(reader.batches())
    problem = stop.value.problem
    assert (problem.code, problem.line, problem.message) == (
        "file.format",
        2,
        "Invalid dataset: line longer than 50 bytes",
    )
    assert problem.terminal


def test_reader_memory_is_bounded_by_chunk_and_line() -> None:
    # 2,000 lines through 64-byte chunks: no batch ever holds more than a chunk and a line
    data = b"".join(b"line %d\n" % i for i in range(2000))
    reader = LineReader(io.BytesIO(data), max_bytes=10**9, chunk_size=64)
    biggest = max(sum(len(line) + 1 for line in lines) for _, lines in reader.batches())
    assert biggest <= 64 + len(b"line 1999\n")
