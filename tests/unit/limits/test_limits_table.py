"""The packaged limits table, its rules, and the connection's overrides."""

from __future__ import annotations

import pytest

from airflow_provider_clova.client.catalog import known_models, tunable_models
from airflow_provider_clova.client.errors import ClovaStudioConfigError
from airflow_provider_clova.client.limits import Budget, limits_table, lookup_budget, table_models


@pytest.mark.parametrize(
    ("model", "qpm", "tpm"),
    [
        ("HCX-007", 60, 60_000),
        ("HCX-005", 60, 60_000),
        ("HCX-DASH-002", 90, 80_000),
        ("HCX-003", 200, 30_000),
        ("HCX-DASH-001", 200, 30_000),
        ("LK-D2", 60, 10_000),
        ("LK-B", 60, 10_000),
    ],
)
def test_published_test_figures(model: str, qpm: int, tpm: int) -> None:
    assert lookup_budget(model) == Budget(qpm=qpm, tpm=tpm)
    assert lookup_budget(model, "test") == Budget(qpm=qpm, tpm=tpm)


@pytest.mark.parametrize(
    ("model", "qpm", "tpm"),
    [
        # published service maxima include the test share: service alone gets service - test
        ("HCX-003", 240 - 60, 50_000 - 10_000),
        ("LK-D2", 420 - 60, 60_000 - 10_000),
        ("LK-B", 360 - 60, 60_000 - 10_000),
        # no service figure published: the model's test figure
        ("HCX-005", 60, 60_000),
        ("HCX-007", 60, 60_000),
        ("HCX-DASH-002", 90, 80_000),
        ("HCX-DASH-001", 200, 30_000),
        # unknown model: the 'other models' row, service - test
        ("HCX-999", 240 - 60, 30_000 - 10_000),
    ],
)
def test_service_figures(model: str, qpm: int, tpm: int) -> None:
    assert lookup_budget(model, "service") == Budget(qpm=qpm, tpm=tpm)


def test_unknown_models_take_the_default_row_which_is_the_floor() -> None:
    assert lookup_budget("HCX-NEW") == Budget(qpm=60, tpm=10_000)
    published = [lookup_budget(model) for model in table_models()]
    assert all(budget.qpm >= 60 and budget.tpm >= 10_000 for budget in published)


def test_names_match_case_insensitively() -> None:
    assert lookup_budget("hcx-dash-002") == lookup_budget("HCX-DASH-002")


def test_the_table_keeps_both_publications_with_their_dates() -> None:
    table = limits_table()
    dates = [section["as_of"] for section in table["sections"]]
    assert dates == ["2025-07-17", "2024-03-21"]
    seed = table["sections"][1]
    assert set(seed["models"]) == {"HCX-003", "LK-D2", "LK-B"}
    assert seed["default"] == {"test": {"qpm": 60, "tpm": 10_000}, "service": {"qpm": 240, "tpm": 30_000}}
    # a copy: callers cannot change the shared table
    table["sections"].clear()
    assert limits_table()["sections"]


def test_every_catalog_model_has_a_current_row() -> None:
    assert set(known_models()) <= set(table_models())
    # tuned tasks are charged as their base model, so every tunable base model must have one
    assert set(tunable_models()) <= set(table_models())


def test_overrides_replace_the_fields_they_give() -> None:
    overrides = {"HCX-005": {"qpm": 120, "tpm": 90_000}, "HCX-003": {"tpm": 1_000}, "HCX-DASH-002": {"qpm": 5}}
    assert lookup_budget("HCX-005", overrides=overrides) == Budget(qpm=120, tpm=90_000)
    assert lookup_budget("HCX-003", overrides=overrides) == Budget(qpm=200, tpm=1_000)
    assert lookup_budget("HCX-DASH-002", overrides=overrides) == Budget(qpm=5, tpm=80_000)
    assert lookup_budget("HCX-007", overrides=overrides) == Budget(qpm=60, tpm=60_000)
    # as is for a service connection too: no service - test subtraction on overrides
    assert lookup_budget("HCX-003", "service", {"HCX-003": {"qpm": 300}}) == Budget(qpm=300, tpm=40_000)
    assert lookup_budget("hcx-005", overrides={"HCX-005": {"qpm": 7}}).qpm == 7
    assert lookup_budget("HCX-005", overrides={"hcx-005": {"qpm": 7}}).qpm == 7


def test_override_for_a_new_model_and_the_default_key() -> None:
    overrides = {"HCX-008": {"qpm": 30, "tpm": 40_000}, "default": {"tpm": 5_000}}
    assert lookup_budget("HCX-008", overrides=overrides) == Budget(qpm=30, tpm=40_000)
    assert lookup_budget("HCX-009", overrides=overrides) == Budget(qpm=60, tpm=5_000)
    # 'default' is only for models the table does not know
    assert lookup_budget("HCX-005", overrides=overrides) == Budget(qpm=60, tpm=60_000)


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        ({"HCX-005": {"qpm": -1}}, ['"HCX-005"', "qpm", "-1"]),
        ({"HCX-005": {"tpm": 0}}, ['"HCX-005"', "tpm"]),
        ({"HCX-005": {"tpm": "90000"}}, ['"HCX-005"', "tpm", "'90000'"]),
        ({"HCX-005": {"tpm": 1.5}}, ['"HCX-005"', "tpm"]),
        ({"HCX-005": {"qpm": True}}, ['"HCX-005"', "qpm"]),
        ({"HCX-005": {"rpm": 10}}, ['"HCX-005"', "rpm"]),
        ({"HCX-005": {"test": {"qpm": 10}}}, ['"HCX-005"', "test"]),
        ({"HCX-005": 120}, ['"HCX-005"', "qpm"]),
        ({"HCX-003": {"qpm": -5}}, ['"HCX-003"', "qpm"]),  # another model's entry is checked too
        ([1, 2], ["extra.limits"]),
    ],
)
def test_bad_overrides_name_the_model_and_field(overrides: object, fragments: list[str]) -> None:
    with pytest.raises(ClovaStudioConfigError) as caught:
        lookup_budget("HCX-005", overrides=overrides)  # type: ignore[arg-type]
    for fragment in fragments:
        assert fragment in str(caught.value), (fragment, str(caught.value))


def test_bad_arguments() -> None:
    with pytest.raises(ClovaStudioConfigError, match="app_type"):
        lookup_budget("HCX-005", "prod")  # type: ignore[arg-type]
    with pytest.raises(ClovaStudioConfigError):
        lookup_budget("")
    with pytest.raises(ClovaStudioConfigError):
        Budget(qpm=0, tpm=10)


def test_budget_ceilings_count_a_share_of_whole_requests_and_tokens() -> None:
    budget = Budget(qpm=100, tpm=100)
    # 100 x 0.29 is 28.999999999999996 in floating point: the ceiling still counts 29
    assert (budget.request_ceiling(0.29), budget.token_ceiling(0.29)) == (29, 29)
    assert Budget(qpm=3, tpm=10_000).request_ceiling(1 / 4) == 0  # less than one request: the limiter refuses it
    assert Budget(qpm=60, tpm=10_000).token_ceiling() == 10_000
