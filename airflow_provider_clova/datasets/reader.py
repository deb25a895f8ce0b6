"""Turn a binary stream into batches of decoded, complete lines, checking the file-level rules.

Why not ``io.TextIOWrapper``: it needs a seekable or buffered stream to behave well, it
cannot say on which *line* an invalid UTF-8 byte sits, and iterating a raw S3 body would
yield fixed-size chunks, not lines. Here the stream is only ever asked for ``read(n)``, so
any file-like object works (a local file, a non-seekable S3 ``StreamingBody``, a pipe) and
short reads are fine. Memory stays flat: at most one chunk plus one unfinished line is held.

The file-level rules live here because they are checked on bytes, before any parsing:
the size limit (``file.size``), UTF-8 with an optional BOM (``file.encoding``), read failures
(``file.error``) and our guard against a line without end. Each ends the reading by raising
``StopReading`` with the problem.
"""

from __future__ import annotations

from codecs import utf_8_decode
from collections.abc import Iterator
from typing import Protocol

from airflow_provider_clova.datasets import problems
from airflow_provider_clova.datasets.report import DatasetProblem
from airflow_provider_clova.datasets.rules import MAX_LINE_BYTES

BOM = b"\xef\xbb\xbf"
# Large enough that the per-chunk work (split, decode) is negligible per byte, small enough
# to keep the footprint a few MiB whatever the file size.
CHUNK_SIZE = 1024 * 1024


class Readable(Protocol):
    """The one method the reader needs from a stream."""

    def read(self, size: int = ..., /) -> bytes: ...


class StopReading(Exception):
    """Reading cannot go on; ``problem`` says why and where."""

    def __init__(self, problem: DatasetProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class LineReader:
    """Reads ``stream`` in chunks and yields ``(first_line_number, lines)`` batches.

    ``lines`` are the file's physical lines (split on ``\\n``), without the ``\\n``; a ``\\r``
    of a CRLF file stays at the end of its line, which JSON and csv both accept. A leading
    UTF-8 BOM is dropped. ``bytes_read`` counts every byte taken from the stream, BOM
    included, which is what the service's size limit applies to.
    """

    def __init__(
        self,
        stream: Readable,
        *,
        max_bytes: int,
        chunk_size: int = CHUNK_SIZE,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self._stream = stream
        self._max_bytes = max_bytes
        self._chunk_size = chunk_size
        self._max_line_bytes = max_line_bytes
        self.bytes_read = 0
        # For the token estimate: UTF-8 bytes beyond one per character (a Hangul syllable
        # takes 3 bytes), and JSON \uXXXX escapes, which stand for such characters in files
        # written with ensure_ascii. Both come almost free from work done anyway.
        self._excess_bytes = 0
        self._escapes = 0

    @property
    def wide_characters(self) -> int:
        """About how many non-ASCII characters the text read so far holds."""
        return self._excess_bytes // 2 + self._escapes

    def batches(self) -> Iterator[tuple[int, list[str]]]:
        """Yield batches of complete lines; raise StopReading at a file-level problem.

        Per chunk this costs one concatenation (the unfinished line carried over), one
        decode and one split, all in C; lines are counted from the split, never by scanning.
        """
        pending = b""  # the start of a line that has not ended yet
        next_line = 1
        skip = -1  # bytes of BOM to skip; -1 until the file's first bytes have been seen
        while True:
            chunk = self._read()
            if not chunk:
                break
            data = pending + chunk if pending else chunk
            if skip < 0:
                if len(data) < len(BOM) and BOM.startswith(data):
                    pending = data  # too short to tell yet (a short read)
                    continue
                skip = len(BOM) if data.startswith(BOM) else 0
            cut = data.rfind(b"\n")
            if cut < skip:
                pending = data
                if len(pending) > self._max_line_bytes:
                    raise StopReading(problems.line_too_long(next_line, self._max_line_bytes))
                continue
            if pending and data.find(b"\n", len(pending)) - skip > self._max_line_bytes:
                raise StopReading(problems.line_too_long(next_line, self._max_line_bytes))
            try:
                lines = self._decode(data, skip, cut, next_line)
            except _Undecodable as bad:
                yield from bad.batch
                raise StopReading(bad.problem) from None
            pending, skip = data[cut + 1 :], 0
            yield next_line, lines
            next_line += len(lines)
        if pending:
            skip = max(skip, 0)
            if len(pending) > skip:
                try:
                    lines = self._decode(pending, skip, len(pending), next_line)
                except _Undecodable as bad:
                    yield from bad.batch
                    raise StopReading(bad.problem) from None
                yield next_line, lines

    def _read(self) -> bytes:
        try:
            chunk = self._stream.read(self._chunk_size)
        except Exception as exc:  # any failure of a foreign stream is a read error, not a crash
            raise StopReading(problems.read_error(f"{type(exc).__name__}: {exc}")) from exc
        if chunk is None:  # a non-blocking raw stream with nothing yet; treat as the end
            return b""
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise TypeError(f"the dataset stream must be opened in binary mode, read() gave {type(chunk)}")
        self.bytes_read += len(chunk)
        if self.bytes_read > self._max_bytes:
            raise StopReading(problems.size(self._max_bytes, self.bytes_read))
        return bytes(chunk)

    def _decode(self, data: bytes, start: int, end: int, first_line: int) -> list[str]:
        """The lines in ``data[start:end]``; at invalid UTF-8, raise _Undecodable for its line."""
        try:
            text = utf_8_decode(memoryview(data)[start:end], "strict", True)[0]
        except UnicodeDecodeError as exc:
            bad = start + exc.start
            problem = problems.encoding(first_line + data.count(b"\n", start, bad))
            good_end = data.rfind(b"\n", start, bad)  # the lines before the bad one are fine
            batch = [(first_line, self._decode(data, start, good_end, first_line))] if good_end >= 0 else []
            raise _Undecodable(problem, batch) from None
        self._excess_bytes += end - start - len(text)
        if text.isascii():  # only a pure-ASCII text can be hiding characters in escapes
            self._escapes += text.count("\\u")
        return text.split("\n")


class _Undecodable(Exception):
    """Internal: invalid UTF-8; ``batch`` holds the complete lines before it, still to check."""

    def __init__(self, problem: DatasetProblem, batch: list[tuple[int, list[str]]]) -> None:
        super().__init__(str(problem))
        self.problem = problem
        self.batch = batch
