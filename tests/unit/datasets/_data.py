"""Builders for dataset files used across the dataset tests."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

COLUMNS = ("System_Prompt", "C_ID", "T_ID", "Text", "Completion")


def make_rows(conversations: int = 40, turns: Sequence[int] = (1, 2, 3, 4)) -> list[dict[str, object]]:
    """Valid rows: conversation i has turns[i % len(turns)] turns."""
    rows: list[dict[str, object]] = []
    for c_id in range(conversations):
        for t_id in range(turns[c_id % len(turns)]):
            rows.append(
                {
                    "System_Prompt": "You are a support agent." if c_id % 2 else "",
                    "C_ID": c_id,
                    "T_ID": t_id,
                    "Text": f"Question {c_id}.{t_id}?",
                    "Completion": f"Answer {c_id}.{t_id}.",
                }
            )
    return rows


def jsonl_text(rows: Iterable[dict[str, object]], *, ensure_ascii: bool = False) -> str:
    return "".join(json.dumps(row, ensure_ascii=ensure_ascii) + "\n" for row in rows)


def csv_text(
    rows: Iterable[Sequence[object] | dict[str, object]],
    *,
    header: Sequence[str] = COLUMNS,
    lineterminator: str = "\r\n",
) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=lineterminator)
    writer.writerow(header)
    for row in rows:
        writer.writerow(list(row.values()) if isinstance(row, dict) else row)
    return out.getvalue()


def write(path: Path, text: str | bytes, *, bom: bool = False) -> Path:
    data = text.encode("utf-8") if isinstance(text, str) else text
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def with_row(rows: list[dict[str, object]], index: int, **changes: object) -> list[dict[str, object]]:
    """A copy of rows with row ``index`` (0-based) changed."""
    out = [dict(row) for row in rows]
    out[index].update(changes)
    return out
