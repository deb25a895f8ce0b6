"""Reading a batch input JSONL: one request per line, each checked before it can cost budget.

A line is a JSON object ``{"id": optional, ...}`` whose other fields belong to the row kind
(for chat: ``messages`` and ``parameters``; see :class:`RowParser`). Anything a line gets
wrong (not JSON, not an object, an unknown field, a parameter out of range, an id already
used) becomes a :class:`RowError` naming the line, never an exception: one bad line in a
million must not crash the batch, and it is reported in the output like any failure.

The file is read twice, streaming: once to index it (:func:`build_index`: ids, errors,
totals; no request kept in memory) and once to send (:func:`pending_rows`). Both passes run
the same pure :func:`parse_line`, so they agree. Reads go through :func:`read_chunks` in a worker thread, because an
``ObjectStoragePath`` read may block on the network.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar, Protocol, TypeVar

T = TypeVar("T")

#: Lines handed from the reading thread to the event loop per hop.
CHUNK_LINES = 256


@dataclass(frozen=True)
class RowError:
    """Why one line or request failed: ``type`` (our category), ``code`` (CLOVA's), text."""

    type: str
    message: str
    code: str | None = None
    #: True when a later try may succeed (rate limit, timeout, 5xx); False for input errors.
    retryable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "code": self.code, "message": self.message, "retryable": self.retryable}


@dataclass(frozen=True)
class Row:
    """One valid request of the input."""

    line: int
    id: Any
    #: What the row kind's ``parse`` made of the line (for chat: a ``ChatRequest``).
    payload: Any


@dataclass(frozen=True)
class BadRow:
    """A line that cannot be sent; ``id`` is None when the line is not readable JSON."""

    line: int
    id: Any
    error: RowError


@dataclass
class InputIndex:
    """What the first pass learns: rows in line order, without their messages."""

    #: (line, id key, id) of every non-blank line, in order; id key is None for unreadable lines.
    entries: list[tuple[int, str | None, Any]] = field(default_factory=list)
    #: line -> error for lines that cannot be sent (bad JSON, bad parameter, duplicate id ...).
    errors: dict[int, BadRow] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return len(self.entries)


def id_key(value: Any) -> str:
    """A stable key for an id: ``3`` and ``"3"`` are different ids."""
    return json.dumps(value, sort_keys=True)


def open_binary(source: Any) -> BinaryIO:
    """Open a local path or an ``ObjectStoragePath``/``UPath`` (it has a ``protocol``) for reading bytes."""
    if hasattr(source, "protocol") and hasattr(source, "open"):
        handle: BinaryIO = source.open("rb")
        return handle
    return open(os.fspath(source), "rb")


def iter_lines(source: Any) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw bytes) of every line; blank lines are skipped but counted."""
    with open_binary(source) as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if raw.strip():
                yield number, raw


class RowInputError(Exception):
    """Raised by a :class:`RowKind`'s ``parse`` for a line it cannot send: ``type`` and text."""

    def __init__(self, type: str, message: str) -> None:
        self.type = type
        self.message = message
        super().__init__(message)


class RowParser(Protocol):
    """The input half of a :class:`~airflow_provider_clova.batch.RowKind`."""

    #: The fields a line may carry besides ``id``; any other field is an input error.
    fields: ClassVar[tuple[str, ...]]

    def parse(self, item: dict[str, Any]) -> Any:
        """The payload of a row (what ``call`` sends) from one line's object.

        Checks everything that can be checked without sending (fields, parameter ranges, that
        the request fits the budget); raises :class:`RowInputError` naming the problem.
        """
        ...


def parse_line(number: int, raw: bytes, rows: RowParser) -> Row | BadRow:
    """Turn one line into a :class:`Row`, or a :class:`BadRow` saying what is wrong with it.

    The envelope (UTF-8 JSON object, ``id``, no unknown field) is checked here, the row
    kind's own fields by ``rows.parse``.
    """
    try:
        item = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return BadRow(number, None, RowError("invalid_json", f"line {number}: not UTF-8 ({exc.reason})"))
    except json.JSONDecodeError as exc:
        return BadRow(number, None, RowError("invalid_json", f"line {number}: not valid JSON: {exc.msg}"))
    if not isinstance(item, dict):
        return BadRow(number, None, RowError("invalid_request", f"line {number}: must be a JSON object"))
    row_id = item.get("id", number)
    if row_id is None:
        row_id = number
    if isinstance(row_id, bool) or not isinstance(row_id, (str, int)):
        return BadRow(number, None, RowError("invalid_request", f"line {number}: id must be a string or an integer"))

    def bad(kind: str, text: str) -> BadRow:
        return BadRow(number, row_id, RowError(kind, f"line {number} (id {row_id!r}): {text}"))

    unknown = sorted(set(item) - {"id", *rows.fields})
    if unknown:
        expected = ", ".join(("id", *rows.fields))
        return bad("invalid_request", f"unknown field(s) {', '.join(unknown)}; expected {expected}")
    try:
        payload = rows.parse(item)
    except RowInputError as exc:
        return bad(exc.type, exc.message)
    return Row(number, row_id, payload)


def build_index(lines: Iterator[tuple[int, bytes]], rows: RowParser) -> InputIndex:
    """First pass: every line's id, and the lines that cannot be sent (incl. duplicate ids)."""
    index = InputIndex()
    first_line: dict[str, int] = {}
    for number, raw in lines:
        parsed = parse_line(number, raw, rows)
        if parsed.id is None:
            index.entries.append((number, None, None))
        else:
            key = id_key(parsed.id)
            if key in first_line:
                parsed = BadRow(
                    number,
                    parsed.id,
                    RowError(
                        "invalid_request",
                        f"line {number}: id {parsed.id!r} was already used on line {first_line[key]}; "
                        "ids must be unique",
                    ),
                )
                index.entries.append((number, None, parsed.id))
            else:
                first_line[key] = number
                index.entries.append((number, key, parsed.id))
        if isinstance(parsed, BadRow):
            index.errors[number] = parsed
    return index


def pending_rows(source: Any, index: InputIndex, rows: RowParser, done: set[str]) -> Iterator[Row]:
    """Second pass: the sendable rows no earlier try answered (runs in a reader thread)."""
    for number, raw in iter_lines(source):
        if number in index.errors:
            continue
        row = parse_line(number, raw, rows)
        if isinstance(row, Row) and id_key(row.id) not in done:
            yield row


async def read_chunks(items: Iterator[T], size: int = CHUNK_LINES) -> AsyncGenerator[list[T], None]:
    """Items of a (reading, parsing) iterator in chunks, each chunk produced in a worker thread
    so that a slow store or a long line never blocks the event loop."""

    def take() -> list[T]:
        chunk: list[T] = []
        for item in items:
            chunk.append(item)
            if len(chunk) >= size:
                break
        return chunk

    while True:
        chunk = await asyncio.to_thread(take)
        if not chunk:
            return
        yield chunk
