"""Typed errors for CLOVA Studio calls.

Every error a caller can meet is one of these classes, so an operator or a user's own code
can decide by type (retry, fail fast, reconcile) rather than by parsing strings. Errors from
the service carry the HTTP status, the CLOVA ``status.code``, the service's message and the
request id we sent, and their text says what to do about it. No error text ever includes a
credential: messages are built only from the service's answer and our own wording.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# What a person should do for a given CLOVA code (or legacy API Gateway errorCode).
# One place for these hints, so the hook, the operators and the README agree.
CODE_HINTS: dict[str, str] = {
    "40000": "the request is malformed; check the parameters against the CLOVA Studio API guide",
    "40001": "a parameter is out of range or missing; the message names it",
    "40002": (
        "a parameter is not supported (the OpenAI-compatible API answers this for an OpenAI field CLOVA "
        "Studio does not take); remove it"
    ),
    "40003": "the prompt is longer than the model's context; shorten the messages or lower maxTokens",
    "40004": "the model or parameter value is not supported",
    "40055": "the structured output failed; check responseFormat's JSON schema against the API guide",
    "40060": "the image format is not supported; send PNG, JPEG, WEBP or BMP",
    "40061": "the image file is too large; shrink it below the documented file size",
    "40063": "the image size, aspect ratio or URL is not accepted; resize it or use a reachable URL",
    "40080": "the model does not exist or was retired; pick a current model",
    "40100": "authentication failed; check the connection's credentials",
    "40101": (
        "the API Gateway signature did not match: check the connection's access key (login) and "
        "secret key (password), and that this machine's clock is within 5 minutes of real time"
    ),
    "40102": (
        "the credentials are not accepted for this API: IAM keys (signature v2) are for the tuning API only "
        "and legacy app keys for chat v1 only; use a CLOVA Studio API key (Bearer, 'password' or extra.api_key)"
    ),
    "40103": "the API key or token has expired; issue a new API key in the CLOVA Studio console",
    "40104": "the API key is unknown or revoked; issue a new key in the CLOVA Studio console",
    "40170": "the account has no CLOVA Studio subscription for this API",
    "40300": "the key may not call this API (a test key cannot call a service app, and vice versa)",
    "40301": "the task belongs to another account",
    "40400": "no such task or resource; it may have been deleted",
    "40800": "the service timed out the request; it is retried automatically",
    "41300": "the request body is over 50 MB",
    "41500": "send JSON (Content-Type: application/json)",
    "42900": "too many requests; lower concurrency or use the provider's pools (see README: limits and pools)",
    "42901": (
        "the account's per-minute budget (QPM/TPM) for this model was exceeded; the provider's limiter "
        "paces requests, so check other clients sharing the account and the connection's extra.limits"
    ),
    "42902": "the service is overloaded; retried with backoff",
    "42903": "the image queue is full; retried with backoff",
    "50000": "server error at CLOVA Studio; retried with backoff",
    "50400": "gateway timeout at CLOVA Studio; retried with backoff",
    # legacy API Gateway error codes
    "200": "API Gateway authentication failed; check the connection's keys",
    "210": "API Gateway permission denied; check that the key may call CLOVA Studio",
    "400": "API Gateway quota exceeded",
    "410": "API Gateway throttle limit reached",
    "420": "API Gateway rate limit reached",
}


def _rebuild_error(cls: type[BaseException], args: tuple[object, ...], state: dict[str, object]) -> BaseException:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ClovaStudioError(Exception):
    """Base class of every error raised by airflow-provider-clova.

    Each class says how a batch treats it (``airflow_provider_clova.batch``): ``kind`` is the
    ``error.type`` a failed row records, ``fatal_for_batch`` stops the whole batch instead of
    failing row after row (every row would meet the same error), ``retryable`` lets a later
    try of the batch send the row again.
    """

    #: The row error type a batch records for this error.
    kind: str = "error"
    #: True when every row of a batch would meet this error: the batch stops at once.
    fatal_for_batch: bool = False
    #: True when a later attempt may succeed (rate limit, timeout, 5xx).
    retryable: bool = False

    def __reduce__(self) -> tuple[object, ...]:
        # Rebuild from the rendered text and the attributes, without calling ``__init__``:
        # subclasses take keyword-only arguments (request_sent, task_id, ...), which the default
        # ``Exception`` pickling cannot pass, and re-rendering would nest the text in itself.
        # Errors cross process boundaries (executors, process pools) and ``copy.deepcopy``.
        return (_rebuild_error, (type(self), self.args, dict(self.__dict__)))


class ClovaStudioConfigError(ClovaStudioError, ValueError):
    """A connection, parameter or argument is wrong before anything is sent."""

    kind = "invalid_parameter"


class ClovaStudioApiError(ClovaStudioError):
    """The service answered with an error (or an answer we could not use)."""

    kind = "api_error"

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.service_message = message
        self.http_status = http_status
        self.code = code
        self.request_id = request_id
        self.method = method
        self.path = path
        super().__init__(self._render())

    @property
    def hint(self) -> str | None:
        """What to do about it, when we know."""
        return CODE_HINTS.get(self.code or "")

    def _render(self) -> str:
        where = f"{self.method} {self.path}: " if self.method and self.path else ""
        head = f"CLOVA Studio {self.code or '-'} (HTTP {self.http_status or '-'})"
        text = f"{where}{head} {self.service_message}"
        if self.hint:
            text += f". Fix: {self.hint}"
        if self.request_id:
            text += f" [request id {self.request_id}]"
        return text


class ClovaStudioBadRequestError(ClovaStudioApiError):
    """400/413/415: the request itself is wrong; retrying cannot help."""

    kind = "bad_request"


class ClovaStudioAuthError(ClovaStudioApiError):
    """401 or 403: credentials, signature or permission."""

    kind = "auth"
    fatal_for_batch = True


class ClovaStudioNotFoundError(ClovaStudioApiError):
    """404: the task (or model) does not exist, or no longer does."""

    kind = "not_found"
    fatal_for_batch = True


class ClovaStudioRateLimitError(ClovaStudioApiError):
    """429: over budget (42900/42901) or overloaded (42902/42903). Retried with backoff."""

    kind = "rate_limited"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)  # type: ignore[arg-type]

    @property
    def is_budget(self) -> bool:
        """True when the account's QPM/TPM budget, not service load, refused the call."""
        return self.code in {"42900", "42901", "400", "410", "420"}


