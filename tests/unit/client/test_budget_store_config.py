"""``extra.budget_store`` and ``extra.budget_store_fallback``: parsed, validated with the field
named, the password masked in every repr and message, and the pacing share they imply."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from airflow_provider_clova.client.budget_store import StoreSettings, mask_url, store_secrets
from airflow_provider_clova.client.config import config_from_connection
from airflow_provider_clova.client.errors import ClovaStudioConfigError

from .conftest import ACCESS_KEY, SECRET_KEY

PASSWORD = "r3dis-Pa$$-only-here-9a8b"
URL = "redis://:r3dis-Pa%24%24-only-here-9a8b@redis.internal:6379/2"


def build(**extra: Any) -> Any:
    return config_from_connection(host=None, login=ACCESS_KEY, password=SECRET_KEY, extra=extra)


def test_no_store_keeps_the_static_share() -> None:
    config = replace(build(), rate_share=0.25)
    assert config.budget_store is None
    assert config.pacing_share == 0.25


def test_store_paces_the_whole_budget_and_masks_the_password() -> None:
    config = replace(build(budget_store=URL), rate_share=0.25)
    assert config.budget_store == StoreSettings(URL, "error")
    assert config.pacing_share == 1.0
    assert config.rate_share == 0.25  # kept for the static fallback
    text = repr(config)
    assert "redis://:***@redis.internal:6379/2" in text
    assert PASSWORD not in text and "r3dis" not in text


def test_fallback_static_is_explicit() -> None:
    assert build(budget_store=URL, budget_store_fallback="static").budget_store.fallback == "static"


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"budget_store": "http://redis.internal:6379"}, "extra.budget_store"),
        ({"budget_store": "redis://"}, "extra.budget_store"),
        ({"budget_store": 6379}, "extra.budget_store"),
        ({"budget_store": URL, "budget_store_fallback": "local"}, "extra.budget_store_fallback"),
        ({"budget_store_fallback": "static"}, "extra.budget_store_fallback"),
        ({"budget_store": "redis://:" + "r3dis-pw@host:notaport/0"}, "extra.budget_store"),
    ],
)
def test_bad_store_fields_are_named_without_the_password(extra: dict[str, Any], named: str) -> None:
    with pytest.raises(ClovaStudioConfigError) as caught:
        build(**extra)
    assert named in str(caught.value)
    assert "r3dis" not in str(caught.value)


def test_missing_redis_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "redis" else real(name, *a))
    with pytest.raises(ClovaStudioConfigError, match=r"airflow-provider-clova\[redis\]"):
        build(budget_store=URL)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://user:pw@h/0", "rediss://user:***@h/0"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("redis://:pw@[::1]:6379", "redis://:***@[::1]:6379"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_store_secrets_give_the_raw_and_decoded_password() -> None:
    assert store_secrets(URL) == ["r3dis-Pa%24%24-only-here-9a8b", PASSWORD]
    assert store_secrets("redis://h:6379/0") == []
