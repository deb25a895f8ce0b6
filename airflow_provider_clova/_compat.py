"""The few Airflow 2.11/3 differences ``apache-airflow-providers-common-compat`` has no name for.

Base classes, ``Context``, ``Asset``, ``conf`` and ``mask_secret`` come from
``airflow.providers.common.compat.sdk`` (the convention of the official providers) and the
async connection lookup from ``airflow.providers.common.compat.connection``; this shim only adds
an empty-value guard, the async masker, and the ``default_deferrable`` read.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import conf
from airflow.providers.common.compat.sdk import mask_secret as _mask_secret
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS as AIRFLOW_V_3

__all__ = ["AIRFLOW_V_3", "amask_secret", "default_deferrable", "mask_secret"]


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
        # lazy: exists on Airflow 3 only
        from airflow.sdk.log import amask_secret as _amask

        await _amask(value)
    else:
        mask_secret(value)


def default_deferrable() -> bool:
    """The ``[operators] default_deferrable`` setting, read when an operator is built."""
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))
