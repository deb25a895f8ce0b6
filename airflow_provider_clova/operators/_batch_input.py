"""Reading a batch input JSONL: one request per line, each checked before it can cost budget.

A line is ``{"id": optional, "messages": [...], "parameters": optional {...}}``. Anything a
line gets wrong (not JSON, not an object, no messages, a parameter out of range, an id
already used) becomes a :class:`RowError` naming the line, never an exception: one bad line
in a million must not crash the batch, and it is reported in the output like any failure.

The file is read twice, streaming: once to index it (ids, errors, totals; no messages kept
in memory) and once to send. Both passes run the same pure :func:`parse_line`, so they
agree. Reads go through :func:`read_chunks` in a worker thread, because an
``ObjectStoragePath`` read may block on the network.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar

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
    messages: list[dict[str, Any]]
    parameters: dict[str, Any]
    #: Input tokens (estimated) + maxTokens: what the request is charged against TPM.
    cost: int = 0
    #: Output tokens the request reserves (its maxTokens, or the default).
    reserved_output_tokens: int = 0


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


Validator = Callable[[list[dict[str, Any]], dict[str, Any]], tuple[int, int]]


def parse_line(
    number: int,
    raw: bytes,
    *,
    defaults: Mapping[str, Any],
    validate: Validator,
) -> Row | BadRow:
    """Turn one line into a :class:`Row`, or a :class:`BadRow` saying what is wrong with it.

    ``validate(messages, parameters)`` checks a request for the model (raising
    ``ClovaStudioConfigError`` / ``ClovaStudioBudgetError``) and returns (cost, reserved output).
    """
    from airflow_provider_clova.client.errors import ClovaStudioBudgetError, ClovaStudioConfigError

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

    unknown = sorted(set(item) - {"id", "messages", "parameters"})
    if unknown:
        return bad("invalid_request", f"unknown field(s) {', '.join(unknown)}; expected id, messages, parameters")
    messages = item.get("messages")
    if not isinstance(messages, list) or not messages:
        return bad("invalid_request", "messages is missing or empty; give a list of {role, content} objects")
    parameters = item.get("parameters") or {}
    if not isinstance(parameters, dict):
        return bad("invalid_parameter", "parameters must be an object")
    merged = {**defaults, **parameters}
    try:
        cost, reserved = validate(messages, merged)
    except ClovaStudioConfigError as exc:
        return bad("invalid_parameter", str(exc))
    except ClovaStudioBudgetError as exc:
        return bad("budget", str(exc))
    return Row(number, row_id, messages, merged, cost, reserved)


def build_index(lines: Iterator[tuple[int, bytes]], parse: Callable[[int, bytes], Row | BadRow]) -> InputIndex:
    """First pass: every line's id, and the lines that cannot be sent (incl. duplicate ids)."""
    index = InputIndex()
    first_line: dict[str, int] = {}
    for number, raw in lines:
        parsed = parse(number, raw)
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
