"""The packaged sample dataset used by the demo and the integration tests."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from airflow_provider_clova.datasets import validate_path

SAMPLE = Path(str(resources.files("airflow_provider_clova.datasets") / "samples" / "tuning_sample.jsonl"))


def test_sample_is_valid() -> None:
    report = validate_path(SAMPLE)
    assert report.ok, report.format()
    assert 100 <= report.rows <= 150
    assert 30 <= report.conversations <= 60


def test_sample_is_small() -> None:
    assert SAMPLE.stat().st_size < 60_000


def test_sample_conversations_open_with_a_question_and_have_1_to_4_turns() -> None:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    turns: dict[int, int] = {}
    for row in rows:
        turns[row["C_ID"]] = turns.get(row["C_ID"], 0) + 1
        if row["T_ID"] == 0:
            assert row["Text"].rstrip().endswith("?"), row["Text"]
    assert set(turns.values()) <= {1, 2, 3, 4}
    assert len(set(turns.values())) == 4


def test_sample_mixes_korean_and_english() -> None:
    texts = [json.loads(line)["Text"] for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    korean = sum(any("\uac00" <= ch <= "\ud7a3" for ch in text) for text in texts)
    assert 0.3 < korean / len(texts) < 0.7
