"""Fixtures for the core client's unit tests: no network, no real sleeping.

* ``sleeps`` records every wait tenacity would sleep, for both clients, by giving the
  client module's ``tenacity.Retrying`` / ``AsyncRetrying`` a recording ``sleep``.
* ``fake_limiter`` replaces the QPM/TPM limiter with a recorder, for chat retry tests.
* ``make_config`` / ``make_client`` build a client with an injectable clock.
"""

from __future__ import annotations

import functools
import itertools
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import respx
import tenacity

from airflow_provider_clova.client import client as client_module
from airflow_provider_clova.client.auth import BearerAuth, Credentials, LegacyKeyAuth, SignatureV2Auth
from airflow_provider_clova.client.client import AsyncClovaStudioClient, ClovaStudioClient
from airflow_provider_clova.client.config import ClientConfig
from airflow_provider_clova.client.retry import RetryPolicy

BASE_URL = "https://clovastudio.test"
ACCESS_KEY = "ncp_iam_BPAMKR-access-key-0001"
SECRET_KEY = "ncp_iam_BPKMKR-secret-key-very-secret-9f3a"
API_KEY = "nv-api-key-also-very-secret-1234567890"
GATEWAY_KEY = "apigw-gateway-key-secret-abcdef"
SECRETS = (SECRET_KEY, API_KEY, GATEWAY_KEY)


class Clock:
    """A fake epoch-millisecond clock that advances by ``step`` on every reading."""

    def __init__(self, start: int = 1_700_000_000_000, step: int = 1_000) -> None:
        self._counter = itertools.count(start, step)
        self.readings: list[int] = []

    def __call__(self) -> int:
        value = next(self._counter)
        self.readings.append(value)
        return value


def make_config(
    *,
    auth: str = "mixed",
    clock: Callable[[], int] | None = None,
    retry: RetryPolicy | None = None,
    app_type: str = "test",
    rate_window_seconds: float = 60.0,
) -> ClientConfig:
    """``mixed``: IAM keys (signing the tuning API) and an API key (chat); or one scheme alone."""
    signature = SignatureV2Auth(ACCESS_KEY, SECRET_KEY, clock_ms=clock)
    credentials = {
        "mixed": Credentials(bearer=BearerAuth(API_KEY), signature=signature),
        "apigw_v2": Credentials(signature=signature),
        "bearer": Credentials(bearer=BearerAuth(API_KEY)),
        "legacy_keys": Credentials(legacy=LegacyKeyAuth(API_KEY, GATEWAY_KEY)),
    }[auth]
    return ClientConfig(
        credentials=credentials,
        auth_type="apigw_v2" if auth == "mixed" else auth,  # type: ignore[arg-type]
        account_id="acct-test",
        base_url=BASE_URL,
        app_type=app_type,  # type: ignore[arg-type]
        retry=retry or RetryPolicy(max_attempts=4),
        rate_window_seconds=rate_window_seconds,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(clock: Clock) -> Iterator[ClovaStudioClient]:
    with ClovaStudioClient(make_config(clock=clock)) as c:
        yield c


@pytest.fixture
async def aclient(clock: Clock) -> Any:
    async with AsyncClovaStudioClient(make_config(clock=clock)) as c:
        yield c


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait the retry loop asks for, in order; nothing really sleeps."""
    recorded: list[float] = []

    async def async_sleep(seconds: float) -> None:
        recorded.append(float(seconds))

    fake = types.SimpleNamespace(
        Retrying=functools.partial(tenacity.Retrying, sleep=lambda s: recorded.append(float(s))),
        AsyncRetrying=functools.partial(tenacity.AsyncRetrying, sleep=async_sleep),
    )
    monkeypatch.setattr(client_module, "tenacity", fake)
    return recorded


@dataclass
class FakeReservation:
    cost: int
    settled: int | None = None
    released: bool = False
    #: Corrected through the async twins (the async client must never block its loop on them).
    awaited: bool = False

    def settle(self, actual: int) -> None:
        self.settled = actual

    def release(self) -> None:
        self.released = True

    async def asettle(self, actual: int) -> None:
        self.awaited = True
        self.settle(actual)

    async def arelease(self) -> None:
        self.awaited = True
        self.release()


@dataclass
class FakeLimiter:
    key: Any = None
    reservations: list[FakeReservation] = field(default_factory=list)
    rate_limited: list[float | None] = field(default_factory=list)
    rate_limited_reservations: list[Any] = field(default_factory=list)
    async_acquires: int = 0
    async_rate_limited: int = 0

    def acquire(self, cost: int) -> FakeReservation:
        reservation = FakeReservation(cost)
        self.reservations.append(reservation)
        return reservation

    async def aacquire(self, cost: int) -> FakeReservation:
        self.async_acquires += 1
        return self.acquire(cost)

    def on_rate_limited(self, retry_after: float | None, *, reservation: Any = None) -> None:
        self.rate_limited.append(retry_after)
        self.rate_limited_reservations.append(reservation)

    async def aon_rate_limited(self, retry_after: float | None, *, reservation: Any = None) -> None:
        self.async_rate_limited += 1
        self.on_rate_limited(retry_after, reservation=reservation)


@pytest.fixture
def fake_limiter(monkeypatch: pytest.MonkeyPatch) -> FakeLimiter:
    limiter = FakeLimiter()
    models: list[str | None] = []

    def limiter_for(self: Any, call: Any) -> FakeLimiter | None:
        if call.budget_model is None:
            return None
        models.append(call.budget_model)
        limiter.key = (self.config.account_id, call.budget_model, self.config.app_type)
        return limiter

    monkeypatch.setattr(client_module._BaseClient, "_limiter_for", limiter_for)
    limiter.models = models  # type: ignore[attr-defined]
    return limiter


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """respx router for the test base URL; any unmocked request fails the test."""
    with respx.mock(base_url=BASE_URL, assert_all_called=False, assert_all_mocked=True) as router:
        yield router
