"""Row-level rules shared by the JSONL and CSV readers: columns, values, C_ID/T_ID sequence.

This is the *slow path*: the readers in ``validator`` handle a well-formed row inline, with
local variables only, and hand a row here only when something about it is off. Here every
rule is spelled out one by one so the problems are precise, and the running figures the
readers keep in locals are mirrored in attributes so both paths can share them.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

from airflow_provider_clova.datasets import problems
from airflow_provider_clova.datasets.report import DatasetProblem, DatasetReport
from airflow_provider_clova.datasets.rules import COLUMNS, ID_COLUMNS, NON_EMPTY_TEXT_COLUMNS

_KNOWN = frozenset(COLUMNS)


class Truncated(Exception):
    """``max_errors`` problems were recorded and another one came up: stop validating."""


class Checker:
    """Collects problems and running figures for one file.

    Sequence state: ``prev_c``/``prev_t`` are the last row's C_ID/T_ID (-1/-1 before the
    first row, so the first row must be 0/0 like any new conversation). After a row whose
    ids could not be read at all, ``synced`` is False and the next row with readable ids is
    taken as the new reference instead of being judged; after a wrong id, the next row may
    follow on from either the wrong row or what it should have been. Either way one broken
    row gives one problem, not a cascade over every row after it. The readers' fast path
    only runs while ``synced`` is True.
    """

    def __init__(self, max_errors: int) -> None:
        self.max_errors = max_errors
        self.problems: list[DatasetProblem] = []
        self.truncated = False
        self.rows = 0
        self.conversations = 0
        self.characters = 0
        self.wide_characters = 0
        self.prev_c = -1
        self.prev_t = -1
        self.synced = True
        # After a wrong id: the states the next row may also follow on from (see step()).
        self.alternatives: tuple[tuple[int, int], ...] = ()

    # -- recording -----------------------------------------------------------------------

    def add(self, problem: DatasetProblem) -> None:
        """Record a problem, or raise Truncated when the budget is already spent."""
        if len(self.problems) >= self.max_errors:
            self.truncated = True
            raise Truncated
        self.problems.append(problem)

    def report(self, size: int) -> DatasetReport:
        return DatasetReport(
            ok=not self.problems,
            problems=list(self.problems),
            truncated=self.truncated,
            rows=self.rows,
            conversations=self.conversations,
            characters=self.characters,
            estimated_tokens=estimate_tokens(self.characters, self.wide_characters),
            bytes=size,
        )

    # -- columns -------------------------------------------------------------------------

    def check_columns(self, line: int, row: int | None, names: Sequence[str]) -> None:
        """Duplicate (case-insensitive), unexpected, missing and out-of-order column names."""
        groups: dict[str, list[str]] = {}
        for name in names:
            groups.setdefault(name.lower(), []).append(name)
        reported: set[str] = set()
        for group in groups.values():
            if len(group) < 2:
                continue
            extras = list(group)
            canonical = next((name for name in group if name in _KNOWN), None)
            extras.remove(canonical if canonical is not None else group[0])
            for name in extras:
                self.add(problems.duplicate(line, row, name))
                reported.add(name)
        for name in names:
            if name not in _KNOWN and name not in reported:
                self.add(problems.unexpected(line, row, name))
                reported.add(name)
        present = set(names)
        for column in COLUMNS:
            if column not in present:
                self.add(problems.required(line, row, column))
        known = list(dict.fromkeys(name for name in names if name in _KNOWN))
        if known != [column for column in COLUMNS if column in present]:
            self.add(problems.order(line, row))

    # -- values --------------------------------------------------------------------------

    def check_values(self, line: int, row: int, values: Mapping[str, object], present: Collection[str]) -> None:
        """Text columns, then the C_ID/T_ID rules, for one row whose columns were checked.

        Columns not in ``present`` were already reported as missing and are skipped here.
        """
        for column in ("System_Prompt", *NON_EMPTY_TEXT_COLUMNS):
            if column not in present:
                continue
            value = values.get(column)
            if isinstance(value, str):
                self.characters += len(value)
                if column != "System_Prompt" and (not value or value.isspace()):
                    self.add(problems.required(line, row, column))
            elif value is None:
                if column != "System_Prompt":
                    self.add(problems.required(line, row, column))
            elif isinstance(value, bool) or not isinstance(value, int | float):
                self.add(problems.not_text(line, row, column))
            else:  # a number: readers such as pandas take it as its text
                self.characters += len(str(value))
        ids = [self._read_id(line, row, column, values, present) for column in ID_COLUMNS]
        self.step(line, row, ids[0], ids[1])

    def _read_id(
        self, line: int, row: int, column: str, values: Mapping[str, object], present: Collection[str]
    ) -> int | None:
        """The id as an int, or None when missing (reported elsewhere) or invalid (reported here)."""
        if column not in present:
            return None
        value = values.get(column)
        number = parse_id(value)
        if number is None:
            self.add(problems.bad_id(line, row, column, value, None))
        return number

    def step(self, line: int, row: int, cid: int | None, tid: int | None) -> None:
        """Judge one row's (C_ID, T_ID) against the previous row and move the sequence on.

        ``None`` means unknown (already reported). A missing half is inferred when the other
        half makes it unambiguous; otherwise the sequence is re-synchronised on the next row.
        After a wrong id, the next row is also accepted if it follows on from what the wrong
        row should have been, so a single typo gives a single problem.
        """
        prev_c, prev_t = self.prev_c, self.prev_t
        if not self.synced:
            if cid is None or tid is None:
                return
            alternatives, self.alternatives, self.synced = self.alternatives, (), True
            if not alternatives or any(_follows(state, cid, tid) for state in alternatives):
                self._advance(cid, tid)
                return
        if cid is None:
            if tid == 0:
                cid = prev_c + 1
            elif tid == prev_t + 1 and prev_c >= 0:
                cid = prev_c
            else:
                self.synced = False
                return
        elif tid is None:
            if cid == prev_c:
                tid = prev_t + 1
            elif cid == prev_c + 1:
                tid = 0
            else:
                self.add(problems.bad_id(line, row, "C_ID", cid, _expected_c(prev_c)))
                self.prev_c, self.synced, self.alternatives = cid, False, ()
                return
        elif cid == prev_c:
            if tid != prev_t + 1:
                self._wrong(problems.bad_id(line, row, "T_ID", tid, str(prev_t + 1)), (cid, prev_t + 1))
        elif cid == prev_c + 1:
            if tid != 0:
                expected = "0 (a new conversation starts at T_ID 0)"
                self._wrong(problems.bad_id(line, row, "T_ID", tid, expected), (cid, 0))
        else:
            bad = problems.bad_id(line, row, "C_ID", cid, _expected_c(prev_c))
            self._wrong(bad, (prev_c, prev_t), (prev_c, tid), (prev_c + 1, tid))
        self._advance(cid, tid)

    def _wrong(self, problem: DatasetProblem, *alternatives: tuple[int, int]) -> None:
        """Record a wrong id; the next row may follow on from any of ``alternatives`` instead."""
        self.synced, self.alternatives = False, alternatives
        self.add(problem)

    def _advance(self, cid: int, tid: int) -> None:
        if cid != self.prev_c:
            self.conversations += 1
        self.prev_c, self.prev_t = cid, tid

    def unreadable_row(self) -> None:
        """A row whose values could not be read at all: re-synchronise on the next one."""
        self.synced, self.alternatives = False, ()


def parse_id(value: object) -> int | None:
    """C_ID/T_ID as an int: JSON ints, whole-number floats and numeric strings (CSV).

    Whole-number floats ("3.0", 3.0) are accepted because the service reads the file with a
    dataframe-style reader that gives exactly those for a column with such values.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.isascii() and text.isdigit():
                return int(text)
            value = float(text)
        except ValueError:  # not a number, or more digits than int() accepts
            return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _follows(state: tuple[int, int], cid: int, tid: int) -> bool:
    """Whether (cid, tid) may come right after ``state``: next turn, or a new conversation."""
    prev_c, prev_t = state
    return (cid == prev_c and tid == prev_t + 1) or (cid == prev_c + 1 and tid == 0)


def _expected_c(prev_c: int) -> str:
    if prev_c < 0:
        return "0 (the first row starts conversation 0)"
    return f"{prev_c} (same conversation) or {prev_c + 1} (next conversation)"


def estimate_tokens(characters: int, wide_characters: int) -> int:
    """Estimate tokens from content characters: 4 ASCII characters or 1 other character a token.

    ``characters`` counts System_Prompt, Text and Completion; ``wide_characters`` how many of
    them are outside ASCII (Hangul, CJK, ...), counted from how much longer the file is in
    UTF-8 bytes than in characters, plus JSON ``\\uXXXX`` escapes. One token per Hangul
    syllable errs high for HyperCLOVA X's tokenizer, which suits budgeting; for exact figures
    use the service's count-tokens API.
    """
    wide = min(max(wide_characters, 0), characters)
    return wide + math.ceil((characters - wide) / 4)
