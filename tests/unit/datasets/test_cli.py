"""The command line, run as users run it: exit codes and where the text goes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_clova.datasets.__main__ import main, parse_size

from ._data import jsonl_text, make_rows, with_row, write


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_provider_clova.datasets", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_valid_exits_0_with_the_summary(tmp_path: Path) -> None:
    path = write(tmp_path / "ok.jsonl", jsonl_text(make_rows()))
    result = run("validate", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("summary: valid; 100 rows, 40 conversations")
    assert result.stderr == ""


def test_invalid_exits_1_with_problems_code_first(tmp_path: Path) -> None:
    rows = with_row(with_row(make_rows(), 3, Text=""), 8, T_ID=9)
    path = write(tmp_path / "bad.jsonl", jsonl_text(rows))
    result = run("validate", str(path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("file.format line 4 row 4 column Text: Invalid dataset: required field empty. Text.")
    assert lines[1].startswith("file.format line 9 row 9 column T_ID: Invalid dataset: T_ID. Fix: ")
    assert lines[2].startswith("summary: INVALID (2 problems)")


def test_max_errors_option(tmp_path: Path) -> None:
    rows = [dict(row, Text="") for row in make_rows()]
    path = write(tmp_path / "bad.jsonl", jsonl_text(rows))
    result = run("validate", str(path), "--max-errors", "3")
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 4
    assert "stopped early" in result.stdout


def test_max_bytes_option(tmp_path: Path) -> None:
    path = write(tmp_path / "ok.jsonl", jsonl_text(make_rows()))
    result = run("validate", str(path), "--max-bytes", "1KB")
    assert result.returncode == 1
    assert result.stdout.startswith(
        "file.size: Exceeded the disk usage limit. Please check if the file size is 1 KB or less."
    )


def test_missing_file_exits_2_on_stderr(tmp_path: Path) -> None:
    result = run("validate", str(tmp_path / "nope.jsonl"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "cannot read" in result.stderr and "nope.jsonl" in result.stderr


def test_directory_exits_2(tmp_path: Path) -> None:
    (tmp_path / "d.csv").mkdir()
    result = run("validate", str(tmp_path / "d.csv"))
    assert result.returncode == 2
    assert "cannot read" in result.stderr


@pytest.mark.parametrize(
    "args",
    [(), ("validate",), ("frobnicate", "x.jsonl"), ("validate", "x.jsonl", "--max-errors", "0")],
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_main_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "ok.jsonl", jsonl_text(make_rows()))
    assert main(["validate", str(path)]) == 0
    assert "valid" in capsys.readouterr().out


@pytest.mark.parametrize(
    "text, expected",
    [("100", 100), ("100MB", 100_000_000), ("1 GiB", 2**30), ("2tb", 2 * 10**12), ("5kb", 5000)],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "1.5MB", "-3", "10 parsecs"])
def test_parse_size_rejects(text: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        parse_size(text)
