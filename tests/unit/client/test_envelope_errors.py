"""Both answer envelopes and every error class: status, code, message, request id, hint."""

from __future__ import annotations

import email.utils
import types
from typing import Any

import httpx
import pytest
import respx

from airflow_provider_clova.client import envelope
from airflow_provider_clova.client.client import REQUEST_ID_HEADER, ClovaStudioClient
from airflow_provider_clova.client.envelope import parse_response, parse_retry_after
from airflow_provider_clova.client.errors import (
    CODE_HINTS,
    ClovaStudioApiError,
    ClovaStudioAuthError,
    ClovaStudioBadRequestError,
    ClovaStudioError,
    ClovaStudioNotFoundError,
    ClovaStudioRateLimitError,
    ClovaStudioResponseError,
    ClovaStudioServerError,
    ClovaStudioTimeoutError,
)
from airflow_provider_clova.client.retry import RetryPolicy
from airflow_provider_clova.testing.samples import fail, ok, task_json

from .conftest import SECRETS, make_config

REQUEST_ID = "req-0123456789abcdef"


def response(status: int, body: Any = None, *, content: bytes | None = None, headers: Any = None) -> httpx.Response:
    request = httpx.Request("GET", "https://clovastudio.test/tuning/v2/tasks/abc123")
    if content is not None:
        return httpx.Response(status, content=content, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


def clova(code: str, message: str) -> dict[str, Any]:
    return {"status": {"code": code, "message": message}}


def legacy(code: str, message: str) -> dict[str, Any]:
    return {"error": {"errorCode": code, "message": message}}


# (http status, body, error class, code)
ERROR_CASES = [
    (400, clova("40001", "Invalid parameter: topK"), ClovaStudioBadRequestError, "40001"),
    (400, clova("40003", "Text too long"), ClovaStudioBadRequestError, "40003"),
    (400, clova("40080", "Model not found"), ClovaStudioBadRequestError, "40080"),
    (413, clova("41300", "Payload too large"), ClovaStudioBadRequestError, "41300"),
    (415, clova("41500", "Unsupported media type"), ClovaStudioBadRequestError, "41500"),
    (401, clova("40101", "Invalid signature"), ClovaStudioAuthError, "40101"),
    (401, clova("40104", "Invalid API key"), ClovaStudioAuthError, "40104"),
    (403, clova("40300", "Forbidden"), ClovaStudioAuthError, "40300"),
    (403, clova("40301", "Not owner"), ClovaStudioAuthError, "40301"),
    (404, clova("40400", "Task not found"), ClovaStudioNotFoundError, "40400"),
    (408, clova("40800", "Request timeout"), ClovaStudioTimeoutError, "40800"),
    (429, clova("42901", "Too many requests - rate exceeded"), ClovaStudioRateLimitError, "42901"),
    (429, clova("42902", "Too many requests - server overloaded"), ClovaStudioRateLimitError, "42902"),
    (500, clova("50000", "Internal server error"), ClovaStudioServerError, "50000"),
    (504, clova("50400", "Gateway timeout"), ClovaStudioServerError, "50400"),
    # legacy API Gateway envelope
    (401, legacy("200", "Authentication Failed"), ClovaStudioAuthError, "200"),
    (401, legacy("210", "Permission Denied"), ClovaStudioAuthError, "210"),
    (429, legacy("400", "Quota Exceeded"), ClovaStudioRateLimitError, "400"),
    (429, legacy("410", "Throttle Limited"), ClovaStudioRateLimitError, "410"),
    (429, legacy("420", "Rate Limited"), ClovaStudioRateLimitError, "420"),
    (503, legacy("500", "Endpoint Error"), ClovaStudioServerError, "500"),
    (504, legacy("510", "Endpoint Timeout"), ClovaStudioServerError, "510"),
]


@pytest.mark.parametrize(("http_status", "body", "cls", "code"), ERROR_CASES)
def test_error_envelopes_map_to_classes(http_status: int, body: Any, cls: type, code: str) -> None:
    with pytest.raises(cls) as info:
        parse_response(response(http_status, body), request_id=REQUEST_ID)
    exc = info.value
    assert type(exc) is cls
    assert exc.http_status == http_status
    assert exc.code == code
    message = (body.get("status") or body.get("error"))["message"]
    assert exc.service_message == message
    assert exc.request_id == REQUEST_ID
    assert exc.method == "GET"
    assert exc.path == "/tuning/v2/tasks/abc123"
    text = str(exc)
    assert message in text
    assert code in text
    assert str(http_status) in text
    assert REQUEST_ID in text
    assert "GET /tuning/v2/tasks/abc123" in text
    if code in CODE_HINTS:
        assert exc.hint == CODE_HINTS[code]
        assert CODE_HINTS[code] in text


@pytest.mark.parametrize("code", sorted(c for c in CODE_HINTS if len(c) == 5))
def test_every_clova_code_has_its_hint_in_the_text(code: str) -> None:
    http_status = int(code[:3])
    with pytest.raises(ClovaStudioApiError) as info:
        parse_response(response(http_status, clova(code, "service said no")), request_id=REQUEST_ID)
    assert CODE_HINTS[code] in str(info.value)
    assert info.value.code == code


@pytest.mark.parametrize(
    ("code", "is_budget"),
    [("42900", True), ("42901", True), ("42902", False), ("42903", False), ("420", True), ("410", True)],
)
def test_rate_limit_is_budget(code: str, is_budget: bool) -> None:
    with pytest.raises(ClovaStudioRateLimitError) as info:
        parse_response(response(429, clova(code, "rate")))
    assert info.value.is_budget is is_budget
    assert info.value.retryable


def test_retryable_flags_follow_the_error_table() -> None:
    assert not ClovaStudioBadRequestError("x").retryable
    assert not ClovaStudioAuthError("x").retryable
    assert not ClovaStudioNotFoundError("x").retryable
    assert ClovaStudioRateLimitError("x").retryable
    assert ClovaStudioServerError("x").retryable
    assert ClovaStudioTimeoutError("x").retryable


def test_success_envelope_returns_result_and_status_only_returns_none() -> None:
    assert parse_response(response(200, {"status": {"code": "20000", "message": "OK"}, "result": {"a": 1}})) == {"a": 1}
    assert parse_response(response(200, {"status": {"code": "20000", "message": "OK"}})) is None
    assert parse_response(response(204, content=b"")) is None


def test_2xx_with_an_error_code_in_the_envelope_is_an_error() -> None:
    with pytest.raises(ClovaStudioRateLimitError) as info:
        parse_response(response(200, clova("42901", "rate exceeded")))
    assert info.value.http_status == 429
    with pytest.raises(ClovaStudioBadRequestError):
        parse_response(response(200, clova("40001", "bad parameter")))


@pytest.mark.parametrize("content", [b"<html>oops</html>", b"OK", b"\xff\xfe\x00"])
def test_2xx_non_json_is_a_response_error(content: bytes) -> None:
    with pytest.raises(ClovaStudioResponseError) as info:
        parse_response(response(200, content=content), request_id=REQUEST_ID)
    exc = info.value
    assert exc.http_status == 200
    assert exc.request_id == REQUEST_ID
    assert "not JSON" in str(exc)
    assert REQUEST_ID in str(exc)


def test_error_without_json_body_uses_http_reason() -> None:
    with pytest.raises(ClovaStudioServerError) as info:
        parse_response(response(502, content=b"<html>Bad Gateway</html>"))
    assert info.value.http_status == 502
    assert info.value.code is None
    assert "Bad Gateway" in str(info.value)


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 42, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(42.0)
    past = email.utils.formatdate(now - 42, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


def test_rate_limit_error_carries_retry_after_as_date(monkeypatch: pytest.MonkeyPatch) -> None:
    now = 1_700_000_000.0
    monkeypatch.setattr(envelope, "time", types.SimpleNamespace(time=lambda: now))
    date = email.utils.formatdate(now + 30, usegmt=True)
    with pytest.raises(ClovaStudioRateLimitError) as info:
        parse_response(response(429, clova("42901", "rate"), headers={"Retry-After": date}))
    assert info.value.retry_after == pytest.approx(30.0)


# -- through the client: the request id we sent, and no secret in any error text -----------


@pytest.mark.parametrize(("http_status", "body", "cls", "code"), ERROR_CASES)
@pytest.mark.parametrize("auth", ["apigw_v2", "bearer", "legacy_keys"])
def test_client_errors_carry_our_request_id_and_no_secret(
    api: respx.MockRouter, sleeps: list[float], auth: str, http_status: int, body: Any, cls: type, code: str
) -> None:
    # The service echoes our headers back in its message: even then nothing secret may show,
    # because the error text is built from the service message only (we assert it is not
    # built from the request headers, by echoing only non-secret fields).
    # Legacy app keys may call chat v1 and its token counter only; the others read a task.
    if auth == "legacy_keys":
        route = api.post("/testapp/v1/api-tools/chat-tokenize/HCX-003")
    else:
        route = api.get("/tuning/v2/tasks/abc123")
    route.mock(return_value=httpx.Response(http_status, json=body))
    with (
        ClovaStudioClient(make_config(auth=auth, retry=RetryPolicy(max_attempts=2))) as client,
        pytest.raises(cls) as info,
    ):
        if auth == "legacy_keys":
            client.count_tokens([{"role": "user", "content": "hi"}], "HCX-003")
        else:
            client.get_tuning_task("abc123")
    exc = info.value
    sent_id = route.calls.last.request.headers[REQUEST_ID_HEADER]
    assert exc.request_id == sent_id
    assert sent_id in str(exc)
    for text in (str(exc), repr(exc), repr(exc.args), exc.service_message):
        for secret in SECRETS:
            assert secret not in text
    assert route.call_count == (2 if exc.retryable else 1)


def test_transport_errors_hold_no_secret(api: respx.MockRouter, sleeps: list[float]) -> None:
    api.get("/tuning/v2/tasks/abc123").mock(side_effect=httpx.ConnectError("connection refused"))
    with (
        ClovaStudioClient(make_config(retry=RetryPolicy(max_attempts=2))) as client,
        pytest.raises(ClovaStudioError) as info,
    ):
        client.get_tuning_task("abc123")
    for secret in SECRETS:
        assert secret not in str(info.value)
    assert "could not connect" in str(info.value)


def test_not_json_success_through_client_is_retried_then_raised(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.get("/tuning/v2/tasks/abc123").mock(
        side_effect=[httpx.Response(200, text="<html>maintenance</html>"), ok(task_json("abc123"))]
    )
    with ClovaStudioClient(make_config()) as client:
        assert client.get_tuning_task("abc123").id == "abc123"
    assert route.call_count == 2


def test_success_envelope_with_missing_result_is_a_response_error(api: respx.MockRouter, sleeps: list[float]) -> None:
    api.get("/tuning/v2/tasks/abc123").mock(return_value=ok(None))
    with (
        ClovaStudioClient(make_config(retry=RetryPolicy(max_attempts=1))) as client,
        pytest.raises(ClovaStudioResponseError) as info,
    ):
        client.get_tuning_task("abc123")
    assert info.value.request_id


def test_error_for_a_failed_legacy_chat_holds_no_key(api: respx.MockRouter, fake_limiter: Any) -> None:
    api.post("/testapp/v1/chat-completions/HCX-003").mock(return_value=fail(401, "40104", "Invalid API key"))
    with ClovaStudioClient(make_config(auth="legacy_keys")) as client, pytest.raises(ClovaStudioAuthError) as info:
        client.chat_completion([{"role": "user", "content": "hi"}], model="HCX-003")
    for secret in SECRETS:
        assert secret not in str(info.value)
    assert "40104" in str(info.value)


def _all_error_instances() -> list[Exception]:
    from airflow_provider_clova.client import errors

    where = {"http_status": 500, "code": "50000", "request_id": "rid-1", "method": "GET", "path": "/tuning/v2/tasks"}
    return [
        errors.ClovaStudioConfigError("bad connection field"),
        errors.ClovaStudioBadRequestError("bad", **{**where, "http_status": 400, "code": "40001"}),
        errors.ClovaStudioAuthError("auth", **{**where, "http_status": 401, "code": "40101"}),
        errors.ClovaStudioNotFoundError("gone", **{**where, "http_status": 404, "code": "40400"}),
        errors.ClovaStudioRateLimitError("rate", retry_after=2.5, **{**where, "http_status": 429, "code": "42901"}),
        errors.ClovaStudioServerError("boom", **where),
        errors.ClovaStudioTimeoutError("slow", **where),
        errors.ClovaStudioTransportError("refused", request_sent=False, **where),
        errors.ClovaStudioUnknownOutcomeError("maybe", **where),
        errors.ClovaStudioResponseError("not json", **where),
        errors.ClovaStudioBudgetError("too big"),
        errors.ClovaStudioTuningFailedError("failed", task_id="abc12345", failure_reason="file.format"),
        errors.ClovaStudioDatasetError("row 3: C_ID"),
    ]


@pytest.mark.parametrize("error", _all_error_instances(), ids=lambda e: type(e).__name__)
def test_errors_survive_pickle_and_deepcopy(error: Exception) -> None:
    import copy
    import pickle

    for clone in (pickle.loads(pickle.dumps(error)), copy.deepcopy(error)):
        assert type(clone) is type(error)
        assert str(clone) == str(error)
        assert clone.__dict__ == error.__dict__
        assert clone.args == error.args


@pytest.mark.parametrize(
    "content",
    [
        b'{"result":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"status": {"code": "20000"}, "result": {"a": ' * 5000 + b"1" + b"}" * 5001,
        b'{"result": NaN}',
        b'{"result": {"x": Infinity}}',
    ],
    ids=["deep-list", "deep-object", "nan", "infinity"],
)
def test_any_body_gives_a_typed_error_never_a_recursion_error(content: bytes) -> None:
    with pytest.raises(ClovaStudioResponseError) as info:
        parse_response(response(200, content=content))
    assert info.value.retryable  # retried like any other garbage


def test_a_deeply_nested_answer_is_retried_like_garbage_then_read(api: respx.MockRouter, sleeps: list[float]) -> None:
    deep = httpx.Response(200, content=b'{"result":' + b"[" * 50_000 + b"]" * 50_000 + b"}")
    api.get("https://clovastudio.test/tuning/v2/tasks/czf9fbky").mock(side_effect=[deep, ok(task_json())])
    with ClovaStudioClient(make_config()) as client:
        assert client.get_tuning_task("czf9fbky").id == "czf9fbky"
    assert len(sleeps) == 1


def test_non_text_status_fields_are_ignored_not_echoed() -> None:
    body = {"status": {"code": {"nested": [1, 2]}, "message": ["x"] * 3}}
    with pytest.raises(ClovaStudioServerError) as info:
        parse_response(response(503, body))
    assert info.value.code is None and "nested" not in str(info.value)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("1e308", 60.0), ("inf", None), ("-inf", None), ("nan", None), ("-3", 0.0), ("abc", None), ("", None)],
)
def test_retry_after_parsing_is_sane_and_capped(header: str, expected: float | None) -> None:
    assert parse_retry_after(header, cap=60.0) == expected


def test_retry_after_dates_far_ahead_or_malformed_never_raise() -> None:
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now=0.0, cap=60.0) == 60.0
    assert parse_retry_after("Mon, 99 Foo 0000 99:99:99 GMT", cap=60.0) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 +9999", cap=60.0) in (None, 0.0)
