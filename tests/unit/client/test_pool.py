"""client.pool: one SSL context per process, pooled clients per (settings, loop), no shared secrets."""

from __future__ import annotations

import asyncio
import ssl
import threading
from dataclasses import replace
from typing import Any

import certifi
import httpx
import pytest

from airflow_provider_clova.client import pool
from airflow_provider_clova.client.auth import BearerAuth, LegacyKeyAuth, SignatureV2Auth
from airflow_provider_clova.client.config import config_from_connection
from airflow_provider_clova.client.errors import ClovaStudioConfigError

API_KEY = "nv-pool-test-api-key-0123456789abcdef"
OTHER_KEY = "nv-pool-test-api-key-fedcba9876543210"
ACCESS_KEY = "ncp-pool-access-key-0001"
SECRET_KEY = "ncp-pool-secret-key-5e6f7a8b9c0d"


def bearer(key: str = API_KEY, host: str = "https://clova.pooltest.invalid", **extra: Any) -> Any:
    return config_from_connection(host=host, login=None, password=key, extra=extra)


@pytest.fixture
def fresh_tls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[pool.TlsKey, int]]:
    """No SSL context built yet in this process; records each build and the thread it ran on."""
    builds: list[tuple[pool.TlsKey, int]] = []
    real = pool._build_ssl_context

    def recording(key: pool.TlsKey) -> ssl.SSLContext:
        builds.append((key, threading.get_ident()))
        return real(key)

    monkeypatch.setattr(pool, "_tls", {})
    monkeypatch.setattr(pool, "_build_ssl_context", recording)
    return builds


# -- keys: nothing secret is shared or stored -------------------------------------------------------


def test_credential_key_is_equal_for_the_same_secrets_and_differs_for_any_other() -> None:
    assert pool.credential_key(BearerAuth(API_KEY)) == pool.credential_key(BearerAuth(API_KEY))
    assert pool.credential_key(BearerAuth(API_KEY)) != pool.credential_key(BearerAuth(OTHER_KEY))
    # Same access key, different secret key: different credentials.
    signed = pool.credential_key(SignatureV2Auth(ACCESS_KEY, SECRET_KEY))
    assert signed != pool.credential_key(SignatureV2Auth(ACCESS_KEY, SECRET_KEY + "x"))
    assert signed != pool.credential_key(SignatureV2Auth(ACCESS_KEY + "x", SECRET_KEY))
    # The same string in another scheme (or another slot) is another credential.
    assert pool.credential_key(LegacyKeyAuth(API_KEY, OTHER_KEY)) != pool.credential_key(
        LegacyKeyAuth(OTHER_KEY, API_KEY)
    )


def test_client_key_holds_no_secret_and_tells_connections_apart() -> None:
    key = pool.client_key(bearer())
    text = repr(key)
    assert API_KEY not in text and API_KEY[-12:] not in text
    assert pool.client_key(bearer()) == key  # a second read of the same connection
    assert pool.client_key(bearer(OTHER_KEY)) != key
    assert pool.client_key(bearer(timeout=5)) != key
    assert pool.client_key(replace(bearer(), rate_share=0.5)) != key


def test_client_key_tells_apart_every_credential_of_a_mixed_connection() -> None:
    # IAM keys next to the same API key: budgets are keyed by the API key (same account_id), but a
    # client must never sign with another connection's secret key.
    def mixed(secret: str) -> Any:
        return config_from_connection(host=None, login=ACCESS_KEY, password=secret, extra={"api_key": API_KEY})

    assert mixed(SECRET_KEY).account_id == mixed(SECRET_KEY + "x").account_id
    assert pool.client_key(mixed(SECRET_KEY)) == pool.client_key(mixed(SECRET_KEY))
    assert pool.client_key(mixed(SECRET_KEY)) != pool.client_key(mixed(SECRET_KEY + "x"))
    assert SECRET_KEY not in repr(pool.client_key(mixed(SECRET_KEY)))


# -- SSL contexts ----------------------------------------------------------------------------------


