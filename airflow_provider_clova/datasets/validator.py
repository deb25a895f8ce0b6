"""Streaming validation of a CLOVA Studio tuning dataset (.jsonl or .csv).

Entry points: ``validate_path`` for a local file, ``validate_stream`` for any binary stream
(an S3/Object Storage body is fine: only ``read(n)`` is used, no seek). Both return a
``DatasetReport``; a bad or unreadable dataset never raises, it is reported.

Speed and memory: the file is read in 1 MiB chunks (see ``reader``), so memory stays flat
whatever the size. Each row is first tried against a *fast path* written with local
variables only: the columns are exactly System_Prompt, C_ID, T_ID, Text, Completion in that
order, the ids are whole numbers that continue the sequence, and Text/Completion are
non-empty. Only a row that fails that test goes to ``checker.Checker``, which works out
precisely what is wrong. A valid file therefore costs little more than parsing it.

Reading stops early at a file-level problem (extension, size, encoding, read error), since
the service rejects the whole file for it, and after ``max_errors`` problems.
"""

from __future__ import annotations

import csv
import json
import os
import stat
from itertools import chain, repeat
from operator import add
from typing import BinaryIO

from airflow_provider_clova.datasets import problems
from airflow_provider_clova.datasets.checker import Checker, Truncated
from airflow_provider_clova.datasets.reader import LineReader, StopReading
from airflow_provider_clova.datasets.report import DatasetReport
from airflow_provider_clova.datasets.rules import COLUMNS, DEFAULT_MAX_BYTES, MAX_LINE_BYTES, MIN_ROWS


def validate_path(path: str | os.PathLike[str], *, max_errors: int = 20, max_bytes: int | None = None) -> DatasetReport:
    """Validate the dataset file at ``path``; see ``validate_stream``.

    A missing file is reported as ``file.noexist`` and one that cannot be opened or read
    (a directory, no permission) as ``file.error``, the codes the service uses for the same.
    """
    _check_max_errors(max_errors)
    name = os.fspath(path)
    try:
        handle = open(name, "rb")  # noqa: SIM115 - closed below, after the size is known
    except FileNotFoundError as exc:
        return _file_problem(problems.not_found(f"{name}: {exc.strerror or exc}"), max_errors)
    except OSError as exc:
        return _file_problem(problems.read_error(f"{name}: {exc.strerror or exc}"), max_errors)
    with handle:
        size: int | None = None
        try:
            info = os.fstat(handle.fileno())
            if stat.S_ISREG(info.st_mode):
                size = info.st_size
        except OSError:
            size = None
        return validate_stream(
            handle, filename=os.path.basename(name), size=size, max_errors=max_errors, max_bytes=max_bytes
        )


def validate_stream(
    stream: BinaryIO,
    *,
    filename: str,
    size: int | None = None,
    max_errors: int = 20,
    max_bytes: int | None = None,
) -> DatasetReport:
    """Validate a dataset read incrementally from a binary ``stream``.

    ``filename`` gives the format by its extension (``.jsonl`` or ``.csv``, case-insensitive).
    ``size``, when known, lets an oversized file fail without being read; when None, the size
    limit is enforced while reading. ``max_bytes`` defaults to ``DEFAULT_MAX_BYTES`` (1 TB, the
    service's documented limit). Validation stops after ``max_errors`` problems (the report
    is then ``truncated``). The stream is not closed.
    """
    _check_max_errors(max_errors)
    limit = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    if limit < 0:
        raise ValueError(f"max_bytes must not be negative, got {max_bytes}")
    checker = Checker(max_errors)
    lowered = filename.lower()
    if lowered.endswith(".jsonl"):
        check = _check_jsonl
    elif lowered.endswith(".csv"):
        check = _check_csv
    else:
        checker.add(problems.extension(filename))
        return checker.report(size or 0)
    if size is not None and size > limit:
        checker.add(problems.size(limit, size))
        return checker.report(size)
    reader = LineReader(stream, max_bytes=limit)
    try:
        try:
            check(reader, checker)
        except StopReading as stop:
            checker.add(stop.problem)
        else:
            if checker.rows < MIN_ROWS:
                checker.add(problems.min_rows(checker.rows))
    except Truncated:
        pass
    return checker.report(max(size or 0, reader.bytes_read))


