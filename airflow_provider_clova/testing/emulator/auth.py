"""Who is calling: the three CLOVA Studio auth schemes, checked exactly as documented.

* Bearer: ``Authorization: Bearer <key>``; each key has an app type (test or service).
* NCP API Gateway signature v2: ``X-NCP-APIGW-TIMESTAMP`` (epoch ms), ``X-NCP-IAM-ACCESS-KEY``,
  ``X-NCP-APIGW-SIGNATURE-V2 = base64(HMAC-SHA256(secret, METHOD + " " + PATH_WITH_QUERY + "\\n"
  + TIMESTAMP + "\\n" + ACCESS_KEY))``. ``PATH_WITH_QUERY`` is the raw request target as sent,
  so a client that signs a re-encoded path fails here as it would at the real gateway.
* Legacy app keys: ``X-NCP-CLOVASTUDIO-API-KEY`` + ``X-NCP-APIGW-API-KEY``; failures answer
  in the legacy API Gateway shape.

Which scheme a route accepts is the route's business, as documented (every current API page
shows Bearer; the older pages show signature v2 for the tuning API only and the legacy pair
for v1 chat and token count under ``/testapp/`` or ``/serviceapp/`` only). A credential of a
scheme the route does not accept is refused before it is even checked: 401 ``40102``
("Invalid access token"), naming the scheme and what the route takes.

App type: a ``/testapp/`` or ``/serviceapp/`` path prefix selects it. Without a prefix a Bearer
key or legacy pair has the app type it was issued for, and a signature-v2 access key has the
app type configured for it (``test`` unless the accounts file says otherwise). A Bearer key or
legacy pair used under the other app's prefix is refused (403 ``40300`` / legacy 401 ``210``);
IAM access keys belong to the account, not to an app, so any prefix is accepted for them.

Nothing here ever logs or echoes a key or a signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from airflow_provider_clova.testing.emulator.config import Account, AppType
from airflow_provider_clova.testing.emulator.envelope import ApiError

Scheme = Literal["bearer", "apigw_v2", "legacy_keys"]

#: the schemes each family of routes accepts (docs/emulator.md, "Authentication per route")
BEARER_ONLY: frozenset[Scheme] = frozenset({"bearer"})
TUNING_SCHEMES: frozenset[Scheme] = frozenset({"bearer", "apigw_v2"})
LEGACY_SCHEMES: frozenset[Scheme] = frozenset({"bearer", "legacy_keys"})

SCHEME_NAMES: dict[Scheme, str] = {
    "bearer": "Authorization: Bearer <API key>",
    "apigw_v2": "API Gateway signature v2 (X-NCP-APIGW-SIGNATURE-V2)",
    "legacy_keys": "the legacy key pair (X-NCP-CLOVASTUDIO-API-KEY + X-NCP-APIGW-API-KEY)",
}

#: how far the signed timestamp may be from the emulator's clock, as at the real gateway
MAX_CLOCK_SKEW_SECONDS = 300.0

H_TIMESTAMP = "x-ncp-apigw-timestamp"
H_ACCESS_KEY = "x-ncp-iam-access-key"
H_SIGNATURE = "x-ncp-apigw-signature-v2"
H_LEGACY_STUDIO = "x-ncp-clovastudio-api-key"
H_LEGACY_APIGW = "x-ncp-apigw-api-key"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: which account, as which app type, by which scheme."""

    account: str
    app_type: AppType
    scheme: Scheme