def test_one_context_per_process_and_setting(fresh_tls: list[Any]) -> None:
    first = pool.ssl_context(True)
    assert pool.ssl_context(True) is first
    assert pool.ssl_context(False) is not first
    assert [key for key, _ in fresh_tls] == [True, False]
    assert first.verify_mode is ssl.CERT_REQUIRED and first.cert_store_stats()["x509_ca"] > 0


def test_plain_http_loads_no_ca_and_fails_closed(fresh_tls: list[Any]) -> None:
    config = bearer(host="http://127.0.0.1:8765")
    assert pool.tls_key(config) is None
    context = pool.ssl_context(pool.tls_key(config))
    assert context.cert_store_stats()["x509_ca"] == 0  # nothing loaded
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname  # trusts nothing
    assert [key for key, _ in fresh_tls] == [None]


def test_verify_takes_a_ca_bundle_path(fresh_tls: list[Any]) -> None:
    config = bearer(verify=certifi.where())
    assert config.verify == certifi.where()
    context = pool.ssl_context(pool.tls_key(config))
    assert context.cert_store_stats()["x509_ca"] > 0


def test_a_missing_ca_bundle_is_a_config_error_naming_the_field(fresh_tls: list[Any], tmp_path: Any) -> None:
    missing = str(tmp_path / "corp-ca.pem")
    with pytest.raises(ClovaStudioConfigError, match=r"extra\.verify.*does not exist.*Fix:"):
        pool.ssl_context(pool.tls_key(bearer(verify=missing)))


# -- async: per (settings, loop) -----------------------------------------------------------------


def test_concurrent_first_callers_share_one_client_and_one_off_loop_tls_build(fresh_tls: list[Any]) -> None:
    async def main() -> list[Any]:
        return list(await asyncio.gather(*(pool.ashared_client(bearer()) for _ in range(50))))

    clients = asyncio.run(main())
    assert len({id(c) for c in clients}) == 1
    assert len(fresh_tls) == 1  # one build, however many asked at once
    assert fresh_tls[0][1] != threading.get_ident()  # built in a thread, not on the loop


def test_connections_never_share_a_client_or_auth_object() -> None:
    async def main() -> tuple[Any, Any]:
        return await pool.ashared_client(bearer()), await pool.ashared_client(bearer(OTHER_KEY))

    mine, theirs = asyncio.run(main())
    assert mine is not theirs
    assert mine.config.credentials.bearer is not theirs.config.credentials.bearer
    assert mine._http is not theirs._http


def test_each_loop_gets_its_own_client_closed_when_the_loop_ends() -> None:
    async def main() -> Any:
        client = await pool.ashared_client(bearer())
        await client.aclose()  # a user's close is a no-op on a pooled client
        assert not client.is_closed
        assert pool.loop_clients() == [client]
        return client

    first = asyncio.run(main())
    assert first.is_closed  # asyncio.run's end cancelled the keeper, which closed it
    second = asyncio.run(main())  # another loop: another client, closed at its end too
    assert second is not first and second.is_closed


async def test_pooled_requests_carry_their_own_connections_credentials() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200, json={"status": {"code": "20000"}, "result": {"totalTokens": 1}})

    import respx

    with respx.mock(base_url="https://clova.pooltest.invalid") as api:
        api.post("/v3/api-tools/chat-tokenize/HCX-005").mock(side_effect=answer)
        for key in (API_KEY, OTHER_KEY, API_KEY):
            client = await pool.ashared_client(bearer(key))
            await client.count_tokens([{"role": "user", "content": "hi"}], "HCX-005")
    assert seen == [f"Bearer {API_KEY}", f"Bearer {OTHER_KEY}", f"Bearer {API_KEY}"]


# -- sync: per process ----------------------------------------------------------------------------


def test_sync_clients_are_shared_per_process_and_settings() -> None:
    client = pool.shared_client(bearer())
    assert pool.shared_client(bearer()) is client
    assert pool.shared_client(bearer(OTHER_KEY)) is not client
    client.close()  # no-op: others use it
    assert not client.is_closed
