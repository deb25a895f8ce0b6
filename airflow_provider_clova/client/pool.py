"""Shared TLS and pooled clients: what lets a thousand waits live in one triggerer.

Building a verifying SSL context loads the whole CA bundle (``load_verify_locations``, tens of
milliseconds and ~800 KB); doing it per client froze a triggerer for half a minute when a
thousand waits started together. So:

* **One SSL context per process and TLS setting** (``ssl_context``), built lazily the first time
  it is needed, honouring ``extra.verify``: ``true`` (certifi's bundle, or ``SSL_CERT_FILE`` /
  ``SSL_CERT_DIR`` as httpx reads them), ``false``, or the absolute path of a CA bundle file or
  directory. An ``http://`` base URL loads no CA at all: it gets a context that trusts nothing,
  so plain HTTP never pays for TLS and anything that would use TLS through it fails closed.
* **Pooled clients shared per connection settings**: one sync client per process
  (``shared_client``, workers) and one async client per (settings, event loop)
  (``ashared_client``, the triggerer runs every trigger in one loop). On the event loop the
  first SSL context is built in a thread (``asyncio.to_thread``), once, however many waits ask
  for it at the same moment, together with the import of httpcore's async backend (anyio) that
  the first request would otherwise do on the loop; creating a client afterwards is cheap and
  never blocks the loop.
* **Closed when the loop ends**: each loop with pooled clients gets one keeper task that closes
  them when it is cancelled, which ``asyncio.run`` and ``asyncio.Runner.close`` (the triggerer,
  a test's event loop) do to every task still pending at the end. A loop dropped without that
  takes its clients with it (the pool holds loops weakly). Sync clients close at process exit;
  a forked child forgets (never closes) the ones it inherited, so the parent's sockets stay
  intact.
* **Nothing about a connection's secrets is shared**: the key is every non-secret setting plus
  an HMAC of each secret the auth object holds, under a random key made per process. Two
  connections with different credentials never share a client, an auth object or a TCP
  connection; the key holds no secret, nor a digest of one that means anything outside this
  process. A pooled client's ``close()`` / ``aclose()`` is a no-op: its users never own it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import hashlib
import hmac
import importlib
import os
import secrets
import ssl
import sys
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx

from airflow_provider_clova.client.auth import Credentials
from airflow_provider_clova.client.errors import ClovaStudioConfigError

if TYPE_CHECKING:
    from airflow_provider_clova.client.client import AsyncClovaStudioClient, ClovaStudioClient
    from airflow_provider_clova.client.config import ClientConfig

#: What ``ssl_context`` is keyed by: the ``verify`` setting, or ``None`` for plain HTTP.
TlsKey = bool | str | None
ClientKey = tuple[str, ...]

_PROCESS_KEY = secrets.token_bytes(32)
_tls_lock = threading.Lock()
_tls: dict[TlsKey, ssl.SSLContext] = {}


# -- TLS ---------------------------------------------------------------------------------------
def tls_key(config: ClientConfig) -> TlsKey:
    """``None`` for an ``http://`` base URL (no TLS needed), else the ``verify`` setting."""
    return None if config.base_url.startswith("http://") else config.verify


def _build_ssl_context(key: TlsKey) -> ssl.SSLContext:
    if key is None:
        # Loads nothing: verification stays required, so a TLS handshake through it fails.
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if isinstance(key, bool):
        return httpx.create_ssl_context(verify=key)
    if os.path.isdir(key):
        return ssl.create_default_context(capath=key)
    if os.path.isfile(key):
        try:
            return ssl.create_default_context(cafile=key)
        except ssl.SSLError as exc:
            raise ClovaStudioConfigError(
                f"connection extra.verify: {key} is not a PEM CA bundle ({exc.reason}). "
                "Fix: point extra.verify at the PEM file (or c_rehash'ed directory) of the CA that signs the host"
            ) from None
    raise ClovaStudioConfigError(
        f"connection extra.verify: CA bundle {key} does not exist on this machine. "
        "Fix: install the bundle at that path on every worker and triggerer, or set extra.verify to true"
    )


def ssl_context(key: TlsKey) -> ssl.SSLContext:
    """The process's SSL context for ``key`` (see ``tls_key``), built on first use."""
    context = _tls.get(key)
    if context is None:
        with _tls_lock:
            context = _tls.get(key)
            if context is None:
                context = _tls[key] = _build_ssl_context(key)
    return context


def ready_ssl_context(key: TlsKey) -> ssl.SSLContext | None:
    """The context for ``key`` if it has been built already, else None (never builds)."""
    return _tls.get(key)


# -- keys --------------------------------------------------------------------------------------
def _secret_parts(auth: Any, depth: int = 0) -> Iterator[bytes]:
    """Every string an auth object holds (recursing into auth objects it wraps), by name."""
    yield type(auth).__qualname__.encode()
    for name, value in sorted(vars(auth).items()):
        values = value if isinstance(value, (tuple, list)) else (value,)
        for item in values:
            if isinstance(item, str):
                item = item.encode("utf-8")
            if isinstance(item, bytes):
                yield name.encode() + b"=" + item
            elif isinstance(item, httpx.Auth) and depth < 4:
                yield from _secret_parts(item, depth + 1)


def credential_key(auth: httpx.Auth) -> str:
    """An HMAC of an auth object's secrets under a per-process random key.

    Equal for two auth objects built from the same credentials in this process, different
    for any other credentials; useless outside the process, so it leaks nothing if printed.
    """
    mac = hmac.new(_PROCESS_KEY, digestmod=hashlib.sha256)
    for part in _secret_parts(auth):
        mac.update(len(part).to_bytes(4, "big"))
        mac.update(part)
    return mac.hexdigest()


