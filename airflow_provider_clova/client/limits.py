"""Per-model QPM/TPM budgets: the packaged limits table plus a connection's overrides.

The figures are data (``data/limits.json``), not constants, because NAVER changes them and
because an account may be granted more than the published figures: a user fixes a stale
figure with the connection's ``extra.limits`` instead of waiting for a release.

The table keeps every publication as its own dated section, newest first, verbatim, so a
reader can check each number against its source. The rules that turn published figures into
the budget one connection may spend live here, in one place:

* test app: the newest published test figure for the model;
* service app: published service maxima *include* the test app's share (seed 002), so a
  service app gets ``service - test`` of the same publication; where no service figure was
  ever published for a model, its test figure (the published rows all have
  ``service - test >= test``, so this never claims more than a service app gets);
* a model in no section: the newest ``default`` row (the seed's "other models", also the
  floor of every published figure, so an unknown new model is never over-driven);
* a tuned task is charged as its base model: callers look up the base model.

``extra.limits`` entries are taken as the connection's budget as is, with no subtraction:
they are what the user read in their console for the app type the connection uses.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Literal, cast

from airflow_provider_clova.client.errors import ClovaStudioConfigError

AppType = Literal["test", "service"]
APP_TYPES: tuple[AppType, ...] = ("test", "service")

#: Key of ``extra.limits`` (and of a table section) that stands for "any other model".
DEFAULT_ROW = "default"
_FIELDS = ("qpm", "tpm")
#: ``floor(x + CAP_EPS)``: x = budget x share is exact up to float rounding for share = k / n,
#: so 60 x (1/3) x 3 counts as 60, not 59.
CAP_EPS = 1e-9


@dataclass(frozen=True)
class Budget:
    """What one caller may spend per window: requests (``qpm``) and tokens (``tpm``)."""

    qpm: int
    tpm: int

    def __post_init__(self) -> None:
        for field in _FIELDS:
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ClovaStudioConfigError(f"Budget.{field} must be a positive integer, got {value!r}")

    def request_ceiling(self, share: float = 1.0) -> int:
        """Whole requests per window at ``share`` of the budget (may be 0 for a tiny share)."""
        return math.floor(self.qpm * share + CAP_EPS)

    def token_ceiling(self, share: float = 1.0) -> int:
        """Tokens per window at ``share`` of the budget: the most one request may ever cost."""
        return math.floor(self.tpm * share + CAP_EPS)


@lru_cache(maxsize=1)
def _load_table() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("data/limits.json").read_text("utf-8")
    table = cast("dict[str, Any]", json.loads(text))
    _check_table(table)
    return table


def _check_table(table: Mapping[str, Any]) -> None:
    """Fail loudly on a malformed packaged table rather than pace against nonsense."""
    sections = table.get("sections")
    if not isinstance(sections, list) or not sections:
        raise ClovaStudioConfigError("limits.json: 'sections' must be a non-empty list")
    has_default = False
    for section in sections:
        rows = dict(section.get("models", {}))
        if DEFAULT_ROW in section:
            has_default = True
            rows[DEFAULT_ROW] = section[DEFAULT_ROW]
        for model, row in rows.items():
            for app_type, figures in row.items():
                if app_type not in APP_TYPES:
                    raise ClovaStudioConfigError(f"limits.json {section['as_of']} {model}: app type {app_type}")
                Budget(qpm=figures["qpm"], tpm=figures["tpm"])
            if section.get("service_includes_test") and "service" in row:
                if "test" not in row:
                    raise ClovaStudioConfigError(
                        f"limits.json {section['as_of']} {model}: a service figure that includes the test "
                        "share needs the test figure of the same publication"
                    )
                test, service = row["test"], row["service"]
                if service["qpm"] <= test["qpm"] or service["tpm"] <= test["tpm"]:
                    raise ClovaStudioConfigError(
                        f"limits.json {section['as_of']} {model}: service figures must exceed the test "
                        "figures they include"
                    )
    if not has_default:
        raise ClovaStudioConfigError("limits.json: no section has a 'default' row")
    for section in sections:
        if DEFAULT_ROW in section:
            if set(section[DEFAULT_ROW]) != set(APP_TYPES):
                raise ClovaStudioConfigError("limits.json: the newest 'default' row needs test and service")
            break


def limits_table() -> dict[str, Any]:
    """The packaged table as parsed JSON (a copy: callers may not change the shared one).

    For docs, the pools command and the emulator. Budgets should come from
    :func:`lookup_budget`, which applies the table's rules.
    """
    return copy.deepcopy(_load_table())


def table_models() -> list[str]:
    """Models with a row in the newest section: the current models, for pools and docs."""
    return list(_load_table()["sections"][0]["models"])


def _find_row(model: str) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(section, row) for every section that lists ``model``, newest first."""
    wanted = model.upper()
    found = []
    for section in _load_table()["sections"]:
        for name, row in section["models"].items():
            if name.upper() == wanted:
                found.append((section, row))
    return found


