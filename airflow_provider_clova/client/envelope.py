"""Read a CLOVA Studio answer: the result on success, a typed error otherwise.

Two shapes reach us: the CLOVA envelope ``{"status": {"code", "message"}, "result"}`` and
the legacy API Gateway's ``{"error": {"errorCode", "message"}}``. Both are parsed here and
nowhere else, so every call raises the same error classes for the same answers.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from typing import Any

import httpx

from airflow_provider_clova.client.errors import (
    ClovaStudioApiError,
    ClovaStudioRateLimitError,
    ClovaStudioResponseError,
    error_class_for,
)

SUCCESS_CODE = "20000"


def parse_retry_after(value: str | None, *, now: float | None = None, cap: float | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: either delta-seconds or an HTTP date; None if unusable.

    ``cap`` bounds the answer (the clients pass one budget window): a header like ``1e308``
    or a date years ahead must not stall every caller of an account. Negative values count as
    "now"; NaN, infinities and text that is neither form are ignored.
    """
    if not value:
        return None
    value = value.strip()
    seconds: float | None
    try:
        seconds = float(value)
    except ValueError:
        seconds = _seconds_until(value, time.time() if now is None else now)
    if seconds is None or not math.isfinite(seconds):
        return None
    seconds = max(0.0, seconds)
    return seconds if cap is None else min(seconds, cap)


def _seconds_until(value: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
        return when.timestamp() - now
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _decode(response: httpx.Response) -> Any:
    """The body as JSON, or None. Strict JSON only: no NaN/Infinity; nesting too deep to
    parse counts as "not JSON" (a typed, retried answer) instead of a ``RecursionError``."""
    try:
        return json.loads(response.content, parse_constant=_no_constants) if response.content else None
    except (ValueError, RecursionError):
        return None


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def _status_of(body: Any) -> tuple[str | None, str | None]:
    """(code, message) from either envelope shape, or (None, None). Non-text fields are ignored."""
    if not isinstance(body, dict):
        return None, None
    status = body.get("status")
    if isinstance(status, dict) and "code" in status:
        return _text(status.get("code")), _text(status.get("message"))
    error = body.get("error")
    if isinstance(error, dict):
        # the native ``errorCode``, or the OpenAI-compatible API's ``code`` (CLOVA's code in OpenAI's shape)
        code = error.get("errorCode", error.get("code"))
        return _text(code), _text(error.get("message"))
    return None, None


def parse_response(
    response: httpx.Response, *, request_id: str | None = None, max_retry_after: float | None = None
) -> Any:
    """The ``result`` of a successful answer (None for status-only answers), else raise.

    Raises only ``ClovaStudioApiError`` subclasses, whatever the body. ``max_retry_after``
    caps a 429's ``Retry-After`` (see :func:`parse_retry_after`).
    """
    request = response.request
    where = {"method": request.method, "path": request.url.path} if request is not None else {}
    body = _decode(response)
    code, _ = _status_of(body)

    if response.is_success and (code is None or code == SUCCESS_CODE):
        if body is None and response.content:
            raise ClovaStudioResponseError(
                f"the answer is not JSON ({len(response.content)} bytes)",
                http_status=response.status_code,
                request_id=request_id,
                **where,
            )
        if isinstance(body, dict):
            return body.get("result")
        return body

    raise error_from_answer(
        response.status_code,
        body,
        retry_after=response.headers.get("Retry-After"),
        max_retry_after=max_retry_after,
        reason=response.reason_phrase,
        request_id=request_id,
        **where,
    )


def error_from_answer(
    status: int,
    body: Any,
    *,
    retry_after: str | None = None,
    max_retry_after: float | None = None,
    reason: str | None = None,
    **where: Any,
) -> ClovaStudioApiError:
    """The typed error of an answer that is not a success: by HTTP status and CLOVA's code.

    ``body`` is the decoded JSON (native envelope or OpenAI's error shape); ``retry_after`` the
    raw ``Retry-After`` header, capped at ``max_retry_after``.
    """
    code, message = _status_of(body)
    http_status = status
    if 200 <= status < 300:
        # A 2xx carrying an error code: classify by the code's leading digits.
        http_status = int(code[:3]) if code and code[:3].isdigit() and len(code) == 5 else 500
    cls: type[ClovaStudioApiError] = error_class_for(http_status, code)
    text = message or reason or "no message"
    if cls is ClovaStudioRateLimitError:
        return ClovaStudioRateLimitError(
            text,
            retry_after=parse_retry_after(retry_after, cap=max_retry_after),
            http_status=http_status,
            code=code,
            **where,
        )
    return cls(text, http_status=http_status, code=code, **where)