def _check_max_errors(max_errors: int) -> None:
    if max_errors < 1:
        raise ValueError(f"max_errors must be at least 1, got {max_errors}")


def _file_problem(problem: problems.DatasetProblem, max_errors: int) -> DatasetReport:
    checker = Checker(max_errors)
    checker.add(problem)
    return checker.report(0)


def _check_jsonl(reader: LineReader, checker: Checker) -> None:
    """JSON Lines: one object a line, keys in column order. Blank lines are skipped."""
    loads = json.loads
    # json.loads is a Python wrapper (type checks, two regex matches, three calls) around
    # this C scanner; calling it directly makes parsing a third faster. Same decoder
    # settings as json.loads, so the same lines parse to the same values.
    scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # set in __init__, not in typeshed
    columns = COLUMNS
    row = checker.rows
    chars = checker.characters
    prev_c, prev_t, conversations = checker.prev_c, checker.prev_t, checker.conversations
    synced = checker.synced
    try:
        for first_line, lines in reader.batches():
            # Row numbers without a counter in the loop: row = line number + shift, where the
            # shift drops by one at each blank line (blank lines are not rows).
            shift = row - first_line + 1
            for line_no, line in enumerate(lines, first_line):
                try:
                    obj, end = scan(line, 0)
                except (StopIteration, ValueError, RecursionError):
                    obj, end = None, -1
                if end != len(line) and (end < 0 or line[end:].strip(_JSON_BLANKS)):
                    # Not one clean JSON value: a blank line, leading blanks, an error. Rare,
                    # so json.loads may parse it again for its exact error message.
                    if not line or line.isspace():
                        shift -= 1
                        continue
                    try:
                        obj = loads(line)
                    except (ValueError, RecursionError) as exc:
                        obj = exc
                if type(obj) is dict and tuple(obj) == columns:
                    sp, cid, tid, txt, cpl = obj.values()
                    try:
                        # Only a str has isspace() (JSON gives no other type with it), so a
                        # non-text value raises and takes the slow path.
                        plain = (
                            synced
                            and type(cid) is type(tid) is int
                            and txt
                            and cpl
                            and not txt.isspace()
                            and not cpl.isspace()
                            and (sp is None or type(sp) is str)
                        )
                    except AttributeError:
                        plain = False
                    if plain:
                        new_conversation = cid != prev_c
                        if (cid == prev_c + 1 and tid == 0) if new_conversation else tid == prev_t + 1:
                            conversations += new_conversation
                            prev_c, prev_t = cid, tid
                            chars += len(txt) + len(cpl) + (len(sp) if sp else 0)
                            continue
                # Slow path: hand the running figures over, let the checker judge, take them back.
                row = line_no + shift
                checker.rows, checker.characters = row, chars
                checker.prev_c, checker.prev_t, checker.conversations = prev_c, prev_t, conversations
                try:
                    _check_json_row(checker, line_no, row, obj)
                finally:
                    chars, prev_c, prev_t = checker.characters, checker.prev_c, checker.prev_t
                    conversations, synced = checker.conversations, checker.synced
            row = first_line + len(lines) - 1 + shift
    finally:
        checker.rows, checker.characters = row, chars
        checker.prev_c, checker.prev_t, checker.conversations = prev_c, prev_t, conversations
        checker.wide_characters = reader.wide_characters


_JSON_BLANKS = " \t\r"  # what JSON allows after a value ("\n" cannot occur within a line)