def _default_row() -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    for section in _load_table()["sections"]:
        if DEFAULT_ROW in section:
            return section, section[DEFAULT_ROW]
    raise AssertionError("checked at load")  # pragma: no cover


def _service_budget(row: Mapping[str, Any], section: Mapping[str, Any]) -> Budget:
    service = row["service"]
    if section.get("service_includes_test"):
        test = row["test"]
        return Budget(qpm=service["qpm"] - test["qpm"], tpm=service["tpm"] - test["tpm"])
    return Budget(qpm=service["qpm"], tpm=service["tpm"])


def table_budget(model: str, app_type: AppType = "test") -> Budget:
    """The packaged table's budget for ``model`` and ``app_type``, before any override."""
    if app_type not in APP_TYPES:
        raise ClovaStudioConfigError(f"app_type must be 'test' or 'service', got {app_type!r}")
    rows = _find_row(model) if model.lower() != DEFAULT_ROW else []
    rows.append(_default_row())
    test_row = next(row["test"] for _, row in rows if "test" in row)
    test = Budget(qpm=test_row["qpm"], tpm=test_row["tpm"])
    if app_type == "test":
        return test
    for section, row in rows[:-1]:
        if "service" in row:
            return _service_budget(row, section)
    if len(rows) == 1:  # not in the table: the default row's service figure
        section, row = rows[0]
        return _service_budget(row, section)
    return test


def _override_for(model: str, overrides: Mapping[str, Mapping[str, int]]) -> Mapping[str, Any] | None:
    """The override entry for ``model`` (exact name, then case-insensitive, then 'default')."""
    if model in overrides:
        return overrides[model]
    for name, entry in overrides.items():
        if name.upper() == model.upper():
            return entry
    if not _find_row(model):
        return overrides.get(DEFAULT_ROW)
    return None


def validate_overrides(overrides: object) -> None:
    """Check the shape of ``extra.limits``; raise naming the model and field at fault.

    Every entry is checked, not only the one in use, so a typo in another model's entry
    fails the first task that reads the connection rather than a later one.
    """
    if not isinstance(overrides, Mapping):
        raise ClovaStudioConfigError(
            'extra.limits must be an object like {"HCX-005": {"qpm": 120, "tpm": 90000}}, '
            f"got {type(overrides).__name__}"
        )
    for model, entry in overrides.items():
        if not isinstance(model, str) or not model:
            raise ClovaStudioConfigError(f"extra.limits: model names must be non-empty strings, got {model!r}")
        if not isinstance(entry, Mapping):
            raise ClovaStudioConfigError(
                f'extra.limits["{model}"] must be an object with "qpm" and/or "tpm", got {entry!r}'
            )
        unknown = sorted(str(key) for key in entry if key not in _FIELDS)
        if unknown:
            raise ClovaStudioConfigError(
                f'extra.limits["{model}"]: unknown field(s) {", ".join(unknown)}; only "qpm" and "tpm" '
                "are allowed (the connection's app_type selects test or service)"
            )
        for field in _FIELDS:
            if field not in entry:
                continue
            value = entry[field]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ClovaStudioConfigError(
                    f'extra.limits["{model}"].{field} must be a positive integer, got {value!r}'
                )


def lookup_budget(
    model: str,
    app_type: AppType = "test",
    overrides: Mapping[str, Mapping[str, int]] | None = None,
) -> Budget:
    """The QPM/TPM budget one connection may spend on ``model`` (a base model name).

    ``overrides`` has the shape of the connection's ``extra.limits``; an entry may give only
    ``qpm`` or only ``tpm`` and the other comes from the table. Unknown models fall back to
    the default row (or the override named ``default``). A bad override raises
    :class:`ClovaStudioConfigError` naming the model and the field.
    """
    if not isinstance(model, str) or not model:
        raise ClovaStudioConfigError(f"model must be a non-empty string, got {model!r}")
    base = table_budget(model, app_type)
    if not overrides:
        if overrides is not None:
            validate_overrides(overrides)
        return base
    validate_overrides(overrides)
    entry = _override_for(model, overrides)
    if entry is None:
        return base
    return Budget(qpm=int(entry.get("qpm", base.qpm)), tpm=int(entry.get("tpm", base.tpm)))
