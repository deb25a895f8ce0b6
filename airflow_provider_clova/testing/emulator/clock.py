"""Time as CLOVA Studio shows it: Korea Standard Time, ISO 8601 with a ``+0900`` offset.

The service writes ``2023-08-21T13:07:06+0900`` (no colon in the offset, no fraction) and names
a task after its creation time (``230821-130704``) when no name is given.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

KST = timezone(timedelta(hours=9))


def iso_kst(epoch_seconds: float) -> str:
    """``2023-08-21T13:07:06+0900``."""
    return datetime.fromtimestamp(epoch_seconds, KST).strftime("%Y-%m-%dT%H:%M:%S%z")


def default_task_name(epoch_seconds: float) -> str:
    """``230821-130704``: the name the service gives a task created without one."""
    return datetime.fromtimestamp(epoch_seconds, KST).strftime("%y%m%d-%H%M%S")
