"""Airflow pools that split each model's QPM/TPM budget between the tasks running at once.

The limiter paces one process. Several tasks calling the same model at the same time are
several processes (often on several workers), so they need a split that does not depend on
talking to each other: one Airflow pool per (base model, app type), and each running task
paces at ``budget x pool_slots / pool size``. The scheduler never runs more tasks than the
pool has slots, so the shares of the running tasks add up to at most the whole budget.

On Airflow 3 a task cannot read its pool's size from the metadata database, so the size is
not looked up but *recomputed*: :func:`pool_size` is a deterministic function of the limits
table, the connection's ``extra.limits`` and ``extra.pool_slots``, and the pools are created
from the same function (``python -m airflow_provider_clova.pools sync``). Change the size by
changing ``extra.pool_slots`` and syncing again, not in the UI.

Deferred tasks do not hold slots (``include_deferred: false``): a task deferred to the
triggerer (waiting for a tuning job, which can take hours) sends no chat request, so holding
a share of the chat budget for it would only idle that share. When it resumes it takes a slot
again before it can run.

Airflow is imported lazily, inside the functions that need it: this module is imported by
DAG files and by the core's users, and the pool specs are plain data.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_clova.client.errors import ClovaStudioConfigError
from airflow_provider_clova.client.limits import (
    APP_TYPES,
    DEFAULT_ROW,
    AppType,
    lookup_budget,
    table_models,
    validate_overrides,
)

if TYPE_CHECKING:
    from airflow_provider_clova.client.config import ClientConfig

#: Pool size when the connection sets no ``extra.pool_slots``: up to four tasks per model
#: run at once, each pacing at a quarter of the budget. Chat latency (seconds per call)
#: makes a few concurrent tasks worthwhile, while a quarter of the budget still fits
#: ordinary requests (HCX-005 test: 15,000 TPM per slot). A task that needs bigger requests
#: takes more slots (``pool_slots``).
DEFAULT_POOL_SLOTS = 4
#: Prefix of every pool name.
POOL_PREFIX = "clova"
#: Deferred tasks send no chat requests, so they must not hold a share of the budget.
INCLUDE_DEFERRED = False


def pool_name(model: str, app_type: AppType = "test") -> str:
    """The pool for ``model`` (a *base* model: a tuned task is charged as its base).

    ``pool_name("HCX-005", "test") == "clova_hcx_005_test"``.
    """
    _check_app_type(app_type)
    if not model:
        raise ClovaStudioConfigError("model must be a non-empty string")
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")
    return f"{POOL_PREFIX}_{slug}_{app_type}"


def _check_app_type(app_type: str) -> None:
    if app_type not in APP_TYPES:
        raise ClovaStudioConfigError(f"app_type must be 'test' or 'service', got {app_type!r}")


def _check_slots(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ClovaStudioConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def pool_size(
    model: str,
    app_type: AppType = "test",
    overrides: Mapping[str, Mapping[str, int]] | None = None,
    slots: int | None = None,
) -> int:
    """Slots of the pool for ``model``: ``slots`` (the connection's ``extra.pool_slots``) or
    :data:`DEFAULT_POOL_SLOTS`, never more than the model's QPM (a slot must be entitled to
    at least one request per minute)."""
    wanted = DEFAULT_POOL_SLOTS if slots is None else _check_slots("extra.pool_slots", slots)
    budget = lookup_budget(model, app_type, overrides)
    return max(1, min(wanted, budget.qpm))


def share_for_pool(
    model: str,
    app_type: AppType = "test",
    pool_slots: int = 1,
    overrides: Mapping[str, Mapping[str, int]] | None = None,
    *,
    slots: int | None = None,
) -> float:
    """The share of the budget a task occupying ``pool_slots`` of the model's pool may pace at.

    Recomputed from the same inputs the pool was created from (see the module docstring);
    pass the result as ``share`` to the limiter.
    """
    taken = _check_slots("pool_slots", pool_slots)
    return min(1.0, taken / pool_size(model, app_type, overrides, slots))


def pool_rate_share(model: str, config: ClientConfig, pool: str | None, pool_slots: int = 1) -> float:
    """The budget share of a task in ``pool`` taking ``pool_slots`` that calls ``model`` (a base model).

    ``pool_slots / pool size`` when ``pool`` is the model's CLOVA pool (:func:`pool_name`),
    else 1.0 (the task is trusted to be the only caller). The size is recomputed from the
    connection (``extra.limits``, ``extra.pool_slots``) exactly as ``sync`` created the pool.
    """
    if not pool or pool != pool_name(model, config.app_type):
        return 1.0
    return share_for_pool(model, config.app_type, int(pool_slots or 1), config.limits, slots=config.pool_slots)


def _models(models: Sequence[str] | None, overrides: Mapping[str, Any] | None) -> list[str]:
    if models is not None:
        return list(dict.fromkeys(models))
    names = table_models()
    for name in overrides or {}:
        if name != DEFAULT_ROW and name.upper() not in {known.upper() for known in names}:
            names.append(name)
    return names


def pool_specs(
    app_type: AppType = "test",
    overrides: Mapping[str, Mapping[str, int]] | None = None,
    slots: int | None = None,
    models: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Pool definitions in the JSON shape ``airflow pools import`` reads (2.11 and 3.x).

    ``{"clova_hcx_005_test": {"slots": 4, "description": "...", "include_deferred": false}}``.
    ``models`` defaults to the current models of the limits table plus any named in
    ``overrides``.
    """
    _check_app_type(app_type)
    if overrides is not None:
        validate_overrides(overrides)
    specs: dict[str, dict[str, Any]] = {}
    for model in _models(models, overrides):
        budget = lookup_budget(model, app_type, overrides)
        size = pool_size(model, app_type, overrides, slots)
        specs[pool_name(model, app_type)] = {
            "slots": size,
            "description": (
                f"CLOVA Studio {model} ({app_type} app): {budget.qpm} QPM / {budget.tpm} TPM; each slot "
                f"paces at 1/{size} of it. Managed by airflow-provider-clova: change the size with the "
                "connection's extra.pool_slots and re-run 'python -m airflow_provider_clova.pools sync'."
            ),
            "include_deferred": INCLUDE_DEFERRED,
        }
    return specs


