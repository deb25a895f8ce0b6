"""Which auth scheme and which host each CLOVA Studio call uses: the one place for that rule.

CLOVA Studio documents each scheme for some endpoint families only
(``shared/clova-studio-api.md``, "Hosts and authentication"):

* an API key (``Authorization: Bearer``) works for every API, on the stream host;
* NCP IAM keys (API Gateway signature v2) are documented for the tuning API only, on the
  API Gateway host;
* the legacy app key pair is documented for chat v1 and its token counter only, under
  ``/testapp`` or ``/serviceapp``, on the API Gateway host.

A connection may hold an API key next to IAM keys; a call then uses the first scheme of its
family that the connection has (tuning is signed, chat goes with the key). A call that no
held scheme may make is refused here, before anything is sent, naming the field to add.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from airflow_provider_clova.client.errors import ClovaStudioConfigError

if TYPE_CHECKING:
    from airflow_provider_clova.client.auth import Credentials

#: The three documented schemes: an API key (Bearer), NCP IAM keys (signature v2), legacy app keys.
Scheme = Literal["bearer", "apigw_v2", "legacy_keys"]

#: ``tuning``: the tuning API; ``chat_v1``: chat v1 (base and tuned) and the v1 token counter;
#: ``other``: everything else (chat v3, the v3 token counter, embeddings, the OpenAI-compatible API).
Family = Literal["tuning", "chat_v1", "other"]

#: The documented schemes of each family, in order of preference.
FAMILY_SCHEMES: dict[Family, tuple[Scheme, ...]] = {
    "tuning": ("apigw_v2", "bearer"),
    "chat_v1": ("bearer", "legacy_keys"),
    "other": ("bearer",),
}

STREAM_HOST = "https://clovastudio.stream.ntruss.com"
APIGW_HOST = "https://clovastudio.apigw.ntruss.com"
#: The host a connection without one talks to (every scheme finds its documented host from it).
DEFAULT_HOST = STREAM_HOST
#: Hosts that are NAVER's public service: each scheme goes to the host documented for it.
PUBLIC_HOSTS = frozenset({urlsplit(STREAM_HOST).hostname, urlsplit(APIGW_HOST).hostname})

_ADD_API_KEY = {
    "apigw_v2": (
        "add the CLOVA Studio API key (nv-...) to the connection as extra.api_key; "
        "IAM keys (login + password) sign the tuning API only"
    ),
    "legacy_keys": (
        "use a CLOVA Studio API key (nv-...): put it in 'password' and remove extra.auth_type=legacy_keys "
        "and extra.apigw_api_key; legacy app keys work for chat v1 and its token counter only"
    ),
}


def choose_scheme(family: Family, credentials: Credentials, *, what: str, forced: Scheme | None = None) -> Scheme:
    """The scheme a call of ``family`` uses, or ``ClovaStudioConfigError`` saying what to add."""
    allowed = FAMILY_SCHEMES[family]
    if forced is not None:
        if forced not in allowed or credentials.get(forced) is None:
            raise ClovaStudioConfigError(f"{what}: cannot be sent with {forced} credentials")
        return forced
    for scheme in allowed:
        if credentials.get(scheme) is not None:
            return scheme
    held = credentials.schemes[0] if credentials.schemes else None
    fix = _ADD_API_KEY.get(held or "", "add a CLOVA Studio API key (nv-...) to the connection's 'password'")
    documented = " or ".join(allowed)
    raise ClovaStudioConfigError(
        f"{what}: CLOVA Studio documents only {documented} auth for this API, and the connection has "
        f"{held or 'no credentials'}; nothing was sent. Fix: {fix}"
    )


def scheme_hosts(base_url: str, *, explicit: bool) -> dict[Scheme, str]:
    """The base URL of each scheme.

    No host on the connection, or one of NAVER's public hosts: Bearer calls go to the stream
    host and signed or legacy calls to the API Gateway host, as documented. Any other host (the
    emulator, a proxy, the public-sector region) receives every call.
    """
    if not explicit or urlsplit(base_url).hostname in PUBLIC_HOSTS:
        return {"bearer": STREAM_HOST, "apigw_v2": APIGW_HOST, "legacy_keys": APIGW_HOST}
    return {"bearer": base_url, "apigw_v2": base_url, "legacy_keys": base_url}