def sign_v2(secret_key: str, method: str, path_with_query: str, timestamp: str, access_key: str) -> str:
    """The documented signature v2 (used by the emulator to check; tests compute their own)."""
    message = f"{method} {path_with_query}\n{timestamp}\n{access_key}"
    digest = hmac.new(secret_key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def presented_scheme(headers: Mapping[str, str]) -> Scheme | None:
    """Which scheme the request's headers use (the first found, in the order the gateway reads)."""
    if headers.get("authorization") is not None:
        return "bearer"
    if any(headers.get(h) is not None for h in (H_ACCESS_KEY, H_SIGNATURE, H_TIMESTAMP)):
        return "apigw_v2"
    if headers.get(H_LEGACY_STUDIO) is not None or headers.get(H_LEGACY_APIGW) is not None:
        return "legacy_keys"
    return None


class Authenticator:
    """Maps credentials to accounts; one instance per emulator."""

    def __init__(self, accounts: tuple[Account, ...], clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._access: dict[str, tuple[str, str, AppType]] = {}
        self._bearer: dict[str, tuple[str, AppType]] = {}
        self._legacy: dict[tuple[str, str], tuple[str, AppType]] = {}
        for account in accounts:
            for ak, (sk, app_type) in account.access_keys.items():
                self._access[ak] = (account.name, sk, app_type)
            for key, app_type in account.api_keys.items():
                self._bearer[key] = (account.name, app_type)
            for pair, app_type in account.legacy_keys.items():
                self._legacy[pair] = (account.name, app_type)

    def authenticate(
        self,
        headers: Mapping[str, str],
        method: str,
        path_with_query: str,
        prefix_app_type: AppType | None,
        accepted: frozenset[Scheme] = BEARER_ONLY,
    ) -> Principal:
        """The caller, or :class:`ApiError` (401/403) saying which check failed.

        ``accepted`` is what the route takes; the legacy pair is accepted only under an app
        prefix even where the route family lists it.
        """
        scheme = presented_scheme(headers)
        if scheme is None:
            raise ApiError(401, "40100", "Authentication failed: no credentials (send a Bearer API key)")
        if scheme == "legacy_keys" and prefix_app_type is None:
            accepted = accepted - {"legacy_keys"}
        if scheme not in accepted:
            takes = " or ".join(SCHEME_NAMES[s] for s in sorted(accepted))
            where = " outside /testapp/ and /serviceapp/" if scheme == "legacy_keys" and prefix_app_type is None else ""
            raise ApiError(
                401,
                "40102",
                f"Invalid access token: {SCHEME_NAMES[scheme]} is not accepted on this API{where}; send {takes}",
            )
        if scheme == "bearer":
            return self._bearer_auth(headers["authorization"], prefix_app_type)
        if scheme == "apigw_v2":
            return self._signature_auth(headers, method, path_with_query, prefix_app_type)
        return self._legacy_auth(headers, prefix_app_type)

    def _bearer_auth(self, value: str, prefix_app_type: AppType | None) -> Principal:
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "40102", "Unsupported authorization type: use 'Authorization: Bearer <key>'")
        found = self._bearer.get(token.strip())
        if found is None:
            raise ApiError(401, "40104", "Invalid API key")
        account, app_type = found
        if prefix_app_type is not None and prefix_app_type != app_type:
            raise ApiError(403, "40300", f"Forbidden: a {app_type} app key cannot call a {prefix_app_type} app")
        return Principal(account=account, app_type=app_type, scheme="bearer")

    def _signature_auth(
        self,
        headers: Mapping[str, str],
        method: str,
        path_with_query: str,
        prefix_app_type: AppType | None,
    ) -> Principal:
        timestamp = headers.get(H_TIMESTAMP)
        access_key = headers.get(H_ACCESS_KEY)
        signature = headers.get(H_SIGNATURE)
        missing = [
            name
            for name, value in (
                ("X-NCP-APIGW-TIMESTAMP", timestamp),
                ("X-NCP-IAM-ACCESS-KEY", access_key),
                ("X-NCP-APIGW-SIGNATURE-V2", signature),
            )
            if not value
        ]
        if missing or timestamp is None or access_key is None or signature is None:
            raise ApiError(401, "40100", f"Authentication failed: missing header {', '.join(missing)}")
        found = self._access.get(access_key)
        if found is None:
            raise ApiError(401, "40104", "Invalid access key")
        account, secret_key, key_app_type = found
        if not timestamp.isdigit():
            raise ApiError(401, "40101", "Invalid signature: X-NCP-APIGW-TIMESTAMP must be epoch milliseconds")
        skew = abs(self._clock() - int(timestamp) / 1000.0)
        if skew > MAX_CLOCK_SKEW_SECONDS:
            raise ApiError(
                401, "40101", "Invalid signature: X-NCP-APIGW-TIMESTAMP is more than 5 minutes from server time"
            )
        expected = sign_v2(secret_key, method, path_with_query, timestamp, access_key)
        if not hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("utf-8", "replace")):
            raise ApiError(401, "40101", "Invalid signature")
        return Principal(account=account, app_type=prefix_app_type or key_app_type, scheme="apigw_v2")

    def _legacy_auth(self, headers: Mapping[str, str], prefix_app_type: AppType | None) -> Principal:
        pair = (headers.get(H_LEGACY_STUDIO) or "", headers.get(H_LEGACY_APIGW) or "")
        found = self._legacy.get(pair) if all(pair) else None
        if found is None:
            raise ApiError(401, "200", "Authentication Failed", legacy=True)
        account, app_type = found
        if prefix_app_type is not None and prefix_app_type != app_type:
            raise ApiError(401, "210", "Permission Denied", legacy=True)
        return Principal(account=account, app_type=app_type, scheme="legacy_keys")
