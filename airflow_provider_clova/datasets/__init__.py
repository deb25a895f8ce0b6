"""CLOVA Studio tuning-dataset rules and a streaming validator (Airflow-free core).

Check a dataset before uploading it, so a tuning task does not wait hours for a GPU only to
fail on ``file.format``::

    from airflow_provider_clova.datasets import validate_path

    report = validate_path("train.jsonl")
    if not report.ok:
        raise SystemExit(report.format())

or from a shell: ``python -m airflow_provider_clova.datasets validate train.jsonl``.
Imports only the standard library, so DAG files and the emulator can use it cheaply.
"""

from __future__ import annotations

from pathlib import Path

from airflow_provider_clova.datasets.report import DatasetProblem, DatasetReport
from airflow_provider_clova.datasets.rules import (
    COLUMNS,
    DEFAULT_MAX_BYTES,
    FAILURE_REASONS,
    FORMAT_MESSAGES,
    MIN_ROWS,
    Reason,
    fix_for,
)
from airflow_provider_clova.datasets.validator import validate_path, validate_stream

#: A valid 100-row tuning dataset that ships with the provider (for first runs and demos).
SAMPLE_DATASET = str(Path(__file__).resolve().parent / "samples" / "tuning_sample.jsonl")

__all__ = [
    "COLUMNS",
    "DEFAULT_MAX_BYTES",
    "FAILURE_REASONS",
    "FORMAT_MESSAGES",
    "MIN_ROWS",
    "SAMPLE_DATASET",
    "DatasetProblem",
    "DatasetReport",
    "Reason",
    "fix_for",
    "validate_path",
    "validate_stream",
]
