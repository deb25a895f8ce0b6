"""Airflow 3 (``airflow.sdk``) names with fallbacks for Airflow 2.11, in one place.

Everything in the Airflow layer imports base classes from here, so supporting a new Airflow
major means editing this file only.
"""

from __future__ import annotations

from typing import Any

from airflow import __version__ as AIRFLOW_VERSION

AIRFLOW_V_3 = int(AIRFLOW_VERSION.split(".")[0]) >= 3

if AIRFLOW_V_3:
    from airflow.sdk import (
        Asset,
        BaseHook,
        BaseOperator,
        BaseOperatorLink,
        BaseSensorOperator,
        Context,
    )
    from airflow.sdk.log import mask_secret as _mask_secret
else:  # Airflow 2.11
    from airflow.datasets import Dataset as Asset  # type: ignore[no-redef,attr-defined,unused-ignore]  # noqa: F401
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined,unused-ignore]
    from airflow.models import BaseOperator  # type: ignore[no-redef,attr-defined,unused-ignore]  # noqa: F401
    from airflow.models.baseoperatorlink import BaseOperatorLink  # type: ignore[no-redef,attr-defined,unused-ignore]  # noqa: F401
    from airflow.sensors.base import BaseSensorOperator  # type: ignore[no-redef,attr-defined,unused-ignore]  # noqa: F401
    from airflow.utils.context import Context  # type: ignore[no-redef,attr-defined,unused-ignore]  # noqa: F401
    from airflow.utils.log.secrets_masker import mask_secret as _mask_secret  # type: ignore[no-redef,attr-defined,unused-ignore]


def mask_secret(value: Any) -> None:
    """Register a value with Airflow's log masker (no-op for empty values)."""
    if value:
        _mask_secret(value)


async def amask_secret(value: Any) -> None:
    """``mask_secret`` for the event loop: on Airflow 3 it tells the supervisor with ``asend``,
    so a trigger never blocks (or deadlocks) the triggerer's loop on a sync message."""
    if not value:
        return
    if AIRFLOW_V_3:
        from airflow.sdk.log import amask_secret as _amask

        await _amask(value)
    else:
        _mask_secret(value)


async def aget_connection(conn_id: str) -> Any:
    """Fetch a connection without blocking the event loop (``aget_connection`` on Airflow 3)."""
    if AIRFLOW_V_3:
        return await BaseHook.aget_connection(conn_id)
    from asgiref.sync import sync_to_async

    return await sync_to_async(BaseHook.get_connection)(conn_id)


def default_deferrable() -> bool:
    """The ``[operators] default_deferrable`` setting, read when an operator is built."""
    from airflow.configuration import conf

    return conf.getboolean("operators", "default_deferrable", fallback=False)
