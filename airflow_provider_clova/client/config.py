"""Client settings, and the one place that turns connection fields into them.

The Airflow hook passes the connection's host, login, password and extra here; keeping the
rules in the core makes them testable without Airflow and gives every entry point (hook,
emulator tests, user scripts) the same validation and the same error wording.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from airflow_provider_clova.client import catalog
from airflow_provider_clova.client.auth import BearerAuth, Credentials, LegacyKeyAuth, SignatureV2Auth
from airflow_provider_clova.client.budget_store import StoreSettings, parse_store_settings
from airflow_provider_clova.client.errors import ClovaStudioConfigError
from airflow_provider_clova.client.limits import validate_overrides
from airflow_provider_clova.client.retry import RetryPolicy
from airflow_provider_clova.client.routing import APIGW_HOST as APIGW_HOST
from airflow_provider_clova.client.routing import DEFAULT_HOST as DEFAULT_HOST
from airflow_provider_clova.client.routing import Scheme, scheme_hosts

#: How the connection's login and password are read (``extra.auth_type``).
AuthType = Scheme
AppType = Literal["test", "service"]
AUTH_TYPES: tuple[str, ...] = ("bearer", "apigw_v2", "legacy_keys")
APP_TYPES: tuple[str, ...] = ("test", "service")
KNOWN_EXTRA: frozenset[str] = frozenset(
    {
        "auth_type",
        "api_key",
        "app_type",
        "apigw_api_key",
        "models",
        "timeout",
        "verify",
        "limits",
        "rate_window_seconds",
        "pool_slots",
        "max_retries",
        "console_url",
        "budget_store",
        "budget_store_fallback",
    }
)


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client needs. Holds auth objects, never bare secrets in its repr."""

    credentials: Credentials
    #: How login/password were read: ``bearer``, ``apigw_v2`` (IAM keys) or ``legacy_keys``.
    auth_type: AuthType
    account_id: str
    #: Where Bearer calls go (the stream host, or the connection's custom host).
    base_url: str = DEFAULT_HOST
    #: Where signed and legacy calls go; None: the same host as ``base_url``.
    apigw_url: str | None = None
    app_type: AppType = "test"
    timeout: float = 60.0
    #: TLS verification: True, False, or the absolute path of a CA bundle file or directory.
    verify: bool | str = True
    limits: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    rate_window_seconds: float = 60.0
    rate_share: float = 1.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Console address of a tuning task, with ``{task_id}``; None uses the public console.
    console_url: str | None = None
    #: Slots the CLOVA pools were created with (``extra.pool_slots``); None means the default.
    pool_slots: int | None = None
    #: The shared QPM/TPM store (``extra.budget_store``); None paces each process on its own.
    budget_store: StoreSettings | None = None
    #: Catalog overrides (``extra.models``), e.g. ``{"HCX-005": {"tunable": true}}``.
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def pacing_share(self) -> float:
        """The share of each budget this caller's limiter paces at.

        With a budget store every task draws from the whole shared budget (the pool only caps
        how many run at once); without one, the static pool share (``rate_share``).
        """
        return 1.0 if self.budget_store is not None else self.rate_share

    @property
    def legacy_prefix(self) -> str:
        """Legacy app keys call chat v1 and tokenize under ``/testapp`` or ``/serviceapp``."""
        return "/serviceapp" if self.app_type == "service" else "/testapp"

    def url_for(self, scheme: Scheme) -> str:
        """The base URL a call signed with ``scheme`` goes to."""
        return self.base_url if scheme == "bearer" else (self.apigw_url or self.base_url)


def account_fingerprint(identity: str) -> str:
    """A stable, non-secret id for an account key: the limiter shares budgets by it."""
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:12]


#: Longer strings in a wrong extra field are described, not echoed: they may be a pasted key.
_SHOWN_STRING_LENGTH = 10


def shown(value: Any) -> str:
    """A wrong connection value for an error message, never a secret pasted in the wrong field.

    Numbers, booleans and short words (``"yes"``, ``"bearr"``) are shown as they are, which is
    what helps with a typo; a longer string is described by its length only.
    """
    if isinstance(value, str):
        if len(value) <= _SHOWN_STRING_LENGTH and value.isascii() and not any(ch.isdigit() for ch in value):
            return repr(value)
        return f"a {len(value)}-character string (not shown: it may be a secret)"
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    return f"a {type(value).__name__} (not shown)"


