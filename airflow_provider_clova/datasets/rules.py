"""The CLOVA Studio tuning-dataset rules, as data.

One place for the column layout, the limits, the service's ``failureReason`` codes with their
exact wording and a fix for each. The validator builds its problems from here and the tuning
operator turns a FAILED task's ``failureReason`` into a hint from here, so the two always
agree; the README's rules table mirrors it.

The file.extension/size/encoding templates and the first six FORMAT_MESSAGES are copied from
the CLOVA Studio API guide (Create training, ``failureReason``/``message`` table). Where the
guide gives no message ("-"), the template is the guide's description of the code; the other
FORMAT_MESSAGES are ours, for cases the guide leaves out.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

# Column layout (service): exactly these names, in this order.
COLUMNS: tuple[str, ...] = ("System_Prompt", "C_ID", "T_ID", "Text", "Completion")
# System_Prompt must be present as a column but its value may be empty; the others may not.
NON_EMPTY_TEXT_COLUMNS: tuple[str, ...] = ("Text", "Completion")
ID_COLUMNS: tuple[str, ...] = ("C_ID", "T_ID")

EXTENSIONS: tuple[str, ...] = (".csv", ".jsonl")

# The instruction-dataset guide allows "up to 1 TB (available for Ncloud Object Storage)".
# Decimal units, as the guide writes them. Callers with a tighter budget pass max_bytes.
DEFAULT_MAX_BYTES: int = 10**12

# The guide's minimum (1,000 to 100,000 rows recommended). The service's message for too few
# rows is not documented; the wording of that problem is ours.
MIN_ROWS: int = 100

# Ours: a guard that keeps memory bounded when a file has no line breaks (or a CSV quote is
# never closed). No real row comes near it: a 128k-token context is well under 1 MiB of text.
MAX_LINE_BYTES: int = 16 * 1024 * 1024


class Reason(NamedTuple):
    """A message template and the one-sentence fix a person should apply."""

    template: str
    fix: str


VALIDATE_HINT = "python -m airflow_provider_clova.datasets validate FILE"

# failureReason -> (message template, fix). Every row of the service's failure table.
# For codes whose service message is "-" (none), the template is the table's description.
FAILURE_REASONS: Mapping[str, Reason] = MappingProxyType(
    {
        "file.extension": Reason(
            "Unavailable file extension. Please check the file extension again.",
            "Save the dataset as .csv or .jsonl and upload it under that extension.",
        ),
        "file.size": Reason(
            "Exceeded the disk usage limit. Please check if the file size is {limit} or less.",
            "Make the file smaller than the limit: remove or shorten rows, or split the data and tune on a part.",
        ),
        "file.encoding": Reason(
            "Unsupported charset",
            "Re-save the file as UTF-8 (with or without a BOM), e.g. 'Save as > CSV UTF-8' or iconv -f CP949 -t UTF-8.",
        ),
        "file.format": Reason(
            "Invalid dataset: {detail}",
            f"Run `{VALIDATE_HINT}` to see the line, row and column at fault, fix them and upload again.",
        ),
        "file.error": Reason(
            "File read error",
            "Check that the object is complete and readable with the task's Object Storage keys, "
            "re-upload it if needed, then create the task again.",
        ),
        "file.noexist": Reason(
            "Dataset file does not exist",
            "Check trainingDatasetBucket and trainingDatasetFilePath (the object key, without the bucket "
            "name) and that the upload finished before the task was created.",
        ),
        "resource.timeout": Reason(
            "Response timeout due to GPU acquisition failure; retry required",
            "No GPU was free in time: create the task again later (a task retry does this).",
        ),
        "clops.error": Reason(
            "CLOps error while training",
            "A CLOVA Studio platform error: create the task again; if it repeats, contact NAVER Cloud "
            "support with the task id.",
        ),
        "train.unknown": Reason(
            "Non-file related error while training",
            "An unexpected training error: create the task again once; if it repeats, contact NAVER Cloud "
            "support with the task id.",
        ),
    }
)

# The distinct file.format messages, keyed by rule. The first six are the service's.
# Both strings are str.format templates: literal braces are doubled.
FORMAT_MESSAGES: Mapping[str, Reason] = MappingProxyType(
    {
        "json": Reason(
            "Invalid json format. {reason}",
            "Make every line one complete JSON object, e.g. "
            '{{"System_Prompt": "", "C_ID": 0, "T_ID": 0, "Text": "...", "Completion": "..."}}.',
        ),
        "required": Reason(
            "Invalid dataset: required field empty. {column}",
            "Give {column} a non-empty value on this row (only System_Prompt may be empty).",
        ),
        "unexpected": Reason(
            "Invalid dataset: unexpected column. {column}",
            "Remove the column {column}; only System_Prompt, C_ID, T_ID, Text and Completion are allowed.",
        ),
        "duplicate": Reason(
            "Invalid dataset: duplicate columns. {column}",
            "Keep one column named {column}; names are compared case-insensitively.",
        ),
        "order": Reason(
            "Invalid dataset: column order",
            "Put the columns in this order: System_Prompt, C_ID, T_ID, Text, Completion.",
        ),
        "id": Reason(
            "Invalid dataset: {column}",
            "Number conversations with C_ID 0, 1, 2, ... and the turns of each conversation with T_ID "
            "0, 1, 2, ...; whole numbers only, never empty.",
        ),
        # ours from here on
        "min_rows": Reason(
            "Invalid dataset: too few rows ({rows}). At least {minimum} rows are required",
            "Add rows until the file has at least {minimum} (1,000 to 100,000 are recommended).",
        ),
        "field_count": Reason(
            "Invalid dataset: row has {found} fields, the header has {expected}",
            'Quote every value that contains a comma, quote or line break ("...", with "" for a quote) '
            "so each row has exactly {expected} fields.",
        ),
        "csv": Reason(
            "Invalid dataset: unreadable CSV. {reason}",
            "Save the file with a standard CSV writer (comma separator, double quotes around values "
            "with commas or line breaks).",
        ),
        "not_text": Reason(
            "Invalid dataset: {column} must be text",
            "Write {column} as a string value, not a list, object or boolean.",
        ),
        "line_too_long": Reason(
            "Invalid dataset: line longer than {limit}",
            "Check that the file has line breaks between rows and that every CSV quote is closed.",
        ),
    }
)

# Problems after which nothing more of the file can be checked: reading stops there.
TERMINAL_CODES: frozenset[str] = frozenset(
    {"file.extension", "file.size", "file.encoding", "file.error", "file.noexist"}
)
TERMINAL_FORMAT_RULES: frozenset[str] = frozenset({"line_too_long"})


def format_bytes(count: int) -> str:
    """Render a byte count exactly in the largest unit that divides it ("1 TB", "16 MiB").

    Limits are round numbers chosen by people, so an exact rendering reads best; anything else
    falls back to plain bytes rather than a rounded figure that would misstate the limit.
    Decimal units are tried first, as the service's documentation uses them.
    """
    units = (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3))
    binary = (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))
    for unit, factor in (*units, *binary):
        if count >= factor and count % factor == 0:
            return f"{count // factor} {unit}"
    return f"{count:,} bytes"


def fix_for(code: str, message: str | None = None) -> str:
    """The fix sentence for a ``failureReason`` and, when given, the service's ``message``.

    For ``file.format`` the message tells which of the distinct format rules failed, so the
    more specific fix is returned when the message matches one of them; unknown codes get a
    generic hint rather than an error, because the service may add codes at any time.
    """
    if code == "file.format" and message:
        rule = match_format_rule(message)
        if rule is not None:
            column = _column_from_message(message)
            return FORMAT_MESSAGES[rule].fix.format(column=column or "the column", expected=5, minimum=MIN_ROWS)
    reason = FAILURE_REASONS.get(code)
    if reason is None:
        return f"Unknown failure reason {code!r}: check the task's message in the CLOVA Studio console."
    return reason.fix


def match_format_rule(message: str) -> str | None:
    """Which FORMAT_MESSAGES rule a service ``file.format`` message belongs to, if any."""
    prefixes = (
        ("Invalid json format.", "json"),
        ("Invalid dataset: required field empty.", "required"),
        ("Invalid dataset: unexpected column.", "unexpected"),
        ("Invalid dataset: duplicate columns.", "duplicate"),
        ("Invalid dataset: column order", "order"),
        ("Invalid dataset: too few rows", "min_rows"),
        ("Invalid dataset: row has ", "field_count"),
        ("Invalid dataset: unreadable CSV.", "csv"),
        ("Invalid dataset: line longer than", "line_too_long"),
    )
    for prefix, rule in prefixes:
        if message.startswith(prefix):
            return rule
    if message.endswith(" must be text"):
        return "not_text"
    if message.strip() in ("Invalid dataset: C_ID", "Invalid dataset: T_ID"):
        return "id"
    return None


def _column_from_message(message: str) -> str | None:
    """The column named in a format message such as '... unexpected column. Foo'."""
    if message.endswith(" must be text"):
        return message.removeprefix("Invalid dataset: ").removesuffix(" must be text") or None
    if message.startswith("Invalid dataset: ") and ". " in message:
        return message.rsplit(". ", 1)[1].strip() or None
    if message.strip() in ("Invalid dataset: C_ID", "Invalid dataset: T_ID"):
        return message.strip().rsplit(" ", 1)[1]
    return None
