"""Each auth scheme only where CLOVA Studio documents it; everything else refused before sending.

The matrix: four kinds of connection (API key, IAM keys, both, legacy app keys) times every
call the client makes. A documented combination goes out with that scheme's headers, to that
scheme's host, under the legacy app prefix where it applies; an undocumented one raises
``ClovaStudioConfigError`` naming the field to add, and no request leaves the client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import respx

from airflow_provider_clova.client.calls import TuningDataset
from airflow_provider_clova.client.client import ClovaStudioClient
from airflow_provider_clova.client.config import APIGW_HOST, DEFAULT_HOST, config_from_connection
from airflow_provider_clova.client.errors import ClovaStudioConfigError
from airflow_provider_clova.testing.samples import ok, task_json

from .conftest import ACCESS_KEY, API_KEY, GATEWAY_KEY, SECRET_KEY, FakeLimiter, make_config

MESSAGES = [{"role": "user", "content": "hi"}]
V1 = {"message": {"role": "assistant", "content": "ok"}, "stopReason": "end_token", "inputLength": 1}
V3 = {"message": {"role": "assistant", "content": "ok"}, "finishReason": "stop", "usage": {"promptTokens": 1}}
DATASET = TuningDataset("b", "k.jsonl", "os-ak", "os-sk")
#: HCX-005 opened to tuning by a connection override, so a tuned v3 chat can be exercised.
OPEN_005 = {"HCX-005": {"tunable": True}}

CALLS: dict[str, Callable[[ClovaStudioClient], Any]] = {
    "tuning.create": lambda c: c.create_tuning_task("HCX-003", DATASET, name="n"),
    "tuning.get": lambda c: c.get_tuning_task("abcd1234"),
    "tuning.list": lambda c: c.list_tuning_tasks_page(0, 1),
    "tuning.delete": lambda c: c.delete_tuning_task("abcd1234"),
    "chat.v1": lambda c: c.chat_completion(MESSAGES, model="HCX-003"),
    "chat.v1.tuned": lambda c: c.chat_completion(MESSAGES, model="HCX-003", task_id="abcd1234"),
    "tokenize.v1": lambda c: c.count_tokens(MESSAGES, "HCX-003"),
    "chat.v3": lambda c: c.chat_completion(MESSAGES, model="HCX-005"),
    "chat.v3.tuned": lambda c: c.chat_completion(MESSAGES, model="HCX-005", task_id="abcd1234"),
    "tokenize.v3": lambda c: c.count_tokens(MESSAGES, "HCX-005"),
}
TUNING = ("tuning.create", "tuning.get", "tuning.list", "tuning.delete")
CHAT_V1 = ("chat.v1", "chat.v1.tuned", "tokenize.v1")
OTHER = ("chat.v3", "chat.v3.tuned", "tokenize.v3")

#: connection kind -> call -> the scheme it is sent with, or the fix the refusal names.
EXPECTED: dict[str, dict[str, str]] = {
    "bearer": dict.fromkeys(TUNING + CHAT_V1 + OTHER, "bearer"),
    "apigw_v2": {
        **dict.fromkeys(TUNING, "apigw_v2"),
        **dict.fromkeys(CHAT_V1 + OTHER, "refused: extra.api_key"),
    },
    "mixed": {**dict.fromkeys(TUNING, "apigw_v2"), **dict.fromkeys(CHAT_V1 + OTHER, "bearer")},
    "legacy_keys": {
        **dict.fromkeys(TUNING + OTHER, "refused: put it in 'password' and remove extra.auth_type=legacy_keys"),
        **dict.fromkeys(CHAT_V1, "legacy_keys"),
    },
}
CASES = [(kind, call, expected) for kind, row in EXPECTED.items() for call, expected in row.items()]


def _answer(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if "chat-tokenize" in path:
        return ok({"messages": [{"count": 3}]})
    if "/v1/" in path:
        return ok(V1)
    if "chat-completions" in path:
        return ok(V3)
    if request.method == "DELETE":
        return ok()
    if request.url.params.get("size"):
        return ok({"content": [], "totalPages": 0, "totalElements": 0, "size": 1, "number": 0})
    return ok(task_json("abcd1234"))


def scheme_of(request: httpx.Request) -> str:
    headers = request.headers
    present = [
        name
        for name, header in (
            ("bearer", "Authorization"),
            ("apigw_v2", "X-NCP-APIGW-SIGNATURE-V2"),
            ("legacy_keys", "X-NCP-CLOVASTUDIO-API-KEY"),
        )
        if header in headers
    ]
    assert len(present) == 1, f"exactly one scheme per request, got {present}"
    return present[0]


@pytest.fixture
def anything() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        router.route().mock(side_effect=_answer)
        yield router


@pytest.mark.parametrize(("kind", "call", "expected"), CASES)
def test_each_call_uses_only_a_documented_scheme(
    anything: respx.MockRouter, fake_limiter: FakeLimiter, kind: str, call: str, expected: str
) -> None:
    config = replace(make_config(auth=kind), models=OPEN_005)
    with ClovaStudioClient(config) as client:
        if expected.startswith("refused"):
            with pytest.raises(ClovaStudioConfigError) as info:
                CALLS[call](client)
            text = str(info.value)
            assert "nothing was sent" in text and expected.removeprefix("refused: ") in text
            assert anything.calls.call_count == 0
            assert fake_limiter.reservations == []  # not even a budget reservation
            return
        CALLS[call](client)
    request = anything.calls.last.request
    assert scheme_of(request) == expected
    is_app_path = request.url.path.startswith("/testapp/")
    assert is_app_path == (expected == "legacy_keys")


def test_refusal_names_the_call_and_what_is_documented() -> None:
    with ClovaStudioClient(make_config(auth="apigw_v2")) as client, pytest.raises(ClovaStudioConfigError) as info:
        client.chat_completion(MESSAGES, model="HCX-005")
    assert str(info.value).startswith(
        "POST /v3/chat-completions/HCX-005: CLOVA Studio documents only bearer auth for this API, "
        "and the connection has apigw_v2; nothing was sent. Fix: add the CLOVA Studio API key"
    )


def test_mixed_connection_without_host_sends_each_scheme_to_its_documented_host(fake_limiter: FakeLimiter) -> None:
    config = config_from_connection(
        host=None, login=ACCESS_KEY, password=SECRET_KEY, extra={"api_key": API_KEY}, conn_id="mixed"
    )
    with respx.mock(assert_all_mocked=True) as router:
        tuning = router.get(f"{APIGW_HOST}/tuning/v2/tasks/abcd1234").mock(return_value=ok(task_json("abcd1234")))
        chat = router.post(f"{DEFAULT_HOST}/v3/chat-completions/HCX-005").mock(return_value=ok(V3))
        with ClovaStudioClient(config) as client:
            client.get_tuning_task("abcd1234")
            client.chat_completion(MESSAGES, model="HCX-005")
    assert scheme_of(tuning.calls.last.request) == "apigw_v2"
    assert scheme_of(chat.calls.last.request) == "bearer"


def test_legacy_keys_go_to_the_gateway_host_under_the_app_prefix(fake_limiter: FakeLimiter) -> None:
    config = config_from_connection(
        host=None,
        login=None,
        password=API_KEY,
        extra={"auth_type": "legacy_keys", "apigw_api_key": GATEWAY_KEY, "app_type": "service"},
    )
    with respx.mock(assert_all_mocked=True) as router:
        route = router.post(f"{APIGW_HOST}/serviceapp/v1/chat-completions/HCX-003").mock(return_value=ok(V1))
        with ClovaStudioClient(config) as client:
            client.chat_completion(MESSAGES, model="HCX-003")
    assert scheme_of(route.calls.last.request) == "legacy_keys"


async def test_async_client_refuses_before_sending(anything: respx.MockRouter) -> None:
    from airflow_provider_clova.client.client import AsyncClovaStudioClient

    async with AsyncClovaStudioClient(make_config(auth="legacy_keys")) as client:
        with pytest.raises(ClovaStudioConfigError, match=r"extra\.apigw_api_key"):
            await client.get_tuning_task("abcd1234")
    assert anything.calls.call_count == 0