class ClovaStudioServerError(ClovaStudioApiError):
    """5xx: the service failed. Retried for reads; an unknown outcome for creates."""

    kind = "server_error"
    retryable = True


class ClovaStudioTimeoutError(ClovaStudioApiError):
    """408 from the service, or no answer in time from the network."""

    kind = "timeout"
    retryable = True


class ClovaStudioTransportError(ClovaStudioApiError):
    """The connection failed (refused, reset, dropped) before a usable answer arrived."""

    kind = "transport"
    retryable = True

    def __init__(self, message: str, *, request_sent: bool, **kwargs: object) -> None:
        #: False when the request provably never reached the server (connect failed).
        self.request_sent = request_sent
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class ClovaStudioUnknownOutcomeError(ClovaStudioApiError):
    """A create may or may not have happened (read timeout, 5xx, dropped reply).

    Raised instead of retrying blindly, so the caller can reconcile by listing tasks
    (the tuning operator does) and never bill a second training. ``retry_after`` carries a
    429's ``Retry-After`` (seconds), for the pause before creating again.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class ClovaStudioResponseError(ClovaStudioApiError):
    """The service answered 2xx with a body we cannot read (not JSON, missing ``result``)."""

    kind = "bad_response"
    retryable = True


class ClovaStudioBudgetError(ClovaStudioError):
    """A request can never fit the model's per-minute token budget; it is not sent."""

    kind = "budget"


class ClovaStudioBudgetStoreError(ClovaStudioError):
    """The shared budget store (``extra.budget_store``) cannot be reached or used.

    Raised instead of pacing without it, which could spend more than the account's budget;
    the message names the store (password masked) and the fix.
    """


class ClovaStudioTuningFailedError(ClovaStudioError):
    """A tuning task ended FAILED; carries the service's failureReason and a fix."""

    def __init__(self, message: str, *, task_id: str, failure_reason: str | None) -> None:
        self.task_id = task_id
        self.failure_reason = failure_reason
        super().__init__(message)


class ClovaStudioStorageError(ClovaStudioError):
    """Object Storage failed to answer (5xx, throttling, network) where the provider needed it."""


class ClovaStudioDatasetError(ClovaStudioError):
    """A dataset breaks CLOVA Studio's rules; the message lists the problems with row and column."""


def error_class_for(http_status: int, code: str | None) -> type[ClovaStudioApiError]:
    """The error class for an HTTP status (and CLOVA code): one table, used by every call."""
    if http_status == 429:
        return ClovaStudioRateLimitError
    if http_status == 408 or code == "40800":
        return ClovaStudioTimeoutError
    if http_status in (401, 403):
        return ClovaStudioAuthError
    if http_status == 404:
        return ClovaStudioNotFoundError
    if http_status >= 500:
        return ClovaStudioServerError
    if 400 <= http_status < 500:
        return ClovaStudioBadRequestError
    return ClovaStudioResponseError


class ClovaStudioWaitTimeoutError(ClovaStudioError):
    """Waiting for a tuning task took longer than the operator's ``timeout``."""


class ClovaStudioBatchFailedError(ClovaStudioError):
    """Too many rows of a batch failed (or it was stopped); the summary is attached."""

    def __init__(self, message: str, summary: Mapping[str, Any]) -> None:
        self.summary = dict(summary)
        super().__init__(message)


class ClovaStudioEvaluationGateError(ClovaStudioError):
    """No challenger passed an evaluation's gate (raised only with ``fail_on_gate=True``); the result is attached."""

    def __init__(self, message: str, result: Mapping[str, Any]) -> None:
        self.result = dict(result)
        super().__init__(message)
