"""CLOVA Studio's response envelope, and the error every handler raises to answer with one.

Two shapes exist on the wire: the CLOVA envelope (``{"status": {...}, "result": {...}}``) and
the legacy API Gateway's own (``{"error": {"errorCode", "message"}}``). Handlers raise
:class:`ApiError` and the app renders it, so no handler builds error JSON by hand.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from airflow_provider_clova.testing.samples import fail_body, ok_body


class ApiError(Exception):
    """An error answer: HTTP status, CLOVA code and message (or the legacy gateway shape)."""

    def __init__(self, http_status: int, code: str, message: str, *, legacy: bool = False) -> None:
        super().__init__(f"{http_status} {code} {message}")
        self.http_status = http_status
        self.code = code
        self.message = message
        self.legacy = legacy

    def body(self) -> dict[str, Any]:
        if self.legacy:
            return {"error": {"errorCode": self.code, "message": self.message}}
        return fail_body(self.code, self.message)


def bad_param(field: str, rule: str, got: object = None) -> ApiError:
    """400 ``40001`` naming the field and the allowed values."""
    suffix = "" if got is None else f" (got {got!r})"
    return ApiError(400, "40001", f"Invalid parameter: {field} {rule}{suffix}")


def json_response(status: int, body: dict[str, Any]) -> Response:
    # ensure_ascii=False: Korean text stays readable, as the service sends it.
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
        status_code=status,
        media_type="application/json",
    )


def ok(result: Any = None, *, with_result: bool = True) -> Response:
    return json_response(200, ok_body(result, with_result=with_result))


def error_response(error: ApiError) -> Response:
    return json_response(error.http_status, error.body())
