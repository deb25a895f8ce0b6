"""``python -m airflow_provider_clova.testing.emulator``: flags in, a configured server out.

Kept apart from the server so tests can check flag parsing without binding a port.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from typing import Any

from airflow_provider_clova.testing.emulator.config import (
    APP_TYPES,
    DOCUMENTED_TUNABLE_MODELS,
    EmulatorConfig,
    EmulatorConfigError,
    default_account,
    load_json_file,
    parse_accounts,
)
from airflow_provider_clova.testing.emulator.faults import parse_spec
from airflow_provider_clova.testing.emulator.server import serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_clova.testing.emulator",
        description="A local CLOVA Studio (HyperCLOVA X) emulator for offline DAG tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one (default 8765)")
    parser.add_argument("--access-key", default="AK", help="default account's NCP access key (default AK)")
    parser.add_argument("--secret-key", default="SK", help="default account's NCP secret key (default SK)")
    parser.add_argument("--api-key", default="KEY", help="default account's Bearer API key (default KEY)")
    parser.add_argument(
        "--api-key-app-type", choices=APP_TYPES, default="test", help="app type of --api-key (default test)"
    )
    parser.add_argument("--accounts", metavar="FILE", help="JSON file with more accounts and their keys")
    parser.add_argument(
        "--object-storage-endpoint", metavar="URL", help="S3-compatible endpoint datasets are read from"
    )
    parser.add_argument(
        "--object-storage-region", default="kr-standard", help="region used to sign Object Storage calls"
    )
    parser.add_argument(
        "--limits", metavar="FILE", help='budget overrides, shape of extra.limits: {"HCX-005": {"qpm": 120}}'
    )
    parser.add_argument(
        "--tunable-models",
        metavar="M1,M2",
        default=",".join(DOCUMENTED_TUNABLE_MODELS),
        help=f"base models the tuning API trains (default {','.join(DOCUMENTED_TUNABLE_MODELS)}, as documented)",
    )
    parser.add_argument("--rate-window-seconds", type=float, default=60.0, help="QPM/TPM window (default 60)")
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="multiplies every emulated duration (0.01 = 100x faster)"
    )
    parser.add_argument("--faults", metavar="FILE", help="JSON fault spec (see docs)")
    parser.add_argument("--seed", type=int, default=0, help="seed for fault RNGs and task ids (default 0)")
    parser.add_argument(
        "--max-dataset-bytes", type=int, help="dataset size limit for file.size (default: the service's)"
    )
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return parser


def _json_arg(value: str | None, flag: str) -> Any:
    """A flag that takes a JSON file, or inline JSON when it starts with '{'."""
    if value is None:
        return None
    if value.lstrip().startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise EmulatorConfigError(f"{flag}: not valid JSON: {exc}") from None
    return load_json_file(value, flag)


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    accounts = [default_account(args.access_key, args.secret_key, args.api_key, args.api_key_app_type)]
    if args.accounts:
        accounts += parse_accounts(load_json_file(args.accounts, "--accounts"))
    return EmulatorConfig(
        accounts=tuple(accounts),
        limits=_json_arg(args.limits, "--limits") or {},
        rate_window_seconds=args.rate_window_seconds,
        time_scale=args.time_scale,
        object_storage_endpoint=args.object_storage_endpoint,
        object_storage_region=args.object_storage_region,
        max_dataset_bytes=args.max_dataset_bytes,
        faults=_json_arg(args.faults, "--faults"),
        seed=args.seed,
        tunable_models=tuple(m.strip() for m in args.tunable_models.split(",") if m.strip()),
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        if config.faults:
            parse_spec(config.faults)
    except EmulatorConfigError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    serve(config, args.host, args.port, log_level=args.log_level)
