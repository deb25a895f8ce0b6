"""Reading request fields with the service's ranges; every failure is 400 ``40001`` naming the field.

The emulator checks every request itself and never trusts that a client validated first, so a
client bug surfaces here the way it would against the real service.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_clova.testing.emulator.envelope import bad_param

_MISSING = object()


def _number(value: Any, *, allow_str: bool) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if allow_str and isinstance(value, str):
        try:
            return float(value.strip().rstrip("fF"))  # the guide's own example writes 1e-5f
        except ValueError:
            return None
    return None


def int_param(
    body: Mapping[str, Any], field: str, lo: int, hi: int, default: int | None, *, allow_str: bool = False
) -> int | None:
    """An integer in ``[lo, hi]``; ``default`` when absent (or null)."""
    value = body.get(field, _MISSING)
    if value is _MISSING or value is None:
        return default
    number = _number(value, allow_str=allow_str)
    if number is None or not math.isfinite(number) or number != int(number) or not lo <= number <= hi:
        raise bad_param(field, f"must be an integer from {lo} to {hi}", value)
    return int(number)


def float_param(
    body: Mapping[str, Any],
    field: str,
    lo: float,
    hi: float,
    default: float | None,
    *,
    lo_open: bool = False,
    allow_str: bool = False,
) -> float | None:
    """A number in ``[lo, hi]`` (or ``(lo, hi]`` when ``lo_open``)."""
    value = body.get(field, _MISSING)
    if value is _MISSING or value is None:
        return default
    number = _number(value, allow_str=allow_str)
    low_ok = number is not None and (number > lo if lo_open else number >= lo)
    if number is None or not math.isfinite(number) or not low_ok or number > hi:
        low = f"greater than {lo:g}" if lo_open else f"at least {lo:g}"
        raise bad_param(field, f"must be a number {low} and at most {hi:g}", value)
    return number


def enum_param(body: Mapping[str, Any], field: str, allowed: Sequence[str], default: str | None) -> str | None:
    value = body.get(field, _MISSING)
    if value is _MISSING or value is None:
        return default
    if value not in allowed:
        raise bad_param(field, f"must be one of {', '.join(allowed)}", value)
    return str(value)


def str_param(body: Mapping[str, Any], field: str, *, required: bool = False) -> str | None:
    value = body.get(field)
    if value is None:
        if required:
            raise bad_param(field, "is required")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise bad_param(field, "must be a non-empty string")
    return value


def bool_param(body: Mapping[str, Any], field: str, default: bool) -> bool:
    value = body.get(field, _MISSING)
    if value is _MISSING or value is None:
        return default
    if not isinstance(value, bool):
        raise bad_param(field, "must be true or false", value)
    return value


def str_list_param(body: Mapping[str, Any], field: str) -> list[str]:
    value = body.get(field, _MISSING)
    if value is _MISSING or value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise bad_param(field, "must be a list of strings")
    return list(value)