def connection_settings(conn_id: str) -> dict[str, Any]:
    """``app_type``, ``limits`` and ``pool_slots`` from an Airflow connection's extra.

    Imports Airflow lazily; meant for the command line, where the connection may live in
    the metadata database, an environment variable or a secrets backend.
    """
    # lazy: the command-line path only; the ORM model loads Airflow's metadata layer
    try:
        from airflow.models.connection import Connection

        read: Any = Connection.get_connection_from_secrets
    except ImportError:  # pragma: no cover - a Task SDK-only install
        from airflow.sdk import BaseHook

        read = BaseHook.get_connection
    try:
        conn: Any = read(conn_id)
    except ImportError:
        raise
    except Exception as err:  # AirflowNotFoundException and secrets-backend failures
        raise ClovaStudioConfigError(f"cannot read connection {conn_id!r}: {err}") from None
    extra = conn.extra_dejson or {}
    settings: dict[str, Any] = {}
    if extra.get("app_type") is not None:
        settings["app_type"] = extra["app_type"]
    limits = extra.get("limits")
    if isinstance(limits, str) and limits.strip():
        try:
            limits = json.loads(limits)
        except ValueError as err:
            raise ClovaStudioConfigError(f"connection {conn_id!r}: extra.limits is not JSON: {err}") from None
    if limits:
        validate_overrides(limits)
        settings["limits"] = limits
    if extra.get("pool_slots") is not None:
        settings["pool_slots"] = _check_slots(f"connection {conn_id!r} extra.pool_slots", extra["pool_slots"])
    return settings


def sync_pools(
    app_type: AppType = "test",
    overrides: Mapping[str, Mapping[str, int]] | None = None,
    slots: int | None = None,
    models: Sequence[str] | None = None,
    *,
    airflow_command: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Create or update the pools through Airflow's own ``airflow pools import``.

    The CLI is the one interface that creates pools the same way on Airflow 2.11 and 3.x
    (it updates an existing pool of the same name in place). ``airflow_command`` defaults to
    this interpreter's ``python -m airflow``. Returns the specs it imported.
    """
    specs = pool_specs(app_type, overrides, slots, models)
    command = list(airflow_command) if airflow_command else [sys.executable, "-m", "airflow"]
    with tempfile.TemporaryDirectory(prefix="clova-pools-") as tmp:
        path = os.path.join(tmp, "pools.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(specs, handle, indent=2, sort_keys=True)
        done = subprocess.run(
            [*command, "pools", "import", path],
            capture_output=True,
            text=True,
            env=dict(env) if env is not None else None,
            check=False,
        )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"'airflow pools import' failed with exit code {done.returncode}: " + " | ".join(tail))
    return specs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_clova.pools",
        description="Airflow pools that split CLOVA Studio QPM/TPM budgets between running tasks.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("export", "print the pools as JSON for 'airflow pools import'"),
        ("sync", "create or update the pools with 'airflow pools import'"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("--app-type", choices=APP_TYPES, help="default: the connection's, else test")
        sub.add_argument("--conn-id", help="read extra.app_type, extra.limits and extra.pool_slots from it")
        sub.add_argument("--slots", type=int, help=f"pool size (default: extra.pool_slots, else {DEFAULT_POOL_SLOTS})")
        sub.add_argument("--model", action="append", dest="models", help="only this base model (repeatable)")
        sub.add_argument("--limits", help='JSON like extra.limits: {"HCX-005": {"qpm": 120}}')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``export`` prints the pool JSON, ``sync`` imports it into Airflow."""
    args = _parser().parse_args(argv)
    try:
        settings = connection_settings(args.conn_id) if args.conn_id else {}
        app_type = cast("AppType", args.app_type or settings.get("app_type") or "test")
        overrides = json.loads(args.limits) if args.limits else settings.get("limits")
        slots = args.slots if args.slots is not None else settings.get("pool_slots")
        if args.command == "export":
            specs = pool_specs(app_type, overrides, slots, args.models)
            print(json.dumps(specs, indent=2, sort_keys=True))
        else:
            specs = sync_pools(app_type, overrides, slots, args.models)
            for name, spec in sorted(specs.items()):
                print(f"{name}: {spec['slots']} slots")
    except (ClovaStudioConfigError, RuntimeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
