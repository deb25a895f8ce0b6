"""The rules table: the service's exact wording, a fix for every failureReason."""

from __future__ import annotations

import pytest

from airflow_provider_clova.datasets import DEFAULT_MAX_BYTES, FAILURE_REASONS, FORMAT_MESSAGES, fix_for
from airflow_provider_clova.datasets.rules import format_bytes, match_format_rule

# The failure table of the API guide (seed 001), message column verbatim.
SERVICE_TABLE = {
    "file.extension": "Unavailable file extension. Please check the file extension again.",
    "file.size": "Exceeded the disk usage limit. Please check if the file size is {limit} or less.",
    "file.encoding": "Unsupported charset",
    "file.error": None,
    "resource.timeout": None,
    "clops.error": None,
    "train.unknown": None,
}
SERVICE_FORMAT_MESSAGES = {
    "json": "Invalid json format. {reason}",
    "required": "Invalid dataset: required field empty. {column}",
    "unexpected": "Invalid dataset: unexpected column. {column}",
    "duplicate": "Invalid dataset: duplicate columns. {column}",
    "order": "Invalid dataset: column order",
    "id": "Invalid dataset: {column}",
}


def test_every_failure_reason_of_the_service_is_covered() -> None:
    assert set(SERVICE_TABLE) | {"file.format", "file.noexist"} == set(FAILURE_REASONS)


@pytest.mark.parametrize("code, message", [(c, m) for c, m in SERVICE_TABLE.items() if m])
def test_service_messages_are_verbatim(code: str, message: str) -> None:
    assert FAILURE_REASONS[code].template == message


@pytest.mark.parametrize("rule, message", SERVICE_FORMAT_MESSAGES.items())
def test_format_messages_are_verbatim(rule: str, message: str) -> None:
    assert FORMAT_MESSAGES[rule].template == message


@pytest.mark.parametrize("code", sorted(FAILURE_REASONS))
def test_each_reason_has_an_actionable_one_sentence_fix(code: str) -> None:
    template, fix = FAILURE_REASONS[code]  # unpacks like a plain (template, fix) tuple
    assert template
    assert fix[0].isupper() and fix.endswith(".")
    assert len(fix) < 200


def test_fix_for_picks_the_specific_format_rule() -> None:
    assert "Remove the column Foo" in fix_for("file.format", "Invalid dataset: unexpected column. Foo")
    assert "order" in fix_for("file.format", "Invalid dataset: column order")
    assert "C_ID 0, 1, 2" in fix_for("file.format", "Invalid dataset: T_ID")
    assert "JSON object" in fix_for("file.format", "Invalid json format. Expecting value: column 1")
    assert fix_for("file.format", "something new") == FAILURE_REASONS["file.format"].fix
    assert fix_for("resource.timeout") == FAILURE_REASONS["resource.timeout"].fix
    assert "Unknown failure reason" in fix_for("gpu.melted")


def test_match_format_rule_for_every_rule() -> None:
    samples = {
        "Invalid json format. Expecting value: column 1": "json",
        "Invalid dataset: required field empty. Text": "required",
        "Invalid dataset: unexpected column. foo": "unexpected",
        "Invalid dataset: duplicate columns. text": "duplicate",
        "Invalid dataset: column order": "order",
        "Invalid dataset: C_ID": "id",
        "Invalid dataset: too few rows (3). At least 100 rows are required": "min_rows",
        "Invalid dataset: Text must be text": "not_text",
    }
    for message, rule in samples.items():
        assert match_format_rule(message) == rule


def test_default_size_limit_is_the_documented_1_tb() -> None:
    assert DEFAULT_MAX_BYTES == 10**12
    assert format_bytes(DEFAULT_MAX_BYTES) == "1 TB"
    assert format_bytes(100 * 10**6) == "100 MB"
    assert format_bytes(1234) == "1,234 bytes"
