"""The README's troubleshooting table covers every code the errors module has a fix for."""

from __future__ import annotations

import re
from pathlib import Path

from airflow_provider_clova.client.errors import CODE_HINTS
from airflow_provider_clova.datasets import FAILURE_REASONS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def test_every_error_code_is_in_the_troubleshooting_table() -> None:
    table = _section("Troubleshooting by error code")
    listed = set(re.findall(r"\b\d{3,5}\b", table))
    assert set(CODE_HINTS) - listed == set()


def test_every_failure_reason_is_in_the_datasets_table() -> None:
    table = _section("Tuning datasets")
    assert {code for code in FAILURE_REASONS if f"`{code}`" not in table} == set()
