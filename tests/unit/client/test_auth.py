"""Auth schemes: signature v2 vectors computed here from the documented string to sign."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import string

import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_clova.client.auth import BearerAuth, LegacyKeyAuth, SignatureV2Auth
from airflow_provider_clova.client.client import REQUEST_ID_HEADER, AsyncClovaStudioClient, ClovaStudioClient
from airflow_provider_clova.client.retry import RetryPolicy
from airflow_provider_clova.testing.samples import fail, ok, task_json

from .conftest import ACCESS_KEY, API_KEY, GATEWAY_KEY, SECRET_KEY, SECRETS, Clock, make_config


def expected_signature(method: str, path_with_query: str, timestamp: str, access_key: str, secret_key: str) -> str:
    """The documented recipe, written out independently of the code under test."""
    message = method + " " + path_with_query + "\n" + timestamp + "\n" + access_key
    digest = hmac.new(secret_key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign(auth: httpx.Auth, request: httpx.Request) -> httpx.Request:
    flow = auth.sync_auth_flow(request)
    signed = next(flow)
    return signed


def test_signature_v2_known_vector_with_fixed_clock() -> None:
    auth = SignatureV2Auth("AK", "SK", clock_ms=lambda: 1_692_590_826_000)
    request = httpx.Request("GET", "https://clovastudio.apigw.ntruss.com/tuning/v2/tasks/czf9fbky")
    signed = sign(auth, request)

    assert signed.headers["X-NCP-APIGW-TIMESTAMP"] == "1692590826000"
    assert signed.headers["X-NCP-IAM-ACCESS-KEY"] == "AK"
    # Literal value, so a change in the recipe (e.g. a dropped newline) cannot hide behind
    # a test helper that drifts along with the code.
    literal = base64.b64encode(
        hmac.new(b"SK", b"GET /tuning/v2/tasks/czf9fbky\n1692590826000\nAK", hashlib.sha256).digest()
    ).decode()
    assert signed.headers["X-NCP-APIGW-SIGNATURE-V2"] == literal


def test_signature_v2_signs_path_with_query_exactly_as_sent(api: respx.MockRouter, clock: Clock) -> None:
    route = api.get("/tuning/v2/tasks").mock(
        return_value=ok({"content": [], "totalPages": 0, "totalElements": 0, "size": 20, "number": 0})
    )
    with ClovaStudioClient(make_config(clock=clock)) as client:
        client.list_tuning_tasks_page(0, 20)

    sent = route.calls.last.request
    assert sent.url.raw_path == b"/tuning/v2/tasks?page=0&size=20"
    timestamp = sent.headers["X-NCP-APIGW-TIMESTAMP"]
    assert timestamp == str(clock.readings[-1])
    assert sent.headers["X-NCP-APIGW-SIGNATURE-V2"] == expected_signature(
        "GET", "/tuning/v2/tasks?page=0&size=20", timestamp, ACCESS_KEY, SECRET_KEY
    )
    # The signature without the query string would be different: the query is signed.
    assert sent.headers["X-NCP-APIGW-SIGNATURE-V2"] != expected_signature(
        "GET", "/tuning/v2/tasks", timestamp, ACCESS_KEY, SECRET_KEY
    )


def test_signature_v2_with_korean_json_body(api: respx.MockRouter, clock: Clock) -> None:
    route = api.post("/tuning/v2/tasks").mock(return_value=ok(task_json(name="서울 날씨 튜닝")))
    with ClovaStudioClient(make_config(clock=clock)) as client:
        task = client.create_tuning_task("HCX-003", name="서울 날씨 튜닝")

    assert task.name == "서울 날씨 튜닝"
    sent = route.calls.last.request
    assert json.loads(sent.content.decode("utf-8"))["name"] == "서울 날씨 튜닝"
    assert sent.headers["content-type"] == "application/json"
    assert "Authorization" not in sent.headers  # the API key next to the IAM keys is not used for tuning
    timestamp = sent.headers["X-NCP-APIGW-TIMESTAMP"]
    assert sent.headers["X-NCP-APIGW-SIGNATURE-V2"] == expected_signature(
        "POST", "/tuning/v2/tasks", timestamp, ACCESS_KEY, SECRET_KEY
    )


def test_fresh_timestamp_and_signature_on_every_attempt(
    api: respx.MockRouter, clock: Clock, sleeps: list[float]
) -> None:
    route = api.get("/tuning/v2/tasks/czf9fbky").mock(side_effect=[fail(503, "50000", "busy"), ok(task_json())])
    with ClovaStudioClient(make_config(clock=clock)) as client:
        client.get_tuning_task("czf9fbky")

    first, second = (call.request for call in route.calls)
    t1, t2 = first.headers["X-NCP-APIGW-TIMESTAMP"], second.headers["X-NCP-APIGW-TIMESTAMP"]
    assert int(t2) > int(t1)
    for request, ts in ((first, t1), (second, t2)):
        assert request.headers["X-NCP-APIGW-SIGNATURE-V2"] == expected_signature(
            "GET", "/tuning/v2/tasks/czf9fbky", ts, ACCESS_KEY, SECRET_KEY
        )
    assert first.headers["X-NCP-APIGW-SIGNATURE-V2"] != second.headers["X-NCP-APIGW-SIGNATURE-V2"]
    assert len(sleeps) == 1


async def test_fresh_signature_on_every_attempt_async(api: respx.MockRouter, clock: Clock, sleeps: list[float]) -> None:
    route = api.get("/tuning/v2/tasks/czf9fbky").mock(side_effect=[fail(500, "50000"), ok(task_json())])
    async with AsyncClovaStudioClient(make_config(clock=clock)) as client:
        await client.get_tuning_task("czf9fbky")
    stamps = [call.request.headers["X-NCP-APIGW-TIMESTAMP"] for call in route.calls]
    assert len(set(stamps)) == 2
    for call, ts in zip(route.calls, stamps, strict=True):
        assert call.request.headers["X-NCP-APIGW-SIGNATURE-V2"] == expected_signature(
            "GET", "/tuning/v2/tasks/czf9fbky", ts, ACCESS_KEY, SECRET_KEY
        )


def test_request_id_kept_across_retries_and_new_per_call(
    api: respx.MockRouter, clock: Clock, sleeps: list[float]
) -> None:
    route = api.get("/tuning/v2/tasks/czf9fbky").mock(
        side_effect=[fail(429, "42902"), fail(500, "50000"), ok(task_json()), ok(task_json())]
    )
    with ClovaStudioClient(make_config(clock=clock)) as client:
        client.get_tuning_task("czf9fbky")
        client.get_tuning_task("czf9fbky")

    ids = [call.request.headers[REQUEST_ID_HEADER] for call in route.calls]
    assert len(ids) == 4
    assert ids[0] == ids[1] == ids[2]
    assert ids[3] != ids[0]
    assert all(ids)


async def test_request_id_kept_across_retries_async(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.get("/tuning/v2/tasks/czf9fbky").mock(
        side_effect=[fail(503, "50000"), ok(task_json()), ok(task_json())]
    )
    async with AsyncClovaStudioClient(make_config()) as client:
        await client.get_tuning_task("czf9fbky")
        await client.get_tuning_task("czf9fbky")
    ids = [call.request.headers[REQUEST_ID_HEADER] for call in route.calls]
    assert ids[0] == ids[1] != ids[2]


def test_bearer_header(api: respx.MockRouter) -> None:
    route = api.get("/tuning/v2/tasks/czf9fbky").mock(return_value=ok(task_json()))
    with ClovaStudioClient(make_config(auth="bearer")) as client:
        client.get_tuning_task("czf9fbky")
    headers = route.calls.last.request.headers
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    for name in ("X-NCP-APIGW-SIGNATURE-V2", "X-NCP-APIGW-TIMESTAMP", "X-NCP-CLOVASTUDIO-API-KEY"):
        assert name not in headers


def test_legacy_key_headers_and_prefix(api: respx.MockRouter, fake_limiter: object) -> None:
    route = api.post("/testapp/v1/chat-completions/HCX-003").mock(
        return_value=ok({"message": {"role": "assistant", "content": "hi"}, "inputLength": 3, "outputLength": 1})
    )
    with ClovaStudioClient(make_config(auth="legacy_keys")) as client:
        client.chat_completion([{"role": "user", "content": "hi"}], model="HCX-003")
    headers = route.calls.last.request.headers
    assert headers["X-NCP-CLOVASTUDIO-API-KEY"] == API_KEY
    assert headers["X-NCP-APIGW-API-KEY"] == GATEWAY_KEY
    assert "Authorization" not in headers


def test_auth_reprs_and_config_repr_hide_secrets() -> None:
    texts = [
        repr(SignatureV2Auth(ACCESS_KEY, SECRET_KEY)),
        repr(BearerAuth(API_KEY)),
        repr(LegacyKeyAuth(API_KEY, GATEWAY_KEY)),
        repr(make_config(auth="apigw_v2")),
        repr(make_config(auth="bearer")),
        repr(make_config(auth="legacy_keys")),
        str(make_config(auth="legacy_keys")),
    ]
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, text


def test_auth_requires_its_keys() -> None:
    with pytest.raises(ValueError, match="secret key"):
        SignatureV2Auth(ACCESS_KEY, "")
    with pytest.raises(ValueError, match="API key"):
        BearerAuth("")
    with pytest.raises(ValueError, match="API Gateway key"):
        LegacyKeyAuth(API_KEY, "")


def test_no_retry_on_bad_signature(api: respx.MockRouter, sleeps: list[float]) -> None:
    from airflow_provider_clova.client.errors import ClovaStudioAuthError

    route = api.get("/tuning/v2/tasks/czf9fbky").mock(return_value=fail(401, "40101", "Invalid signature"))
    with (
        ClovaStudioClient(make_config(retry=RetryPolicy(max_attempts=5))) as client,
        pytest.raises(ClovaStudioAuthError) as info,
    ):
        client.get_tuning_task("czf9fbky")
    assert route.call_count == 1
    assert sleeps == []
    assert "clock" in str(info.value)  # the 40101 hint mentions clock skew


def test_base_url_with_a_path_prefix_is_signed_on_every_request(clock: Clock) -> None:
    from dataclasses import replace

    from airflow_provider_clova.client import client as client_module

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok(task_json(request.url.path.rsplit("/", 1)[-1]))

    config = replace(make_config(clock=clock), base_url="https://gateway.test/proxy/clova")
    with ClovaStudioClient(config, transport=httpx.MockTransport(handler)) as client:
        for task_id in ("aaaa1111", "aaaa1111", "bbbb2222", "aaaa1111"):
            assert client.get_tuning_task(task_id).id == task_id
        assert len(client._urls) <= client_module._URL_CACHE_SIZE
    paths = [request.url.raw_path.decode() for request in seen]
    assert paths == [
        "/proxy/clova/tuning/v2/tasks/aaaa1111",
        "/proxy/clova/tuning/v2/tasks/aaaa1111",
        "/proxy/clova/tuning/v2/tasks/bbbb2222",
        "/proxy/clova/tuning/v2/tasks/aaaa1111",
    ]
    for request, path in zip(seen, paths, strict=True):
        assert request.url.host == "gateway.test"
        ts = request.headers["X-NCP-APIGW-TIMESTAMP"]
        assert request.headers["X-NCP-APIGW-SIGNATURE-V2"] == expected_signature(
            "GET", path, ts, ACCESS_KEY, SECRET_KEY
        )
    assert len({request.headers[REQUEST_ID_HEADER] for request in seen}) == 4


def test_url_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_clova.client import client as client_module

    monkeypatch.setattr(client_module, "_URL_CACHE_SIZE", 3)

    def handler(request: httpx.Request) -> httpx.Response:
        return ok(task_json(request.url.path.rsplit("/", 1)[-1]))

    with ClovaStudioClient(make_config(auth="bearer"), transport=httpx.MockTransport(handler)) as client:
        for index in range(10):
            task_id = f"task{index:04d}"
            assert client.get_tuning_task(task_id).id == task_id
            assert len(client._urls) <= 3


def test_sign_v2_accepts_str_or_bytes_key() -> None:
    from airflow_provider_clova.client.auth import sign_v2

    expected = expected_signature("GET", "/a?b=1", "1", "AK", "SK")
    assert sign_v2("SK", "GET", "/a?b=1", "1", "AK") == expected
    assert sign_v2(b"SK", "GET", "/a?b=1", "1", "AK") == expected
    assert sign_v2("SK", "get", "/a?b=1", "1", "AK") == expected  # method is upper-cased


def test_default_clock_is_epoch_milliseconds() -> None:
    import time

    auth = SignatureV2Auth("AK", "SK")
    before = int(time.time() * 1000)
    signed = sign(auth, httpx.Request("GET", "https://x/tuning/v2/tasks"))
    after = int(time.time() * 1000)
    assert before - 1 <= int(signed.headers["X-NCP-APIGW-TIMESTAMP"]) <= after + 1


def test_signature_covers_a_percent_encoded_non_ascii_query() -> None:
    from urllib.parse import quote

    auth = SignatureV2Auth("AK", "SK", clock_ms=lambda: 1_700_000_000_123)
    request = httpx.Request("GET", "https://h/tuning/v2/tasks", params={"name": "한국어", "page": 0})
    signed = sign(auth, request)
    target = f"/tuning/v2/tasks?name={quote('한국어')}&page=0"
    assert signed.url.raw_path.decode() == target
    assert signed.headers["X-NCP-APIGW-SIGNATURE-V2"] == expected_signature("GET", target, "1700000000123", "AK", "SK")


@settings(max_examples=60, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "DELETE"]),
    segments=st.lists(
        st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=10).filter(
            lambda segment: segment not in {".", ".."}
        ),
        min_size=1,
        max_size=4,
    ),
    page=st.integers(0, 10_000),
    size=st.integers(1, 100),
    timestamp=st.integers(0, 2**45),
    secret=st.text(min_size=1, max_size=40),
)
def test_signature_matches_the_recipe_for_any_target(
    method: str, segments: list[str], page: int, size: int, timestamp: int, secret: str
) -> None:
    auth = SignatureV2Auth("AK", secret, clock_ms=lambda: timestamp)
    path = "/" + "/".join(segments)
    request = httpx.Request(method, f"https://h{path}", params={"page": page, "size": size})
    signed = sign(auth, request)
    target = f"{path}?page={page}&size={size}"
    assert signed.headers["X-NCP-APIGW-TIMESTAMP"] == str(timestamp)
    assert signed.headers["X-NCP-APIGW-SIGNATURE-V2"] == expected_signature(
        method, target, str(timestamp), "AK", secret
    )
