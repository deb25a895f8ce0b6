"""What a validation returns: the problems found and a summary of the data read.

Plain dataclasses with no behaviour beyond rendering, so the operator, the emulator and the
CLI can all consume them (and a test can compare them) without knowing how they were made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from airflow_provider_clova.datasets.rules import TERMINAL_CODES, TERMINAL_FORMAT_RULES, match_format_rule


@dataclass(frozen=True)
class DatasetProblem:
    """One thing wrong with a dataset, located as precisely as the file allows.

    ``code`` is the CLOVA Studio ``failureReason`` the service would report, ``message`` its
    wording. ``line`` is the 1-based physical line of the file, ``row`` the 1-based data row
    (the CSV header is not a row); both are None for problems about the whole file, and
    ``column`` is None when no single column is at fault.
    """

    code: str
    message: str
    line: int | None
    row: int | None
    column: str | None
    fix: str

    def __str__(self) -> str:
        where = [self.code]
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        stop = " " if self.message.endswith(".") else ". "
        return f"{' '.join(where)}: {self.message}{stop}Fix: {self.fix}"

    @property
    def terminal(self) -> bool:
        """True when reading stopped at this problem (nothing after it was checked)."""
        if self.code in TERMINAL_CODES:
            return True
        return self.code == "file.format" and match_format_rule(self.message) in TERMINAL_FORMAT_RULES


@dataclass
class DatasetReport:
    """The outcome of validating one dataset file.

    ``truncated`` is True when validation stopped because ``max_errors`` problems were found
    and at least one more followed. When reading stopped early (truncation or a file-level
    problem such as ``file.encoding``) the figures cover only the part that was read.
    ``estimated_tokens`` is a rough figure; see ``validator.estimate_tokens``.
    """

    ok: bool
    problems: list[DatasetProblem] = field(default_factory=list)
    truncated: bool = False
    rows: int = 0
    conversations: int = 0
    characters: int = 0
    estimated_tokens: int = 0
    bytes: int = 0

    def first_failure(self) -> DatasetProblem | None:
        """The problem the service would most likely report first, or None when valid."""
        return self.problems[0] if self.problems else None

    def summary(self) -> str:
        """One line: verdict and figures, plus why the figures may be partial."""
        verdict = "valid" if self.ok else f"INVALID ({len(self.problems)} problem{_s(len(self.problems))}"
        if not self.ok:
            verdict += ", stopped early: more may follow)" if self.truncated else ")"
        text = (
            f"summary: {verdict}; {self.rows:,} row{_s(self.rows)}, "
            f"{self.conversations:,} conversation{_s(self.conversations)}, "
            f"{self.characters:,} characters, ~{self.estimated_tokens:,} tokens (estimated), "
            f"{self.bytes:,} bytes"
        )
        if any(problem.terminal for problem in self.problems):
            text += "; reading stopped at a file-level problem, figures cover the part read"
        elif self.truncated:
            text += "; figures cover the part read"
        return text

    def format(self) -> str:
        """One problem a line, code first, then the summary line."""
        return "\n".join([*(str(problem) for problem in self.problems), self.summary()])


def _s(count: int) -> str:
    return "" if count == 1 else "s"