def parse_extra(extra: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """A connection's extra (JSON text, a mapping or nothing) as a dict; bad JSON raises naming it."""
    if extra in (None, ""):
        return {}
    if isinstance(extra, Mapping):
        return dict(extra)
    if not isinstance(extra, str):
        raise ClovaStudioConfigError(f"connection extra must be a JSON object, got {shown(extra)}")
    try:
        parsed = json.loads(extra)
    except json.JSONDecodeError as exc:
        raise ClovaStudioConfigError(f"connection extra is not valid JSON: {exc.msg} at column {exc.colno}") from None
    except (ValueError, RecursionError):  # a number past Python's digit limit, nesting too deep
        raise ClovaStudioConfigError(
            "connection extra is not valid JSON: a value is too large or nested too deeply"
        ) from None
    if not isinstance(parsed, dict):
        raise ClovaStudioConfigError("connection extra must be a JSON object")
    return parsed


def _flag(extra: Mapping[str, Any], name: str, default: bool) -> bool:
    value = extra.get(name, default)
    if isinstance(value, bool):
        return value
    # "y" is what Airflow 2.11's connection form posts for a ticked checkbox when Test is pressed.
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "1", "0", "yes", "no", "y", "n"}:
        return value.strip().lower() in {"true", "1", "yes", "y"}
    raise ClovaStudioConfigError(f"connection extra.{name} must be true or false, got {shown(value)}")


def _verify(extra: Mapping[str, Any]) -> bool | str:
    """``extra.verify``: true/false, or the absolute path of a CA bundle (checked when TLS is set up)."""
    value = extra.get("verify", True)
    if isinstance(value, str) and value.strip() and os.path.isabs(value.strip()):
        return value.strip()
    try:
        return _flag(extra, "verify", True)
    except ClovaStudioConfigError:
        raise ClovaStudioConfigError(
            f"connection extra.verify must be true, false or the absolute path of a CA bundle, got {shown(value)}"
        ) from None


def _positive(extra: Mapping[str, Any], name: str, default: float) -> float:
    value = extra.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ClovaStudioConfigError(f"connection extra.{name} must be a number, got {shown(value)}") from None
    if not number > 0 or not math.isfinite(number):
        raise ClovaStudioConfigError(f"connection extra.{name} must be a number greater than 0, got {shown(value)}")
    return number


