"""Pacing for the ``openai`` SDK: a transport that books each OpenAI-compatible call on the limiter.

CLOVA Studio counts ``/v1/openai/chat/completions`` and ``/v1/openai/embeddings`` against the
same QPM/TPM budget as the native API. A DAG that chats through ``hook.openai_client()`` (or
LangChain on it) while the provider's operators run would otherwise overrun the budget the
limiter keeps for both. So the SDK's HTTP client gets a transport that, for each attempt the
SDK makes (its own retries included):

* books the estimated cost on the limiter the hook's own calls use (the same model row, pool
  share and, with ``extra.budget_store``, the same shared store), waiting for a place;
* settles at the answer's ``usage.prompt_tokens`` + the requested ``max_tokens``, releases a
  request that was refused (429) or never sent, and makes a budget 429 pause the whole budget.

This is :class:`~airflow_provider_clova.client.client.Metering`, the rule the client meters its
own calls with. openai 3.x ships its own fork of httpx (``httpx2``), so the transport wraps the
transport class of whatever library the SDK's client is built on and reads only what both
forks share (``method``, ``url.path``, ``content``, ``status_code``, ``headers``).

A request the transport cannot read (not JSON, no model) goes out unbooked: the service
rejects it without charging. A cost that can never fit the budget raises
``ClovaStudioBudgetError`` before anything is sent, and the SDK lets it through as it is (so
does an unreachable ``extra.budget_store``: ``ClovaStudioBudgetStoreError``).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_clova.client.catalog import model_info
from airflow_provider_clova.client.client import Metering, limiter_for
from airflow_provider_clova.client.config import ClientConfig
from airflow_provider_clova.client.embeddings import embedding_model, estimate_tokens
from airflow_provider_clova.client.envelope import error_from_answer
from airflow_provider_clova.client.errors import ClovaStudioConfigError, ClovaStudioTransportError
from airflow_provider_clova.client.params import THINKING_EFFORT_DEFAULT_TOKENS, requested_output_tokens
from airflow_provider_clova.client.pool import ssl_context, tls_key
from airflow_provider_clova.client.tokens import estimate_input_tokens

OPENAI_PREFIX = "/v1/openai/"


@dataclass(frozen=True)
class Booking:
    """What one OpenAI-compatible request costs against which model's budget."""

    budget_model: str
    estimated_cost: int
    reserved_output_tokens: int
    #: A streamed answer's usage is not read here; the estimate stands.
    streaming: bool


def booking_for(config: ClientConfig, method: str, path: str, content: bytes) -> Booking | None:
    """The booking of a request, or None for one that spends no budget (or that the service refuses unread)."""
    if method != "POST" or OPENAI_PREFIX not in path:
        return None
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        return None
    model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(model, str) or not model:
        return None
    if path.endswith("/chat/completions"):
        return _chat_booking(config, model, body)
    if path.endswith("/embeddings"):
        return _embedding_booking(model, body)
    return None


def _chat_booking(config: ClientConfig, model: str, body: Mapping[str, Any]) -> Booking | None:
    messages = body.get("messages")
    if not isinstance(messages, Sequence) or isinstance(messages, str):
        return None
    try:
        reasoning = model_info(model, config.models).reasoning
    except ClovaStudioConfigError:  # a model newer than the catalog: the default row's budget
        reasoning = False
    effort = body.get("reasoning_effort")
    reserved = requested_output_tokens(
        {
            "maxTokens": _count(body.get("max_tokens")),
            "maxCompletionTokens": _count(body.get("max_completion_tokens")),
            "thinking": {"effort": effort if effort in THINKING_EFFORT_DEFAULT_TOKENS else None},
        },
        reasoning=reasoning,
    )
    estimated = estimate_input_tokens([m for m in messages if isinstance(m, Mapping)]) + reserved
    return Booking(model, estimated, reserved, streaming=body.get("stream") is True)


def _embedding_booking(model: str, body: Mapping[str, Any]) -> Booking | None:
    try:
        info = embedding_model(model)
    except ClovaStudioConfigError:
        return None  # the service answers "model not found" and charges nothing
    given = body.get("input")
    texts = [given] if isinstance(given, str) else given if isinstance(given, list) else []
    cost = sum(estimate_tokens(text) for text in texts if isinstance(text, str))
    return Booking(info.name, max(1, cost), 0, streaming=False) if cost else None


