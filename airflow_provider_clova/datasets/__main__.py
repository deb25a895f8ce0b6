"""Command line: ``python -m airflow_provider_clova.datasets validate FILE``.

Exit status: 0 when the dataset is valid (the summary is printed), 1 when it is not (one
problem a line, code first, then the summary), 2 for a usage error or a file that cannot be
read at all (message on stderr). Scripts and CI can branch on it without parsing output.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from airflow_provider_clova.datasets.rules import DEFAULT_MAX_BYTES, format_bytes
from airflow_provider_clova.datasets.validator import validate_path

EXIT_VALID, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
# Codes meaning the file itself could not be read here, as opposed to a dataset that is wrong.
_UNREADABLE = frozenset({"file.noexist", "file.error"})

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(text: str) -> int:
    """A byte count such as ``1000000``, ``100MB`` or ``1GiB`` (KB/MB/GB/TB are decimal)."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 100000000, 100MB or 1GiB)")
    return int(match.group(1)) * _UNITS[unit]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_clova.datasets",
        description="Check a CLOVA Studio tuning dataset (.jsonl or .csv) before uploading it.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    validate = commands.add_parser(
        "validate",
        help="validate one dataset file",
        description="Validate a dataset file. Exit 0 if valid, 1 if invalid, 2 if it cannot be read.",
    )
    validate.add_argument("file", metavar="FILE", help="the .jsonl or .csv dataset file")
    validate.add_argument(
        "--max-errors",
        type=_positive_int,
        default=20,
        metavar="N",
        help="stop after N problems (default: 20)",
    )
    validate.add_argument(
        "--max-bytes",
        type=parse_size,
        default=None,
        metavar="N",
        help=f"size limit in bytes, e.g. 100MB (default: {format_bytes(DEFAULT_MAX_BYTES)}, the service's)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    report = validate_path(args.file, max_errors=args.max_errors, max_bytes=args.max_bytes)
    first = report.first_failure()
    if first is not None and first.code in _UNREADABLE:
        print(f"error: cannot read {args.file}: {first.message}. {first.fix}", file=sys.stderr)
        return EXIT_USAGE
    print(report.format())
    return EXIT_VALID if report.ok else EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
