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
    """Reads ``stream`` in chunks and yields ``(first_line_number, text)`` batches.

    Each batch holds whole lines, each ending in ``\\n`` except possibly the file's last
    line. A leading UTF-8 BOM is dropped. ``bytes_read`` counts every byte taken from the
    stream, BOM included, which is what the service's size limit applies to.
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
        # UTF-8 bytes beyond one per character, halved: about how many characters are
        # non-ASCII (a Hangul syllable takes 3 bytes). Feeds the token estimate.
        self._excess_bytes = 0

    def batches(self) -> Iterator[tuple[int, str]]:
        """Yield batches of complete lines; raise StopReading at a file-level problem."""
        pending: list[bytes] = []  # the start of a line that has not ended yet
        pending_len = 0
        next_line = 1
        first = True
        while True:
            chunk = self._read()
            if not chunk:
                break
            cut = chunk.rfind(b"\n")
            ends_pending = chunk.find(b"\n") + 1 if pending else 0
            if cut < 0 or pending_len + ends_pending > self._max_line_bytes:
                pending.append(chunk)
                pending_len += len(chunk)
                if pending_len > self._max_line_bytes:
                    raise StopReading(problems.line_too_long(next_line, self._max_line_bytes))
                continue
            head = chunk[: cut + 1]
            if pending:
                pending.append(head)
                head = b"".join(pending)
            rest = chunk[cut + 1 :]
            pending = [rest] if rest else []
            pending_len = len(rest)
            if first:
                head, first = _strip_bom(head), False
            yield from self._decoded(head, next_line)
            next_line += head.count(b"\n")
        if pending:
            tail = b"".join(pending)
            if first:
                tail = _strip_bom(tail)
            if tail:
                yield from self._decoded(tail, next_line)

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

    @property
    def wide_characters(self) -> int:
        """About how many non-ASCII characters the decoded text held so far."""
        return self._excess_bytes // 2

    def _decoded(self, data: bytes, first_line: int) -> Iterator[tuple[int, str]]:
        """Decode one batch; at invalid UTF-8, first yield the lines before it, then stop."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            good_end = data.rfind(b"\n", 0, exc.start) + 1
            if good_end:
                good = data[:good_end].decode("utf-8")
                self._excess_bytes += good_end - len(good)
                yield first_line, good
            bad_line = first_line + data.count(b"\n", 0, exc.start)
            raise StopReading(problems.encoding(bad_line)) from None
        self._excess_bytes += len(data) - len(text)
        yield first_line, text


def _strip_bom(data: bytes) -> bytes:
    return data[len(BOM) :] if data.startswith(BOM) else data
