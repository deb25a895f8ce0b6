"""CLOVA Studio authentication schemes as ``httpx.Auth`` classes.

httpx runs an ``Auth`` flow for every request it sends, so a retry re-enters the flow and
gets a fresh timestamp and signature: a retried request is never rejected for a stale
signature. The flows only add headers; they never log or expose the secrets they hold, and
their ``repr`` hides them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import httpx

from airflow_provider_clova.client.routing import Scheme

SIGNATURE_TIMESTAMP_HEADER = "X-NCP-APIGW-TIMESTAMP"
SIGNATURE_ACCESS_KEY_HEADER = "X-NCP-IAM-ACCESS-KEY"
SIGNATURE_HEADER = "X-NCP-APIGW-SIGNATURE-V2"
LEGACY_STUDIO_KEY_HEADER = "X-NCP-CLOVASTUDIO-API-KEY"
LEGACY_GATEWAY_KEY_HEADER = "X-NCP-APIGW-API-KEY"


def string_to_sign(method: str, path_with_query: str, timestamp_ms: str, access_key: str) -> str:
    """The documented API Gateway v2 string to sign."""
    return f"{method.upper()} {path_with_query}\n{timestamp_ms}\n{access_key}"


def sign_v2(secret_key: str | bytes, method: str, path_with_query: str, timestamp_ms: str, access_key: str) -> str:
    """base64(HMAC-SHA256(secret_key, string_to_sign)): the X-NCP-APIGW-SIGNATURE-V2 value."""
    key = secret_key.encode("utf-8") if isinstance(secret_key, str) else secret_key
    message = string_to_sign(method, path_with_query, timestamp_ms, access_key).encode("utf-8")
    return base64.b64encode(hmac.digest(key, message, hashlib.sha256)).decode("ascii")


def _epoch_ms() -> int:
    return time.time_ns() // 1_000_000


def path_with_query(request: httpx.Request) -> str:
    """The request target exactly as it goes on the wire (path plus raw query string)."""
    return request.url.raw_path.decode("ascii")


class SignatureV2Auth(httpx.Auth):
    """NCP API Gateway signature v2 (access key + secret key)."""

    def __init__(self, access_key: str, secret_key: str, *, clock_ms: Callable[[], int] | None = None) -> None:
        if not access_key or not secret_key:
            raise ValueError("signature v2 needs both an access key and a secret key")
        self._access_key = access_key
        self._secret_key = secret_key.encode("utf-8")
        self._clock_ms = clock_ms or _epoch_ms

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        timestamp = str(self._clock_ms())
        headers = request.headers
        headers[SIGNATURE_TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_ACCESS_KEY_HEADER] = self._access_key
        headers[SIGNATURE_HEADER] = sign_v2(
            self._secret_key, request.method, path_with_query(request), timestamp, self._access_key
        )
        yield request

    def __repr__(self) -> str:
        return "SignatureV2Auth(access_key=***, secret_key=***)"


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <API key>`` for the current CLOVA Studio host."""

    def __init__(self, api_key: str) -> None:
        if not api_key:
            raise ValueError("bearer auth needs an API key")
        self._api_key = api_key

    @property
    def api_key(self) -> str:
        """The key itself, for handing to another client on the same key (the ``openai`` SDK)."""
        return self._api_key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._api_key}"
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(api_key=***)"


class LegacyKeyAuth(httpx.Auth):
    """The legacy CLOVA Studio app key + API Gateway key pair."""

    def __init__(self, studio_api_key: str, gateway_api_key: str) -> None:
        if not studio_api_key or not gateway_api_key:
            raise ValueError("legacy key auth needs the CLOVA Studio API key and the API Gateway key")
        self._studio_api_key = studio_api_key
        self._gateway_api_key = gateway_api_key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[LEGACY_STUDIO_KEY_HEADER] = self._studio_api_key
        request.headers[LEGACY_GATEWAY_KEY_HEADER] = self._gateway_api_key
        yield request

    def __repr__(self) -> str:
        return "LegacyKeyAuth(studio_api_key=***, gateway_api_key=***)"


@dataclass(frozen=True)
class Credentials:
    """Every scheme one connection can sign with; each is None when the connection lacks it.

    A connection may hold an API key next to IAM keys: the router (``routing.py``) then picks,
    per call, the scheme CLOVA Studio documents for that endpoint family.
    """

    bearer: BearerAuth | None = field(default=None, repr=False)
    signature: SignatureV2Auth | None = field(default=None, repr=False)
    legacy: LegacyKeyAuth | None = field(default=None, repr=False)

    def get(self, scheme: Scheme) -> httpx.Auth | None:
        if scheme == "bearer":
            return self.bearer
        if scheme == "apigw_v2":
            return self.signature
        return self.legacy

    @property
    def schemes(self) -> tuple[Scheme, ...]:
        """The schemes this connection can use, in a fixed order."""
        all_schemes: tuple[Scheme, ...] = ("bearer", "apigw_v2", "legacy_keys")
        return tuple(scheme for scheme in all_schemes if self.get(scheme) is not None)

    def __repr__(self) -> str:
        return f"Credentials(schemes={list(self.schemes)})"
