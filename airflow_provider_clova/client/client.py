"""CLOVA Studio clients on httpx: ``ClovaStudioClient`` (sync) and ``AsyncClovaStudioClient``.

Both run the same ``Call`` values (``calls.py``) through the same attempt logic: the scheme
and host the call's endpoint family is documented for (``routing.py``; a call the
connection's credentials cannot make fails before anything is sent), auth by ``httpx.Auth``
(fresh signature per attempt), one request id per logical call kept across
retries, the envelope parser, the tenacity retry policy, and, for chat, the shared QPM/TPM
limiter (chat and embeddings). Each client holds one pooled httpx client; use it as a context manager or call
``close()``. Clients handed out by ``client.pool`` (the hook's ``get_conn`` / ``aget_conn``) are
shared per connection settings (and event loop) and closed by the pool: their ``close()`` is a
no-op. A client built directly uses the process's shared SSL context (see ``client.pool``).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import httpx
import tenacity

from airflow_provider_clova import __version__
from airflow_provider_clova.client import calls
from airflow_provider_clova.client.budget_store import store_limiter
from airflow_provider_clova.client.calls import Call, TuningDataset
from airflow_provider_clova.client.config import ClientConfig
from airflow_provider_clova.client.embeddings import DEFAULT_EMBEDDING_MODEL
from airflow_provider_clova.client.envelope import parse_response
from airflow_provider_clova.client.errors import (
    ClovaStudioApiError,
    ClovaStudioConfigError,
    ClovaStudioNotFoundError,
    ClovaStudioRateLimitError,
    ClovaStudioResponseError,
    ClovaStudioTimeoutError,
    ClovaStudioTransportError,
    ClovaStudioUnknownOutcomeError,
)
from airflow_provider_clova.client.limiter import shared_limiter
from airflow_provider_clova.client.limits import lookup_budget
from airflow_provider_clova.client.models import ChatResult, EmbeddingResult, TuningTask, TuningTaskPage
from airflow_provider_clova.client.pool import ssl_context as shared_context
from airflow_provider_clova.client.pool import tls_key
from airflow_provider_clova.client.retry import retry_kwargs, server_cannot_have_acted, should_retry
from airflow_provider_clova.client.routing import choose_scheme
from airflow_provider_clova.client.tokens import actual_request_cost

REQUEST_ID_HEADER = "X-NCP-CLOVASTUDIO-REQUEST-ID"
LIST_PAGE_SIZE = 50
#: Joined request URLs kept per client (paths without a query string).
_URL_CACHE_SIZE = 256
#: Connections per client. A shared client serves every wait on a connection; idle ones are
#: kept up to the same cap (fewer TCP/TLS set-ups), and the expiry stays httpx's 5 s, inside
#: common servers' keep-alive timeouts. Small on purpose: httpcore's pool does work
#: proportional to connections x queued requests on every request, so a big pool with a
#: queue costs more CPU than it saves. The async client queues its callers in front of the
#: pool instead (``_slots``), where waiting costs nothing.
MAX_CONNECTIONS = 16
POOL_LIMITS = httpx.Limits(
    max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS, keepalive_expiry=5.0
)


def new_request_id() -> str:
    """32 random hex digits, sent as X-NCP-CLOVASTUDIO-REQUEST-ID (tracing only)."""
    return os.urandom(16).hex()


def translate_transport_error(exc: httpx.HTTPError, call: Call, request_id: str) -> ClovaStudioApiError:
    """Map an httpx failure to our error classes, noting whether the request may have arrived."""
    where: dict[str, Any] = {"method": call.method, "path": call.path, "request_id": request_id}
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return ClovaStudioTransportError(f"could not connect: {exc}", request_sent=False, **where)
    if isinstance(exc, httpx.PoolTimeout):
        return ClovaStudioTransportError(f"no free connection: {exc}", request_sent=False, **where)
    if isinstance(exc, httpx.TimeoutException):
        return ClovaStudioTimeoutError(f"no answer in time ({type(exc).__name__})", **where)
    return ClovaStudioTransportError(f"connection failed: {type(exc).__name__}: {exc}", request_sent=True, **where)


def finalize_error(exc: ClovaStudioApiError, call: Call) -> ClovaStudioApiError:
    """A failed create whose effect is unknown becomes ``ClovaStudioUnknownOutcomeError``."""
    if call.idempotent or server_cannot_have_acted(exc) or not exc.retryable:
        return exc
    return ClovaStudioUnknownOutcomeError(
        f"{call.route} may or may not have taken effect ({exc.service_message}); "
        "list tuning tasks to reconcile before creating again",
        retry_after=getattr(exc, "retry_after", None),
        http_status=exc.http_status,
        code=exc.code,
        request_id=exc.request_id,
        method=call.method,
        path=call.path,
    )


def limiter_for(config: ClientConfig, budget_model: str | None) -> Any:
    """The limiter that paces calls on ``budget_model`` for this connection (None: not paced).

    One per account, model and app type in the process, or the shared budget store's when the
    connection has ``extra.budget_store``; the connection's pool share scales it.
    """
    if budget_model is None:
        return None
    budget = lookup_budget(budget_model, config.app_type, config.limits)
    key = (config.account_id, budget_model, config.app_type)
    if config.budget_store is not None:
        return store_limiter(
            key,
            budget,
            config.budget_store,
            window_seconds=config.rate_window_seconds,
            fallback_share=config.rate_share,
        )
    return shared_limiter(key, budget, window_seconds=config.rate_window_seconds, share=config.rate_share)


class Metering:
    """The limiter side of one attempt: reserve before sending, settle or release after.

    The client meters its own calls with it, and so does the ``openai`` SDK's transport
    (``client/openai_pacing.py``): one rule for what a sent, refused or failed request costs.
    """

    def __init__(self, limiter: Any, reserved_output_tokens: int, *, deferred: bool = False) -> None:
        self.limiter = limiter
        self.reserved_output_tokens = reserved_output_tokens
        self.reservation: Any = None
        #: Async callers: ``succeeded``/``failed`` only decide; ``aflush`` then tells the limiter,
        #: awaited (the budget store's corrections are round trips that must not block the loop).
        self.deferred = deferred
        self._pending: list[tuple[str, tuple[Any, ...]]] = []

    def reserve(self, cost: int) -> None:
        """Wait for a place in the budget (no-op when unpaced)."""
        if self.limiter is not None:
            self.reservation = self.limiter.acquire(cost)

    async def areserve(self, cost: int) -> None:
        if self.limiter is not None:
            self.reservation = await self.limiter.aacquire(cost)

    def succeeded(self, raw: Any) -> None:
        """Settle at the real charge read from the answer ``raw`` (its ``result``, or an OpenAI body)."""
        if self.reservation is None:
            return
        # The real charge is the reported input tokens + the requested maxTokens. An answer
        # without usage keeps the estimate: settling at 0 + maxTokens would under-charge.
        actual = actual_request_cost(raw, self.reserved_output_tokens) if isinstance(raw, Mapping) else None
        if actual is not None:
            self._tell("settle", actual)

    def failed(self, exc: ClovaStudioApiError) -> None:
        if self.reservation is None:
            return
        if isinstance(exc, ClovaStudioRateLimitError) or server_cannot_have_acted(exc):
            # Refused or never arrived: the server did not count it.
            self._tell("release")
            if isinstance(exc, ClovaStudioRateLimitError) and exc.is_budget:
                # The refused reservation lets the limiter tell a new 429 episode from late
                # reports of one it already slowed down for.
                self._tell("on_rate_limited", exc.retry_after)
        # Otherwise keep the estimate: the server may have counted the request.

    def _tell(self, what: str, *args: Any) -> None:
        """``settle``/``release`` the reservation or report ``on_rate_limited`` now, or later in
        ``aflush`` through their awaited twins (``asettle``, ``arelease``, ``aon_rate_limited``)."""
        if self.deferred:
            self._pending.append((what, args))
            return
        if what == "on_rate_limited":
            self.limiter.on_rate_limited(*args, reservation=self.reservation)
        else:
            getattr(self.reservation, what)(*args)

    async def aflush(self) -> None:
        """Tell the limiter, awaited and in order, what ``succeeded``/``failed`` decided (deferred)."""
        pending, self._pending = self._pending, []
        for what, args in pending:
            if what == "on_rate_limited":
                await self.limiter.aon_rate_limited(*args, reservation=self.reservation)
            else:
                await getattr(self.reservation, "a" + what)(*args)


class _BaseClient:
    """Configuration, limiter lookup and the per-attempt steps shared by both clients."""

    _http: Any  # the subclass's httpx client

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._task_models: dict[str, str] = {}
        self._urls: dict[str, httpx.URL] = {}
        #: Set by ``client.pool`` for shared clients: the pool closes them, their users don't.
        self._pooled = False

    @property
    def is_closed(self) -> bool:
        """Whether the HTTP connections are closed (a pooled client: when its pool closed it)."""
        return bool(self._http.is_closed)

    def _client_kwargs(self, ssl_context: ssl.SSLContext | None) -> dict[str, Any]:
        if ssl_context is None:
            ssl_context = shared_context(tls_key(self.config))
        return {
            "timeout": httpx.Timeout(self.config.timeout, connect=min(10.0, self.config.timeout)),
            # A context, never True/False: httpx would build (and load a CA bundle into) a new one.
            "verify": ssl_context,
            "limits": POOL_LIMITS,
            "headers": {"User-Agent": f"airflow-provider-clova/{__version__}", "Accept": "application/json"},
        }

    def _limiter_for(self, call: Call) -> Any:
        return limiter_for(self.config, call.budget_model)

    def _metering(self, call: Call, *, deferred: bool = False) -> Metering:
        return Metering(self._limiter_for(call), call.reserved_output_tokens, deferred=deferred)

    def _target(self, call: Call) -> tuple[str, httpx.Auth]:
        """The URL and auth ``call`` is sent with; raises (nothing sent) when no held scheme may make it."""
        config = self.config
        scheme = choose_scheme(call.family, config.credentials, what=f"{call.method} {call.path}", forced=call.scheme)
        auth = config.credentials.get(scheme)
        assert auth is not None  # choose_scheme returns a held scheme
        prefix = config.legacy_prefix if scheme == "legacy_keys" else ""
        return config.url_for(scheme) + prefix + call.path, auth

    def _deadline_reached(self, call: Call, request_id: str, deadline: float | None) -> ClovaStudioTimeoutError | None:
        """The error for an attempt that would start at or after the caller's deadline."""
        if deadline is None or time.monotonic() < deadline:
            return None
        return ClovaStudioTimeoutError(
            "the caller's deadline was reached before this attempt",
            method=call.method,
            path=call.path,
            request_id=request_id,
        )

    @staticmethod
    def _bounded(request: httpx.Request, timeout: float, deadline: float | None) -> httpx.Request:
        """An attempt may not wait for its answer past the caller's deadline."""
        if deadline is not None:
            left = max(0.001, min(timeout, deadline - time.monotonic()))
            request.extensions = {**request.extensions, "timeout": httpx.Timeout(left).as_dict()}
        return request

    def _build(self, http: httpx.Client | httpx.AsyncClient, call: Call, target: str, request_id: str) -> httpx.Request:
        headers = {REQUEST_ID_HEADER: request_id}
        if call.params:
            return http.build_request(call.method, target, params=dict(call.params), json=call.json, headers=headers)
        # Parsing the URL costs more than signing; a poll loop asks for the same few URLs over
        # and over, so keep them parsed.
        url = self._urls.get(target)
        if url is None:
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            url = self._urls[target] = httpx.URL(target)
        return http.build_request(call.method, url, json=call.json, headers=headers)

    def _finish(self, call: Call, metering: Metering, response: httpx.Response, request_id: str) -> Any:
        try:
            body = parse_response(response, request_id=request_id, max_retry_after=self.config.rate_window_seconds)
            result = call.parse(body)
        except ClovaStudioApiError as exc:
            metering.failed(exc)
            raise finalize_error(exc, call) from None
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError, RecursionError) as exc:
            # A 2xx whose ``result`` is missing or not the documented shape: a typed error
            # (retried for reads, an unknown outcome for a create), not a bare TypeError.
            error = ClovaStudioResponseError(
                f"unexpected answer for {call.route}: {type(exc).__name__}: {exc}",
                http_status=response.status_code,
                request_id=request_id,
                method=call.method,
                path=call.path,
            )
            metering.failed(error)
            raise finalize_error(error, call) from exc
        metering.succeeded(getattr(result, "raw", None))
        return result

    def _transport_failed(self, call: Call, metering: Metering, exc: httpx.HTTPError, request_id: str) -> Exception:
        error = translate_transport_error(exc, call, request_id)
        metering.failed(error)
        return finalize_error(error, call)

    def _chat_call(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str,
        tuning_task_id: str | None,
        params: Mapping[str, Any],
    ) -> Call:
        return calls.chat_completion(
            messages, model=model, task_id=tuning_task_id, params=params, models=self.config.models
        )

    def _tuning_body(self, model: str, dataset: TuningDataset | None, fields: Mapping[str, Any]) -> dict[str, Any]:
        return calls.tuning_body(model, dataset, fields, models=self.config.models)

    def _count_call(self, messages: Sequence[Mapping[str, Any]], model: str) -> Call:
        return calls.count_tokens(messages, model=model, models=self.config.models)

    def _remember(self, task: TuningTask) -> TuningTask:
        if task.model:
            self._task_models[task.id] = task.model
        return task

    def _known_base_model(self, model: str | None, tuning_task_id: str | None) -> str | None:
        """The model a chat call runs on when it is known without a request; None: fetch the task.

        Shared by both clients' ``base_model``, which differ only in how they fetch.
        """
        if model:
            return str(model)
        if not tuning_task_id:
            raise ClovaStudioConfigError(
                "chat: no model and no tuned task given. Fix: pass model= (a base model such as HCX-005) "
                "or the id of a tuned task"
            )
        return self._task_models.get(str(tuning_task_id))