def client_key(config: ClientConfig) -> ClientKey:
    """What a pooled client is shared by: every setting, with auth objects as their ``credential_key``.

    A connection's ``Credentials`` hold one auth object per scheme; each is keyed by its secrets
    (the repr shows only which schemes there are), so two connections share a client only when
    every key is the same.
    """
    parts = []
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if isinstance(value, httpx.Auth):
            text = credential_key(value)
        elif isinstance(value, Credentials):
            held = ((scheme, value.get(scheme)) for scheme in value.schemes)
            text = ",".join(f"{scheme}:{credential_key(auth)}" for scheme, auth in held if auth is not None)
        else:
            text = repr(value)
        parts.append(f"{item.name}={text}")
    return tuple(parts)


# -- sync: one client per process and settings -------------------------------------------------
_sync_lock = threading.Lock()
_sync_clients: dict[ClientKey, ClovaStudioClient] = {}
_inherited: list[Any] = []  # clients a forked child got from its parent: kept, never closed


def shared_client(config: ClientConfig) -> ClovaStudioClient:
    """The process's pooled sync client for these settings (made on first use)."""
    # lazy: breaks the import cycle (client.client imports this module for its TLS context)
    from airflow_provider_clova.client.client import ClovaStudioClient

    key = client_key(config)
    client = _sync_clients.get(key)
    if client is None:
        with _sync_lock:
            client = _sync_clients.get(key)
            if client is None:
                client = ClovaStudioClient(config, ssl_context=ssl_context(tls_key(config)))
                client._pooled = True
                _sync_clients[key] = client
    return client


def close_shared_clients() -> None:
    """Close every pooled sync client of this process (at exit, or in tests)."""
    with _sync_lock:
        clients = list(_sync_clients.values())
        _sync_clients.clear()
    for client in clients:
        client._close_pooled()


def _forget_after_fork() -> None:
    # The child shares the parent's sockets: closing them here would end the parent's
    # connections (and a TLS close_notify would corrupt its sessions), so only forget them.
    global _sync_lock
    _sync_lock = threading.Lock()
    _inherited.append(dict(_sync_clients))
    _sync_clients.clear()
    _loop_pools.clear()


atexit.register(close_shared_clients)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


# -- async: one client per (settings, event loop) ----------------------------------------------
@dataclasses.dataclass
class _LoopPool:
    clients: dict[ClientKey, AsyncClovaStudioClient] = dataclasses.field(default_factory=dict)
    tls_builds: dict[TlsKey, asyncio.Future[ssl.SSLContext]] = dataclasses.field(default_factory=dict)
    keeper: asyncio.Task[None] | None = None


_loop_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPool] = weakref.WeakKeyDictionary()


async def _keep(pool: _LoopPool) -> None:
    """Sleeps until the loop's end cancels it, then closes the loop's pooled clients."""
    loop = asyncio.get_running_loop()
    try:
        await loop.create_future()
    finally:
        _loop_pools.pop(loop, None)
        clients = list(pool.clients.values())
        pool.clients.clear()
        for client in clients:
            await client._aclose_pooled()


def _pool_of(loop: asyncio.AbstractEventLoop) -> _LoopPool:
    pool = _loop_pools.get(loop)
    if pool is None:
        pool = _loop_pools[loop] = _LoopPool()
        pool.keeper = loop.create_task(_keep(pool), name="clova-studio-client-pool")
    return pool


#: What httpcore imports on a process's first async request (~80 ms): done in the same thread.
_ASYNC_BACKEND_MODULES = ("sniffio", "anyio", "anyio._backends._asyncio", "httpcore._backends.anyio")


_backend_warm = False


def _prepare(key: TlsKey) -> ssl.SSLContext:
    """Everything slow a first async client needs, run in a worker thread: the SSL context and
    the async network backend httpcore would otherwise import on the loop at the first request."""
    global _backend_warm
    for module in _ASYNC_BACKEND_MODULES:
        with contextlib.suppress(ImportError):  # optional: without sniffio httpcore assumes asyncio
            importlib.import_module(module)
    _backend_warm = True
    return ssl_context(key)


async def _assl_context(pool: _LoopPool, key: TlsKey) -> ssl.SSLContext:
    """``ssl_context(key)`` built in a thread the first time; concurrent callers share one build."""
    context = ready_ssl_context(key)
    if context is not None and (_backend_warm or all(module in sys.modules for module in _ASYNC_BACKEND_MODULES)):
        return context
    build = pool.tls_builds.get(key)
    if build is None:
        build = pool.tls_builds[key] = asyncio.ensure_future(asyncio.to_thread(_prepare, key))
        build.add_done_callback(lambda _: pool.tls_builds.pop(key, None))
    return await asyncio.shield(build)


async def ashared_client(config: ClientConfig) -> AsyncClovaStudioClient:
    """The running loop's pooled async client for these settings (made on first use)."""
    # lazy: breaks the import cycle (client.client imports this module for its TLS context)
    from airflow_provider_clova.client.client import AsyncClovaStudioClient

    pool = _pool_of(asyncio.get_running_loop())
    key = client_key(config)
    client = pool.clients.get(key)
    if client is not None:
        return client
    context = await _assl_context(pool, tls_key(config))
    client = pool.clients.get(key)  # made by another caller while this one waited
    if client is None:
        client = AsyncClovaStudioClient(config, ssl_context=context)
        client._pooled = True
        pool.clients[key] = client
    return client


def loop_clients() -> list[AsyncClovaStudioClient]:
    """The running loop's pooled clients (for tests and the bench)."""
    pool = _loop_pools.get(asyncio.get_running_loop())
    return list(pool.clients.values()) if pool else []