def _limits(extra: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    limits = extra.get("limits") or {}
    if isinstance(limits, str):
        limits = parse_extra(limits)
    if not isinstance(limits, Mapping):
        raise ClovaStudioConfigError('connection extra.limits must be an object like {"HCX-005": {"qpm": 60}}')
    out: dict[str, dict[str, int]] = {}
    for model, entry in limits.items():
        if not isinstance(entry, Mapping):
            raise ClovaStudioConfigError(f"connection extra.limits.{model} must be an object with qpm and/or tpm")
        out[str(model)] = dict(entry)
    # Check every entry now (field names, positive integers), so a typo fails when the
    # connection is read rather than at the first chat call that happens to use that model.

    try:
        validate_overrides(out)
    except ClovaStudioConfigError as exc:
        raise ClovaStudioConfigError(f"connection {exc}") from None
    return out


def _models(extra: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    models = extra.get("models") or {}
    if isinstance(models, str):
        models = parse_extra(models)
    try:
        return catalog.validate_overrides(models)
    except ClovaStudioConfigError as exc:
        raise ClovaStudioConfigError(f"connection {exc}") from None


def _max_retries(extra: Mapping[str, Any]) -> RetryPolicy:
    value = extra.get("max_retries")
    if value is None:
        return RetryPolicy()
    try:
        retries = int(value)
    except (TypeError, ValueError, OverflowError):
        retries = -1
    if isinstance(value, bool) or retries < 0 or (isinstance(value, float) and not value.is_integer()):
        raise ClovaStudioConfigError(f"connection extra.max_retries must be a whole number >= 0, got {shown(value)}")
    return RetryPolicy(max_attempts=retries + 1)


def _base_url(host: str | None, schema: str | None, port: int | None, where: str, default: str) -> str:
    """``host`` (+ ``schema`` and ``port`` when the host lacks them) as an http(s) base URL."""
    text = (host or "").strip() or default
    if "://" not in text:
        text = f"{schema or 'https'}://{text}"
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise ClovaStudioConfigError(f"{where}: host {host!r} is not a valid URL ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ClovaStudioConfigError(f"{where}: host {host!r} must be an http(s) base URL, e.g. {DEFAULT_HOST}")
    if port and url.port is None:
        url = url.copy_with(port=int(port))
    return str(url).rstrip("/")


def _pool_slots(extra: Mapping[str, Any], where: str) -> int | None:
    value = extra.get("pool_slots")
    if value in (None, ""):
        return None
    try:
        slots = int(value)
    except (TypeError, ValueError, OverflowError):
        slots = 0
    if isinstance(value, bool) or slots < 1 or (isinstance(value, float) and not value.is_integer()):
        raise ClovaStudioConfigError(f"{where}: extra.pool_slots must be a whole number >= 1, got {shown(value)}")
    return slots


def resolve_auth_type(login: str | None, extra: Mapping[str, Any]) -> AuthType:
    """``extra.auth_type`` if given; else signature v2 when a login (access key) is set, else Bearer."""
    auth_type = extra.get("auth_type")
    if auth_type is None:
        return "apigw_v2" if login else "bearer"
    if auth_type not in AUTH_TYPES:
        raise ClovaStudioConfigError(
            f"connection extra.auth_type={shown(auth_type)} is not valid; use one of {', '.join(AUTH_TYPES)}"
        )
    return auth_type  # type: ignore[no-any-return]


def config_from_connection(
    *,
    host: str | None,
    login: str | None,
    password: str | None,
    extra: str | Mapping[str, Any] | None,
    schema: str | None = None,
    port: int | None = None,
    conn_id: str = "clova_studio_default",
) -> ClientConfig:
    """Build a ClientConfig from an Airflow connection's fields, naming any field that is wrong."""
    where = f"connection {conn_id!r}"
    extras = parse_extra(extra)
    unknown = sorted(set(extras) - KNOWN_EXTRA)
    if unknown:
        raise ClovaStudioConfigError(
            f"{where}: unknown extra field(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_EXTRA))}"
        )
    auth_type = resolve_auth_type(login, extras)
    app_type = extras.get("app_type", "test")
    if app_type not in APP_TYPES:
        raise ClovaStudioConfigError(f"{where}: extra.app_type={shown(app_type)} is not valid; use 'test' or 'service'")

    credentials, identity = _credentials(where, auth_type, login, password, extras)
    explicit_host = bool((host or "").strip())
    hosts = scheme_hosts(_base_url(host, schema, port, where, DEFAULT_HOST), explicit=explicit_host)
    retry = _max_retries(extras)
    return ClientConfig(
        credentials=credentials,
        auth_type=auth_type,
        account_id=account_fingerprint(identity),
        base_url=hosts["bearer"],
        apigw_url=hosts["apigw_v2"] if hosts["apigw_v2"] != hosts["bearer"] else None,
        app_type=app_type,
        timeout=_positive(extras, "timeout", 60.0),
        verify=_verify(extras),
        limits=_limits(extras),
        rate_window_seconds=_positive(extras, "rate_window_seconds", 60.0),
        retry=retry,
        console_url=str(extras["console_url"]) if extras.get("console_url") else None,
        pool_slots=_pool_slots(extras, where),
        models=_models(extras),
        budget_store=parse_store_settings(extras.get("budget_store"), extras.get("budget_store_fallback"), where),
    )


def _credentials(
    where: str, auth_type: AuthType, login: str | None, password: str | None, extras: Mapping[str, Any]
) -> tuple[Credentials, str]:
    """The connection's credentials, and the identity whose fingerprint keys the shared budgets.

    The identity is the key chat is sent with (the API key, else the legacy key, else the
    access key): QPM/TPM are metered per account, and chat is what the limiter paces.
    """
    api_key = extras.get("api_key")
    if api_key is not None and not isinstance(api_key, str):
        raise ClovaStudioConfigError(f"{where}: extra.api_key must be a string (the CLOVA Studio API key nv-...)")
    if auth_type != "legacy_keys" and "apigw_api_key" in extras:
        raise ClovaStudioConfigError(f"{where}: extra.apigw_api_key is only used with auth_type legacy_keys")
    if auth_type == "apigw_v2":
        if not login:
            raise ClovaStudioConfigError(f"{where}: auth_type apigw_v2 needs the NCP access key in 'login'")
        if not password:
            raise ClovaStudioConfigError(f"{where}: auth_type apigw_v2 needs the NCP secret key in 'password'")
        bearer = BearerAuth(api_key) if api_key else None
        return Credentials(bearer=bearer, signature=SignatureV2Auth(login, password)), api_key or login
    if auth_type == "bearer":
        if login:
            raise ClovaStudioConfigError(
                f"{where}: 'login' is set but auth_type is bearer; clear login, or, to sign the tuning API with "
                "IAM keys, put the access key in login, the secret key in password and the API key in "
                "extra.api_key (and drop extra.auth_type)"
            )
        if password and api_key:
            raise ClovaStudioConfigError(
                f"{where}: the API key is given twice ('password' and extra.api_key); keep one of them"
            )
        key = password or api_key
        if not key:
            raise ClovaStudioConfigError(f"{where}: auth_type bearer needs the CLOVA Studio API key in 'password'")
        return Credentials(bearer=BearerAuth(key)), key
    gateway_key = extras.get("apigw_api_key")
    if not password:
        raise ClovaStudioConfigError(f"{where}: auth_type legacy_keys needs the CLOVA Studio API key in 'password'")
    if not gateway_key:
        raise ClovaStudioConfigError(f"{where}: auth_type legacy_keys needs extra.apigw_api_key")
    if login:
        raise ClovaStudioConfigError(
            f"{where}: 'login' is set but auth_type is legacy_keys, which does not use it; clear login, "
            "or set extra.auth_type=apigw_v2 to sign with access key (login) + secret key (password)"
        )
    if api_key:
        raise ClovaStudioConfigError(
            f"{where}: extra.api_key is set next to legacy app keys; an API key works for every API, so the "
            "legacy keys would never be used. Fix: put the API key in 'password' and drop extra.auth_type "
            "and extra.apigw_api_key, or drop extra.api_key"
        )
    return Credentials(legacy=LegacyKeyAuth(password, str(gateway_key))), password
