"""Read a CLOVA Studio answer: the result on success, a typed error otherwise.

Two shapes reach us: the CLOVA envelope ``{"status": {"code", "message"}, "result"}`` and
the legacy API Gateway's ``{"error": {"errorCode", "message"}}``. Both are parsed here and
nowhere else, so every call raises the same error classes for the same answers.
"""

from __future__ import annotations

import email.utils
import json
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


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _decode(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content) if response.content else None
    except ValueError:
        return None


def _status_of(body: Any) -> tuple[str | None, str | None]:
    """(code, message) from either envelope shape, or (None, None)."""
    if not isinstance(body, dict):
        return None, None
    status = body.get("status")
    if isinstance(status, dict) and "code" in status:
        return str(status.get("code")), status.get("message")
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("errorCode")) if error.get("errorCode") is not None else None, error.get("message")
    return None, None


def parse_response(response: httpx.Response, *, request_id: str | None = None) -> Any:
    """The ``result`` of a successful answer (None for status-only answers), else raise."""
    request = response.request
    where = {"method": request.method, "path": request.url.path} if request is not None else {}
    body = _decode(response)
    code, message = _status_of(body)

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

    http_status = response.status_code
    if response.is_success:
        # A 2xx carrying an error code: classify by the code's leading digits.
        http_status = int(code[:3]) if code and code[:3].isdigit() and len(code) == 5 else 500
    cls: type[ClovaStudioApiError] = error_class_for(http_status, code)
    text = message or response.reason_phrase or "no message"
    if cls is ClovaStudioRateLimitError:
        raise ClovaStudioRateLimitError(
            text,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            http_status=http_status,
            code=code,
            request_id=request_id,
            **where,
        )
    raise cls(text, http_status=http_status, code=code, request_id=request_id, **where)