def _count(value: Any) -> int | None:
    """A positive whole number of tokens, else None (the service answers a bad one with 400)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


class _Pacing:
    """What the sync and async transports share: the booking, and reading the answer."""

    def __init__(self, inner: Any, config: ClientConfig, not_sent: tuple[type[BaseException], ...]) -> None:
        self._inner = inner
        self._config = config
        self._not_sent = not_sent

    def _start(self, request: Any, *, deferred: bool = False) -> tuple[Booking, Metering] | None:
        try:
            content = request.content
        except Exception:  # a streamed upload: nothing the OpenAI-compatible API takes
            return None
        booking = booking_for(self._config, request.method, request.url.path, content)
        if booking is None:
            return None
        limiter = limiter_for(self._config, booking.budget_model)
        return booking, Metering(limiter, booking.reserved_output_tokens, deferred=deferred)

    def _unsent(self, metering: Metering, request: Any, exc: BaseException) -> None:
        """The request never left (connect failed, no free connection): it cost nothing."""
        if isinstance(exc, self._not_sent):
            where = {"method": request.method, "path": request.url.path}
            metering.failed(ClovaStudioTransportError(type(exc).__name__, request_sent=False, **where))

    def _answered(self, metering: Metering, booking: Booking, response: Any) -> None:
        if 200 <= response.status_code < 300:
            if not booking.streaming:
                metering.succeeded(_json(response.content))
            return
        error = error_from_answer(
            response.status_code,
            _json(response.content),
            retry_after=response.headers.get("Retry-After"),
            max_retry_after=self._config.rate_window_seconds,
        )
        metering.failed(error)

    @staticmethod
    def _readable(booking: Booking, response: Any) -> bool:
        """Whether to read the body here: an error's, or a whole (not streamed) answer's."""
        return not (booking.streaming and 200 <= response.status_code < 300)


def _json(content: bytes) -> Any:
    try:
        return json.loads(content) if content else None
    except (ValueError, RecursionError):
        return None


class PacedTransport(_Pacing):
    """A sync transport (the SDK's HTTP library's) that books each call; see the module docstring."""

    def handle_request(self, request: Any) -> Any:
        started = self._start(request)
        if started is None:
            return self._inner.handle_request(request)
        booking, metering = started
        metering.reserve(booking.estimated_cost)
        try:
            response = self._inner.handle_request(request)
        except BaseException as exc:
            self._unsent(metering, request, exc)
            raise
        if self._readable(booking, response):
            response.read()
        self._answered(metering, booking, response)
        return response

    def close(self) -> None:
        self._inner.close()


class AsyncPacedTransport(_Pacing):
    """The async twin of :class:`PacedTransport`; waits for a place without blocking the loop."""

    async def handle_async_request(self, request: Any) -> Any:
        started = self._start(request, deferred=True)  # the corrections are awaited below
        if started is None:
            return await self._inner.handle_async_request(request)
        booking, metering = started
        await metering.areserve(booking.estimated_cost)
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException as exc:
            self._unsent(metering, request, exc)
            await metering.aflush()
            raise
        if self._readable(booking, response):
            await response.aread()
        self._answered(metering, booking, response)
        await metering.aflush()
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def paced_http_client(client_class: type[Any], config: ClientConfig, **kwargs: Any) -> Any:
    """An instance of the SDK's ``DefaultHttpxClient`` / ``DefaultAsyncHttpxClient`` whose
    transport books every call on the connection's limiter, with the connection's TLS settings."""
    http = importlib.import_module(client_class.__mro__[1].__module__.split(".")[0])
    asynchronous = issubclass(client_class, http.AsyncClient)
    verify = ssl_context(tls_key(config))
    not_sent = (http.ConnectError, http.ConnectTimeout, http.PoolTimeout)
    if asynchronous:
        transport: Any = AsyncPacedTransport(http.AsyncHTTPTransport(verify=verify), config, not_sent)
    else:
        transport = PacedTransport(http.HTTPTransport(verify=verify), config, not_sent)
    return client_class(transport=transport, **kwargs)