def _check_json_row(checker: Checker, line: int, row: int, obj: object) -> None:
    if isinstance(obj, json.JSONDecodeError):
        checker.unreadable_row()
        checker.add(problems.invalid_json(line, row, f"{obj.msg}: column {obj.colno}"))
    elif isinstance(obj, RecursionError):
        checker.unreadable_row()
        checker.add(problems.invalid_json(line, row, "values nested too deeply"))
    elif isinstance(obj, BaseException):
        checker.unreadable_row()
        checker.add(problems.invalid_json(line, row, str(obj)))
    elif not isinstance(obj, dict):
        checker.unreadable_row()
        checker.add(problems.invalid_json(line, row, f"expected an object, found {_json_kind(obj)}"))
    else:
        names = list(obj)
        checker.check_columns(line, row, names)
        checker.check_values(line, row, obj, set(names))


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number"


def _check_csv(reader: LineReader, checker: Checker) -> None:
    """CSV: a header line naming the columns, then one record a row. Blank lines are skipped.

    Records may span lines (quoted line breaks); a row's ``line`` is where its record starts.
    For a CSV syntax error it is the line where the csv module noticed it.
    """
    if csv.field_size_limit() < MAX_LINE_BYTES:
        # The default (128 KiB) is below a legitimate long Completion. Raising it is global to
        # the process, but only ever upwards, so other csv users keep working.
        csv.field_size_limit(MAX_LINE_BYTES)
    # csv wants each line with its ending, to keep line breaks inside quoted values.
    records = csv.reader(chain.from_iterable(map(add, lines, repeat("\n")) for _, lines in reader.batches()))
    header: list[str] | None = None
    header_line = end = 0  # where the header starts; where the last record read ends
    while header is None:
        header_line = end + 1
        try:
            record = next(records)
        except StopIteration:
            return
        except csv.Error as exc:
            checker.add(problems.csv_syntax(records.line_num, None, str(exc)))
            continue
        finally:
            end = records.line_num
        if record:
            header = record
    checker.check_columns(header_line, None, header)
    width = len(header)
    index = {name: i for i, name in reversed(list(enumerate(header))) if name in COLUMNS}
    present = frozenset(index)
    fast = header == list(COLUMNS)

    row = checker.rows
    chars = checker.characters
    prev_c, prev_t, conversations = checker.prev_c, checker.prev_t, checker.conversations
    try:
        while True:
            try:
                for record in records:
                    start, end = end + 1, records.line_num
                    if not record:
                        continue
                    row += 1
                    if fast and len(record) == 5:
                        sp, c_text, t_text, txt, cpl = record
                        if (
                            checker.synced
                            and c_text.isdigit()
                            and t_text.isdigit()
                            and c_text.isascii()
                            and t_text.isascii()
                            and txt
                            and cpl
                            and not txt.isspace()
                            and not cpl.isspace()
                            and len(c_text) < 19
                            and len(t_text) < 19
                        ):
                            cid, tid = int(c_text), int(t_text)
                            new_conversation = cid != prev_c
                            if (cid == prev_c + 1 and tid == 0) if new_conversation else tid == prev_t + 1:
                                conversations += new_conversation
                                prev_c, prev_t = cid, tid
                                chars += len(txt) + len(cpl) + len(sp)
                                continue
                    # Slow path, as in _check_jsonl.
                    checker.rows, checker.characters = row, chars
                    checker.prev_c, checker.prev_t, checker.conversations = prev_c, prev_t, conversations
                    try:
                        if len(record) != width:
                            checker.unreadable_row()
                            checker.add(problems.field_count(start, row, len(record), width, end))
                        else:
                            values = {name: record[i] for name, i in index.items()}
                            checker.check_values(start, row, values, present)
                    finally:
                        chars, prev_c, prev_t = checker.characters, checker.prev_c, checker.prev_t
                        conversations = checker.conversations
                break
            except csv.Error as exc:  # the reader carries on with the next line afterwards
                end = records.line_num
                row += 1
                checker.rows = row
                checker.unreadable_row()  # nothing of this row can be trusted
                checker.add(problems.csv_syntax(records.line_num, row, str(exc)))
    finally:
        checker.rows, checker.characters = row, chars
        checker.prev_c, checker.prev_t, checker.conversations = prev_c, prev_t, conversations
        checker.wide_characters = reader.wide_characters