def base_model_of(task: TuningTask) -> str:
    """The base model a tuned task was trained from: its API generation (v1/v3) and its budget."""
    if not task.model:
        raise ClovaStudioConfigError(
            f"tuning task {task.id} reports no base model (its `model` field is empty), so the provider "
            "cannot tell which API and budget its chat uses. Fix: pass model= naming the base model it was "
            "tuned from, e.g. model='HCX-005'"
        )
    return task.model


class ClovaStudioClient(_BaseClient):
    """Synchronous client (operators, the hook, scripts)."""

    _http: httpx.Client

    def __init__(
        self,
        config: ClientConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(config)
        self._http = httpx.Client(transport=transport, **self._client_kwargs(ssl_context))

    def __enter__(self) -> ClovaStudioClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections; a no-op on a pooled (shared) client."""
        if not self._pooled:
            self._http.close()

    def _close_pooled(self) -> None:
        self._http.close()

    def call(self, call: Call, *, deadline: float | None = None) -> Any:
        """Run one logical call with retries; the request id stays the same across attempts.

        The first attempt runs outside tenacity (most calls succeed at once, and building the
        retry loop costs more than signing the request). A retryable failure is replayed as
        the loop's first attempt, so attempt counting, ``Retry-After``, backoff and the
        elapsed-time bound behave exactly as if tenacity had run it. ``deadline``
        (``time.monotonic`` scale) bounds every attempt: none starts after it, none waits for
        its answer past it, and the retries stop before a backoff that would cross it.
        """
        target = self._target(call)
        request_id = new_request_id()
        started = time.monotonic()
        try:
            return self._attempt(call, target, request_id, deadline)
        except Exception as exc:
            if not should_retry(exc, self.config.retry, idempotent=call.idempotent):
                raise
            first_failure: Exception | None = exc
        result: Any = None
        kwargs = retry_kwargs(self.config.retry, idempotent=call.idempotent, started_at=started, deadline=deadline)
        for attempt in tenacity.Retrying(**kwargs):
            with attempt:
                if first_failure is not None:
                    failure, first_failure = first_failure, None
                    raise failure
                result = self._attempt(call, target, request_id, deadline)
        return result

    def _attempt(
        self, call: Call, target: tuple[str, httpx.Auth], request_id: str, deadline: float | None = None
    ) -> Any:
        late = self._deadline_reached(call, request_id, deadline)
        if late is not None:
            raise late
        metering = self._metering(call)
        metering.reserve(call.estimated_cost)
        url, auth = target
        try:
            request = self._bounded(self._build(self._http, call, url, request_id), self.config.timeout, deadline)
            response = self._http.send(request, auth=auth)
        except httpx.HTTPError as exc:
            raise self._transport_failed(call, metering, exc, request_id) from exc
        return self._finish(call, metering, response, request_id)

    # -- tuning -------------------------------------------------------------------------
    def create_tuning_task(self, model: str, dataset: TuningDataset | None = None, **fields: Any) -> TuningTask:
        """POST /tuning/v2/tasks. Raises ClovaStudioUnknownOutcomeError when it cannot tell if it worked."""
        return self._remember(self.call(calls.create_tuning_task(self._tuning_body(model, dataset, fields))))

    def get_tuning_task(self, task_id: str, *, deadline: float | None = None) -> TuningTask:
        """GET one task; ``deadline`` (``time.monotonic`` scale) bounds the call and its retries."""
        return self._remember(self.call(calls.get_tuning_task(task_id), deadline=deadline))

    def list_tuning_tasks_page(self, page: int = 0, size: int = LIST_PAGE_SIZE) -> TuningTaskPage:
        page_result: TuningTaskPage = self.call(calls.list_tuning_tasks_page(page, size))
        return page_result

    def list_tuning_tasks(self, *, page_size: int = LIST_PAGE_SIZE) -> Iterator[TuningTask]:
        """Every task of the account, fetching page after page as the caller iterates."""
        page = 0
        while True:
            result = self.list_tuning_tasks_page(page, page_size)
            yield from result.tasks
            page += 1
            if page >= result.total_pages or not result.tasks:
                return

    def delete_tuning_task(self, task_id: str, *, missing_ok: bool = True) -> bool:
        """Delete (and so stop) a task. Returns False when it was already gone and missing_ok."""
        try:
            self.call(calls.delete_tuning_task(task_id))
        except ClovaStudioNotFoundError:
            if not missing_ok:
                raise
            return False
        return True

    # -- chat ---------------------------------------------------------------------------
    def chat_completion(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str | None = None,
        task_id: str | None = None,
        **params: Any,
    ) -> ChatResult:
        """Chat with a base model, or with a tuned task (its base model picks v1 or v3 and the budget)."""
        model = self.base_model(model, task_id)
        result: ChatResult = self.call(self._chat_call(messages, model, task_id, params))
        return result

    def base_model(self, model: str | None = None, tuning_task_id: str | None = None) -> str:
        """``model`` when given, else the base model of the tuned task (fetched once per client).

        Raises ``ClovaStudioConfigError`` when neither is given or the task reports no model.
        """
        known = self._known_base_model(model, tuning_task_id)
        return known if known is not None else base_model_of(self.get_tuning_task(str(tuning_task_id)))

    def count_tokens(self, messages: Sequence[Mapping[str, Any]], model: str) -> int:
        count: int = self.call(self._count_call(messages, model))
        return count

    # -- embeddings -------------------------------------------------------------------------
    def embed(self, text: str, model: str = DEFAULT_EMBEDDING_MODEL) -> EmbeddingResult:
        """The embedding of ``text`` (v2 by default; ``clir-emb-dolphin``, ``clir-sts-dolphin``),
        paced by the model's budget. A text proven over the model's token limit raises
        ``ClovaStudioConfigError`` before anything is sent."""
        result: EmbeddingResult = self.call(calls.embedding(text, model=model))
        return result


class AsyncClovaStudioClient(_BaseClient):
    """Asynchronous twin for triggers and concurrent batch work; never blocks the event loop."""

    _http: httpx.AsyncClient

    def __init__(
        self,
        config: ClientConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(config)
        self._http = httpx.AsyncClient(transport=transport, **self._client_kwargs(ssl_context))
        # At most one request per pooled connection reaches httpcore; the rest wait here.
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def __aenter__(self) -> AsyncClovaStudioClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections; a no-op on a pooled (shared) client."""
        if not self._pooled:
            await self._http.aclose()

    async def _take_slot(self) -> None:
        """A free connection slot, waiting at most the connect timeout (as httpx's pool would)."""
        if not self._slots.locked():
            await self._slots.acquire()
            return
        wait = min(10.0, self.config.timeout)
        try:
            if sys.version_info >= (3, 11):
                async with asyncio.timeout(wait):
                    await self._slots.acquire()
            else:  # pragma: no cover - Python 3.10
                await asyncio.wait_for(self._slots.acquire(), wait)
        except asyncio.TimeoutError:
            raise httpx.PoolTimeout(f"all {MAX_CONNECTIONS} connections busy for {wait:g} s") from None

    async def _aclose_pooled(self) -> None:
        await self._http.aclose()

    async def call(self, call: Call, *, deadline: float | None = None) -> Any:
        """As ``ClovaStudioClient.call``: first attempt outside tenacity, a failure replayed into it."""
        target = self._target(call)
        request_id = new_request_id()
        started = time.monotonic()
        try:
            return await self._attempt(call, target, request_id, deadline)
        except Exception as exc:
            if not should_retry(exc, self.config.retry, idempotent=call.idempotent):
                raise
            first_failure: Exception | None = exc
        result: Any = None
        kwargs = retry_kwargs(self.config.retry, idempotent=call.idempotent, started_at=started, deadline=deadline)
        async for attempt in tenacity.AsyncRetrying(**kwargs):
            with attempt:
                if first_failure is not None:
                    failure, first_failure = first_failure, None
                    raise failure
                result = await self._attempt(call, target, request_id, deadline)
        return result

    async def _attempt(
        self, call: Call, target: tuple[str, httpx.Auth], request_id: str, deadline: float | None = None
    ) -> Any:
        late = self._deadline_reached(call, request_id, deadline)
        if late is not None:
            raise late
        metering = self._metering(call, deferred=True)
        await metering.areserve(call.estimated_cost)
        url, auth = target
        try:
            await self._take_slot()
            try:
                request = self._bounded(self._build(self._http, call, url, request_id), self.config.timeout, deadline)
                response = await self._http.send(request, auth=auth)
            finally:
                self._slots.release()
        except httpx.HTTPError as exc:
            error = self._transport_failed(call, metering, exc, request_id)
            await metering.aflush()
            raise error from exc
        try:
            return self._finish(call, metering, response, request_id)
        finally:
            await metering.aflush()

    async def create_tuning_task(self, model: str, dataset: TuningDataset | None = None, **fields: Any) -> TuningTask:
        return self._remember(await self.call(calls.create_tuning_task(self._tuning_body(model, dataset, fields))))

    async def get_tuning_task(self, task_id: str, *, deadline: float | None = None) -> TuningTask:
        return self._remember(await self.call(calls.get_tuning_task(task_id), deadline=deadline))

    async def list_tuning_tasks_page(self, page: int = 0, size: int = LIST_PAGE_SIZE) -> TuningTaskPage:
        page_result: TuningTaskPage = await self.call(calls.list_tuning_tasks_page(page, size))
        return page_result

    async def list_tuning_tasks(self, *, page_size: int = LIST_PAGE_SIZE) -> AsyncIterator[TuningTask]:
        page = 0
        while True:
            result = await self.list_tuning_tasks_page(page, page_size)
            for task in result.tasks:
                yield task
            page += 1
            if page >= result.total_pages or not result.tasks:
                return

    async def delete_tuning_task(self, task_id: str, *, missing_ok: bool = True) -> bool:
        try:
            await self.call(calls.delete_tuning_task(task_id))
        except ClovaStudioNotFoundError:
            if not missing_ok:
                raise
            return False
        return True

    async def chat_completion(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str | None = None,
        task_id: str | None = None,
        **params: Any,
    ) -> ChatResult:
        model = await self.base_model(model, task_id)
        result: ChatResult = await self.call(self._chat_call(messages, model, task_id, params))
        return result

    async def base_model(self, model: str | None = None, tuning_task_id: str | None = None) -> str:
        """As ``ClovaStudioClient.base_model``."""
        known = self._known_base_model(model, tuning_task_id)
        return known if known is not None else base_model_of(await self.get_tuning_task(str(tuning_task_id)))

    async def count_tokens(self, messages: Sequence[Mapping[str, Any]], model: str) -> int:
        count: int = await self.call(self._count_call(messages, model))
        return count

    async def embed(self, text: str, model: str = DEFAULT_EMBEDDING_MODEL) -> EmbeddingResult:
        """As ``ClovaStudioClient.embed``."""
        result: EmbeddingResult = await self.call(calls.embedding(text, model=model))
        return result
