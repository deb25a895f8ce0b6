"""Connection fields -> ClientConfig: every scheme, and every wrong field named."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from airflow_provider_clova.client.auth import BearerAuth, LegacyKeyAuth, SignatureV2Auth
from airflow_provider_clova.client.config import APIGW_HOST, DEFAULT_HOST, config_from_connection
from airflow_provider_clova.client.errors import ClovaStudioConfigError

from .conftest import ACCESS_KEY, API_KEY, GATEWAY_KEY, SECRET_KEY, SECRETS


def build(**fields: Any) -> Any:
    base: dict[str, Any] = {"host": None, "login": None, "password": None, "extra": None}
    base.update(fields)
    return config_from_connection(**base)


def headers_of(auth: httpx.Auth) -> httpx.Headers:
    request = httpx.Request("GET", "https://clovastudio.test/tuning/v2/tasks")
    return next(auth.sync_auth_flow(request)).headers


def test_signature_v2_from_login_and_password() -> None:
    config = build(login=ACCESS_KEY, password=SECRET_KEY)
    assert config.auth_type == "apigw_v2"
    assert config.credentials.schemes == ("apigw_v2",)
    assert isinstance(config.credentials.signature, SignatureV2Auth)
    assert headers_of(config.credentials.signature)["X-NCP-IAM-ACCESS-KEY"] == ACCESS_KEY
    # Signature v2 goes to the API Gateway host; the stream host takes Bearer keys.
    assert config.url_for("apigw_v2") == APIGW_HOST
    assert config.url_for("bearer") == DEFAULT_HOST
    assert config.app_type == "test"
    assert config.verify is True


def test_iam_keys_with_an_api_key_next_to_them() -> None:
    config = build(login=ACCESS_KEY, password=SECRET_KEY, extra={"api_key": API_KEY})
    assert config.auth_type == "apigw_v2"
    assert config.credentials.schemes == ("bearer", "apigw_v2")
    assert headers_of(config.credentials.bearer)["Authorization"] == f"Bearer {API_KEY}"
    assert headers_of(config.credentials.signature)["X-NCP-IAM-ACCESS-KEY"] == ACCESS_KEY
    # Chat is what the limiter paces, and it goes with the API key: budgets are keyed by it.
    assert config.account_id == build(password=API_KEY).account_id
    for secret in SECRETS:
        assert secret not in repr(config)


def test_bearer_from_password_only() -> None:
    config = build(password=API_KEY, host="http://127.0.0.1:8765")
    assert config.auth_type == "bearer"
    assert config.credentials.schemes == ("bearer",)
    assert isinstance(config.credentials.bearer, BearerAuth)
    assert headers_of(config.credentials.bearer)["Authorization"] == f"Bearer {API_KEY}"
    assert config.base_url == "http://127.0.0.1:8765"


def test_bearer_from_extra_api_key_only() -> None:
    config = build(extra={"api_key": API_KEY})
    assert config.credentials.schemes == ("bearer",)
    assert config.account_id == build(password=API_KEY).account_id


def test_legacy_keys_from_extra() -> None:
    config = build(
        password=API_KEY,
        extra=json.dumps({"auth_type": "legacy_keys", "apigw_api_key": GATEWAY_KEY, "app_type": "service"}),
    )
    assert config.auth_type == "legacy_keys"
    assert config.credentials.schemes == ("legacy_keys",)
    assert isinstance(config.credentials.legacy, LegacyKeyAuth)
    assert headers_of(config.credentials.legacy)["X-NCP-APIGW-API-KEY"] == GATEWAY_KEY
    assert config.legacy_prefix == "/serviceapp"
    assert config.url_for("legacy_keys") == APIGW_HOST


@pytest.mark.parametrize(
    ("host", "bearer_url", "signed_url"),
    [
        # No host, or NAVER's own: each scheme goes to the host documented for it.
        (None, DEFAULT_HOST, APIGW_HOST),
        ("https://clovastudio.stream.ntruss.com", DEFAULT_HOST, APIGW_HOST),
        ("clovastudio.apigw.ntruss.com", DEFAULT_HOST, APIGW_HOST),
        # Any other host (emulator, proxy, the public-sector region) serves every call.
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("https://clovastudio.stream.gov-ntruss.com", "https://clovastudio.stream.gov-ntruss.com", None),
    ],
)
def test_a_mixed_connection_sends_each_scheme_to_its_host(
    host: str | None, bearer_url: str, signed_url: str | None
) -> None:
    config = build(host=host, login=ACCESS_KEY, password=SECRET_KEY, extra={"api_key": API_KEY})
    assert config.url_for("bearer") == bearer_url
    assert config.url_for("apigw_v2") == (signed_url or bearer_url)


def test_models_override_is_read_and_checked() -> None:
    assert build(password=API_KEY, extra={"models": {"HCX-005": {"tunable": True}}}).models == {
        "HCX-005": {"tunable": True}
    }
    with pytest.raises(ClovaStudioConfigError, match=r"connection extra\.models\.HCX-005\.tunable must be true"):
        build(password=API_KEY, extra={"models": {"HCX-005": {"tunable": "sure"}}})


def test_explicit_auth_type_wins() -> None:
    assert build(login=ACCESS_KEY, password=SECRET_KEY, extra={"auth_type": "apigw_v2"}).auth_type == "apigw_v2"
    assert build(password=API_KEY, extra={"auth_type": "bearer"}).auth_type == "bearer"


def test_extras_are_read() -> None:
    config = build(
        password=API_KEY,
        extra={
            "timeout": "12.5",
            "verify": "false",
            "limits": {"HCX-005": {"qpm": 120, "tpm": 90000}},
            "rate_window_seconds": 6,
            "max_retries": 2,
        },
    )
    assert config.timeout == 12.5
    assert config.verify is False
    assert config.limits == {"HCX-005": {"qpm": 120, "tpm": 90000}}
    assert config.rate_window_seconds == 6.0
    assert config.retry.max_attempts == 3


@pytest.mark.parametrize(
    ("host", "schema", "port", "expected"),
    [
        (None, None, None, "https://clovastudio.stream.ntruss.com"),
        ("", None, None, "https://clovastudio.stream.ntruss.com"),
        ("https://clovastudio.apigw.ntruss.com/", None, None, "https://clovastudio.stream.ntruss.com"),
        ("clovastudio.apigw.ntruss.com", None, None, "https://clovastudio.stream.ntruss.com"),
        ("127.0.0.1", "http", 8765, "http://127.0.0.1:8765"),
        ("http://127.0.0.1:8765", None, 9999, "http://127.0.0.1:8765"),
        ("http://gateway.test/proxy/clova/", None, 8080, "http://gateway.test:8080/proxy/clova"),
        ("  https://clovastudio.stream.ntruss.com  ", None, None, "https://clovastudio.stream.ntruss.com"),
    ],
)
def test_host_forms(host: str | None, schema: str | None, port: int | None, expected: str) -> None:
    assert build(password=API_KEY, host=host, schema=schema, port=port).base_url == expected


def test_account_id_is_a_stable_fingerprint_not_the_key() -> None:
    a = build(password=API_KEY)
    b = build(password=API_KEY, host="http://other")
    c = build(password=API_KEY + "x")
    assert a.account_id == b.account_id != c.account_id
    assert API_KEY not in a.account_id


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        # signature v2
        ({"login": ACCESS_KEY}, "'password'"),
        ({"password": SECRET_KEY, "extra": {"auth_type": "apigw_v2"}}, "'login'"),
        # bearer
        ({}, "'password'"),
        ({"login": ACCESS_KEY, "password": API_KEY, "extra": {"auth_type": "bearer"}}, "'login'"),
        ({"password": API_KEY, "extra": {"apigw_api_key": GATEWAY_KEY}}, "extra.apigw_api_key"),
        ({"password": API_KEY, "extra": {"api_key": API_KEY}}, "'password' and extra.api_key"),
        ({"login": ACCESS_KEY, "password": SECRET_KEY, "extra": {"api_key": 5}}, "extra.api_key must be a string"),
        # legacy keys
        ({"password": API_KEY, "extra": {"auth_type": "legacy_keys"}}, "extra.apigw_api_key"),
        ({"extra": {"auth_type": "legacy_keys", "apigw_api_key": GATEWAY_KEY}}, "'password'"),
        (
            {"login": ACCESS_KEY, "password": API_KEY, "extra": {"auth_type": "legacy_keys", "apigw_api_key": "k"}},
            "'login'",
        ),
        (
            {"password": API_KEY, "extra": {"auth_type": "legacy_keys", "apigw_api_key": "k", "api_key": "nv-x"}},
            "extra.api_key is set next to legacy app keys",
        ),
        # extras
        ({"password": API_KEY, "extra": {"auth_type": "oauth"}}, "extra.auth_type"),
        ({"password": API_KEY, "extra": {"app_type": "prod"}}, "extra.app_type"),
        ({"password": API_KEY, "extra": {"apptype": "test"}}, "apptype"),
        ({"password": API_KEY, "extra": "{not json"}, "extra is not valid JSON"),
        ({"password": API_KEY, "extra": "[1, 2]"}, "extra must be a JSON object"),
        ({"password": API_KEY, "extra": {"timeout": 0}}, "extra.timeout"),
        ({"password": API_KEY, "extra": {"timeout": "soon"}}, "extra.timeout"),
        ({"password": API_KEY, "extra": {"verify": "maybe"}}, "extra.verify"),
        ({"password": API_KEY, "extra": {"rate_window_seconds": -1}}, "extra.rate_window_seconds"),
        ({"password": API_KEY, "extra": {"limits": [1]}}, "extra.limits"),
        ({"password": API_KEY, "extra": {"limits": {"HCX-005": 5}}}, "extra.limits"),
        ({"password": API_KEY, "extra": {"limits": {"HCX-005": {"qpm": "lots"}}}}, "qpm"),
        ({"password": API_KEY, "extra": {"limits": {"HCX-005": {"rpm": 5}}}}, "rpm"),
        ({"password": API_KEY, "extra": {"max_retries": -1}}, "extra.max_retries"),
        ({"password": API_KEY, "extra": {"max_retries": "many"}}, "extra.max_retries"),
        ({"password": API_KEY, "host": "ftp://clovastudio.test"}, "host 'ftp://clovastudio.test'"),
        ({"password": API_KEY, "host": "http://"}, "host 'http://'"),
    ],
)
def test_missing_or_contradictory_fields_are_named(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(ClovaStudioConfigError) as info:
        build(conn_id="my_clova", **fields)
    text = str(info.value)
    assert named in text
    for secret in SECRETS:
        assert secret not in text


def test_unknown_extra_lists_known_fields() -> None:
    with pytest.raises(ClovaStudioConfigError, match=r"unknown extra field.*apptype.*known:.*app_type"):
        build(password=API_KEY, extra={"apptype": "test"}, conn_id="c1")


def test_errors_name_the_connection() -> None:
    with pytest.raises(ClovaStudioConfigError, match="connection 'my_clova'"):
        build(conn_id="my_clova")


def test_config_is_frozen_and_hides_auth() -> None:
    config = build(login=ACCESS_KEY, password=SECRET_KEY)
    with pytest.raises(AttributeError):
        config.timeout = 1  # type: ignore[misc]
    assert SECRET_KEY not in repr(config)


@pytest.mark.parametrize(
    "field", ["verify", "timeout", "rate_window_seconds", "max_retries", "pool_slots", "auth_type", "app_type"]
)
def test_a_secret_pasted_into_an_extra_field_is_never_echoed(field: str) -> None:
    with pytest.raises(ClovaStudioConfigError, match=rf"extra\.{field}") as info:
        config_from_connection(host=None, login=None, password=API_KEY, extra={field: SECRET_KEY})
    assert SECRET_KEY not in str(info.value) and SECRET_KEY[:8] not in str(info.value)
    assert "not shown" in str(info.value)


def test_a_short_typo_is_still_shown_to_help() -> None:
    with pytest.raises(ClovaStudioConfigError, match="'maybe'"):
        config_from_connection(host=None, login=None, password=API_KEY, extra={"verify": "maybe"})


@pytest.mark.parametrize("value", ["inf", "nan", 1e400, float("nan")])
def test_non_finite_timeouts_are_refused(value: Any) -> None:
    with pytest.raises(ClovaStudioConfigError, match=r"extra\.timeout"):
        config_from_connection(host=None, login=None, password=API_KEY, extra={"timeout": value})


@pytest.mark.parametrize("extra", ['{"timeout": ' + "9" * 5000 + "}", "[" * 100_000, "[]", 7])
def test_an_unreadable_extra_is_a_typed_error(extra: Any) -> None:
    with pytest.raises(ClovaStudioConfigError, match="connection extra"):
        config_from_connection(host=None, login=None, password=API_KEY, extra=extra)
