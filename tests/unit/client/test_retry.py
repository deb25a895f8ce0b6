"""The retry policy as the clients run it: what is retried, how long it waits, and when a
create is left alone (unknown outcome) rather than risking a second billed training."""

from __future__ import annotations

import email.utils
import types
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

from airflow_provider_clova.client import envelope
from airflow_provider_clova.client.calls import TuningDataset
from airflow_provider_clova.client.client import AsyncClovaStudioClient, ClovaStudioClient
from airflow_provider_clova.client.errors import (
    ClovaStudioAuthError,
    ClovaStudioBadRequestError,
    ClovaStudioNotFoundError,
    ClovaStudioRateLimitError,
    ClovaStudioServerError,
    ClovaStudioTimeoutError,
    ClovaStudioTransportError,
    ClovaStudioUnknownOutcomeError,
)
from airflow_provider_clova.client.retry import NO_RETRY, RetryPolicy, is_retryable
from airflow_provider_clova.testing.samples import fail, ok, task_json

from .conftest import FakeLimiter, make_config

TASK = "/tuning/v2/tasks/czf9fbky"
CREATE = "/tuning/v2/tasks"
DATASET = TuningDataset(bucket="my-bucket", key="data/train.jsonl", access_key="os-ak", secret_key="os-sk")
V3_RESULT = {
    "message": {"role": "assistant", "content": "네"},
    "finishReason": "stop",
    "usage": {"promptTokens": 11, "completionTokens": 2, "totalTokens": 13},
}
MESSAGES = [{"role": "user", "content": "안녕"}]


def sync_client(**kwargs: Any) -> ClovaStudioClient:
    return ClovaStudioClient(make_config(**kwargs))


def async_client(**kwargs: Any) -> AsyncClovaStudioClient:
    return AsyncClovaStudioClient(make_config(**kwargs))


# -- GET: retried after anything transient -------------------------------------------------


def test_429_then_success(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.get(TASK).mock(side_effect=[fail(429, "42901", "rate exceeded"), ok(task_json())])
    with sync_client() as client:
        task = client.get_tuning_task("czf9fbky")
    assert task.id == "czf9fbky"
    assert route.call_count == 2
    assert len(sleeps) == 1
    assert 0 <= sleeps[0] <= make_config().retry.max_backoff_seconds


def test_retry_after_seconds_is_honoured(api: respx.MockRouter, sleeps: list[float]) -> None:
    api.get(TASK).mock(
        side_effect=[
            fail(429, "42901", headers={"Retry-After": "7"}),
            fail(429, "42902", headers={"Retry-After": "3"}),
            ok(task_json()),
        ]
    )
    with sync_client() as client:
        client.get_tuning_task("czf9fbky")
    assert sleeps == [7.0, 3.0]


def test_retry_after_http_date_is_honoured(
    api: respx.MockRouter, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = 1_700_000_000.0
    monkeypatch.setattr(envelope, "time", types.SimpleNamespace(time=lambda: now))
    date = email.utils.formatdate(now + 12, usegmt=True)
    api.get(TASK).mock(side_effect=[fail(429, "42901", headers={"Retry-After": date}), ok(task_json())])
    with sync_client() as client:
        client.get_tuning_task("czf9fbky")
    assert sleeps == [pytest.approx(12.0)]


def test_retry_after_is_capped_by_the_policy(api: respx.MockRouter, sleeps: list[float]) -> None:
    api.get(TASK).mock(side_effect=[fail(429, "42901", headers={"Retry-After": "3600"}), ok(task_json())])
    policy = RetryPolicy(max_attempts=3, max_elapsed_seconds=45.0)
    with sync_client(retry=policy) as client:
        client.get_tuning_task("czf9fbky")
    assert sleeps == [45.0]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("1e308", 60.0),
        ("3600", 60.0),
        ("inf", None),
        ("nan", None),
        ("-5", 0.0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", 60.0),
    ],
)
def test_retry_after_is_capped_at_one_budget_window_and_parsed_sanely(
    api: respx.MockRouter, sleeps: list[float], header: str, expected: float | None
) -> None:
    api.get(TASK).mock(side_effect=[fail(429, "42902", headers={"Retry-After": header}), ok(task_json())])
    with sync_client() as client:  # rate_window_seconds: 60 (the default)
        client.get_tuning_task("czf9fbky")
    if expected is None:
        assert len(sleeps) == 1 and sleeps[0] <= 1.0  # ignored: the first step of the jittered backoff
    else:
        assert sleeps == [pytest.approx(expected)]


def test_retry_after_cap_follows_the_connections_rate_window(api: respx.MockRouter, sleeps: list[float]) -> None:
    api.get(TASK).mock(side_effect=[fail(429, "42901", headers={"Retry-After": "1e308"}), ok(task_json())])
    with sync_client(rate_window_seconds=4.0) as client:
        client.get_tuning_task("czf9fbky")
    assert sleeps == [pytest.approx(4.0)]


def test_backoff_without_retry_after_is_bounded_jitter(api: respx.MockRouter, sleeps: list[float]) -> None:
    api.get(TASK).mock(side_effect=[fail(503, "50000")] * 5 + [ok(task_json())])
    policy = RetryPolicy(max_attempts=6, initial_backoff_seconds=0.5, max_backoff_seconds=4.0)
    with sync_client(retry=policy) as client:
        client.get_tuning_task("czf9fbky")
    assert len(sleeps) == 5
    assert all(0.0 <= wait <= 4.0 for wait in sleeps)


@pytest.mark.parametrize(
    "code",
    ["40101", "40100", "40104", "40102", "40170"],
)
def test_no_retry_on_auth_errors(api: respx.MockRouter, sleeps: list[float], code: str) -> None:
    route = api.get(TASK).mock(return_value=fail(401, code, "auth"))
    with sync_client() as client, pytest.raises(ClovaStudioAuthError):
        client.get_tuning_task("czf9fbky")
    assert route.call_count == 1
    assert sleeps == []


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "40001", ClovaStudioBadRequestError),
        (404, "40400", ClovaStudioNotFoundError),
        (403, "40300", ClovaStudioAuthError),
        (413, "41300", ClovaStudioBadRequestError),
    ],
)
def test_no_retry_on_client_errors(
    api: respx.MockRouter, sleeps: list[float], status: int, code: str, cls: type
) -> None:
    route = api.get(TASK).mock(return_value=fail(status, code))
    with sync_client() as client, pytest.raises(cls):
        client.get_tuning_task("czf9fbky")
    assert route.call_count == 1


def test_attempts_are_bounded(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.get(TASK).mock(return_value=fail(500, "50000", "boom"))
    with sync_client(retry=RetryPolicy(max_attempts=3)) as client, pytest.raises(ClovaStudioServerError) as info:
        client.get_tuning_task("czf9fbky")
    assert route.call_count == 3
    assert len(sleeps) == 2
    assert info.value.code == "50000"


def test_no_retry_policy_sends_once(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.get(TASK).mock(return_value=fail(503, "50000"))
    with sync_client(retry=NO_RETRY) as client, pytest.raises(ClovaStudioServerError):
        client.get_tuning_task("czf9fbky")
    assert route.call_count == 1
    assert sleeps == []


def test_policy_rejects_zero_attempts() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


TRANSIENT_GET_FAILURES: list[Any] = [
    fail(500, "50000"),
    fail(503, "50000"),
    fail(504, "50400"),
    fail(408, "40800"),
    httpx.ReadTimeout("read timed out"),
    httpx.ConnectTimeout("connect timed out"),
    httpx.ConnectError("refused"),
    httpx.RemoteProtocolError("server disconnected without sending a response"),
    httpx.ReadError("connection reset by peer"),
]


@pytest.mark.parametrize("failure", TRANSIENT_GET_FAILURES, ids=lambda f: getattr(f, "status_code", type(f).__name__))
def test_get_retried_after_transient_failures(api: respx.MockRouter, sleeps: list[float], failure: Any) -> None:
    route = api.get(TASK).mock(side_effect=[failure, ok(task_json())])
    with sync_client() as client:
        assert client.get_tuning_task("czf9fbky").id == "czf9fbky"
    assert route.call_count == 2


def test_read_timeout_exhausted_is_a_timeout_error(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.get(TASK).mock(side_effect=httpx.ReadTimeout("slow"))
    with sync_client(retry=RetryPolicy(max_attempts=2)) as client, pytest.raises(ClovaStudioTimeoutError) as info:
        client.get_tuning_task("czf9fbky")
    assert route.call_count == 2
    assert info.value.request_id
    assert info.value.path == TASK


def test_delete_is_retried_and_missing_is_ok(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.delete(TASK).mock(side_effect=[fail(503, "50000"), fail(404, "40400")])
    with sync_client() as client:
        assert client.delete_tuning_task("czf9fbky") is False
    assert route.call_count == 2
    api.delete(TASK).mock(return_value=fail(404, "40400"))
    with sync_client() as client, pytest.raises(ClovaStudioNotFoundError):
        client.delete_tuning_task("czf9fbky", missing_ok=False)


# -- create: never repeated unless the server cannot have acted ---------------------------


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.WriteTimeout("write timed out"),
        fail(500, "50000", "Internal server error"),
        fail(503, "50000"),
        fail(504, "50400"),
        fail(408, "40800"),
        httpx.RemoteProtocolError("server disconnected without sending a response"),
        httpx.ReadError("connection reset by peer"),
        httpx.Response(200, text="<html>proxy</html>"),
    ],
    ids=lambda f: getattr(f, "status_code", type(f).__name__),
)
def test_create_not_retried_when_outcome_unknown(api: respx.MockRouter, sleeps: list[float], failure: Any) -> None:
    route = api.post(CREATE).mock(side_effect=[failure, ok(task_json())])
    with sync_client() as client, pytest.raises(ClovaStudioUnknownOutcomeError) as info:
        client.create_tuning_task("HCX-003", DATASET, name="my-run")
    assert route.call_count == 1
    assert sleeps == []
    exc = info.value
    assert exc.method == "POST"
    assert exc.path == CREATE
    assert exc.request_id
    assert "reconcile" in str(exc)
    assert not is_retryable(exc, idempotent=True)
    assert "os-sk" not in str(exc)


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("refused"), httpx.ConnectTimeout("connect")],
    ids=lambda f: type(f).__name__,
)
def test_create_retried_when_server_cannot_have_acted(api: respx.MockRouter, sleeps: list[float], failure: Any) -> None:
    route = api.post(CREATE).mock(side_effect=[failure, ok(task_json("newtask1", name="my-run"))])
    with sync_client() as client:
        task = client.create_tuning_task("HCX-003", DATASET, name="my-run")
    assert task.id == "newtask1"
    assert route.call_count == 2
    assert len(sleeps) == 1


def test_create_bad_request_is_not_retried_and_stays_bad_request(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.post(CREATE).mock(return_value=fail(400, "40001", "invalid trainEpochs"))
    with sync_client() as client, pytest.raises(ClovaStudioBadRequestError):
        client.create_tuning_task("HCX-003", DATASET)
    assert route.call_count == 1


def test_create_connect_errors_exhausted_raise_transport_error(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.post(CREATE).mock(side_effect=httpx.ConnectError("refused"))
    with sync_client(retry=RetryPolicy(max_attempts=3)) as client, pytest.raises(ClovaStudioTransportError) as info:
        client.create_tuning_task("HCX-003", DATASET)
    assert route.call_count == 3
    assert info.value.request_sent is False


@pytest.mark.parametrize("code", ["42901", "42902"])
def test_a_429_on_create_is_an_unknown_outcome_to_reconcile_not_a_blind_retry(
    api: respx.MockRouter, sleeps: list[float], code: str
) -> None:
    # The service may have made the task before a gateway answered 429: creating again blindly
    # could bill a second training, so the caller lists by name first (as for a 5xx).
    route = api.post(CREATE).mock(side_effect=[fail(429, code, headers={"Retry-After": "7"}), ok(task_json())])
    with sync_client() as client, pytest.raises(ClovaStudioUnknownOutcomeError) as info:
        client.create_tuning_task("HCX-003", DATASET)
    assert route.call_count == 1 and sleeps == []
    assert info.value.retry_after == 7.0 and info.value.http_status == 429


# -- async twins ---------------------------------------------------------------------------


async def test_async_429_then_success_with_retry_after(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.get(TASK).mock(side_effect=[fail(429, "42901", headers={"Retry-After": "5"}), ok(task_json())])
    async with async_client() as client:
        task = await client.get_tuning_task("czf9fbky")
    assert task.id == "czf9fbky"
    assert route.call_count == 2
    assert sleeps == [5.0]


async def test_async_no_retry_on_bad_signature(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.get(TASK).mock(return_value=fail(401, "40101"))
    async with async_client() as client:
        with pytest.raises(ClovaStudioAuthError):
            await client.get_tuning_task("czf9fbky")
    assert route.call_count == 1
    assert sleeps == []


async def test_async_attempts_are_bounded(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.get(TASK).mock(side_effect=httpx.ReadTimeout("slow"))
    async with async_client(retry=RetryPolicy(max_attempts=4)) as client:
        with pytest.raises(ClovaStudioTimeoutError):
            await client.get_tuning_task("czf9fbky")
    assert route.call_count == 4
    assert len(sleeps) == 3


@pytest.mark.parametrize("failure", TRANSIENT_GET_FAILURES, ids=lambda f: getattr(f, "status_code", type(f).__name__))
async def test_async_get_retried_after_transient_failures(
    api: respx.MockRouter, sleeps: list[float], failure: Any
) -> None:
    route = api.get(TASK).mock(side_effect=[failure, ok(task_json())])
    async with async_client() as client:
        assert (await client.get_tuning_task("czf9fbky")).id == "czf9fbky"
    assert route.call_count == 2


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("read"), fail(500, "50000"), httpx.RemoteProtocolError("dropped")],
    ids=lambda f: getattr(f, "status_code", type(f).__name__),
)
async def test_async_create_not_retried_when_outcome_unknown(
    api: respx.MockRouter, sleeps: list[float], failure: Any
) -> None:
    route = api.post(CREATE).mock(side_effect=[failure, ok(task_json())])
    async with async_client() as client:
        with pytest.raises(ClovaStudioUnknownOutcomeError):
            await client.create_tuning_task("HCX-003", DATASET)
    assert route.call_count == 1


@pytest.mark.parametrize("failure", [httpx.ConnectError("refused")], ids=["connect"])
async def test_async_create_retried_when_server_cannot_have_acted(
    api: respx.MockRouter, sleeps: list[float], failure: Any
) -> None:
    route = api.post(CREATE).mock(side_effect=[failure, ok(task_json("newtask1"))])
    async with async_client() as client:
        assert (await client.create_tuning_task("HCX-003", DATASET)).id == "newtask1"
    assert route.call_count == 2


# -- chat: retries and the limiter's reservations -------------------------------------------


def chat_route(api: respx.MockRouter, side_effect: list[Any]) -> respx.Route:
    return api.post("/v3/chat-completions/HCX-005").mock(side_effect=side_effect)


def test_chat_success_settles_with_real_usage(
    api: respx.MockRouter, sleeps: list[float], fake_limiter: FakeLimiter
) -> None:
    chat_route(api, [ok(V3_RESULT)])
    with sync_client() as client:
        result = client.chat_completion(MESSAGES, model="HCX-005", max_tokens=50)
    assert result.usage.prompt_tokens == 11
    (reservation,) = fake_limiter.reservations
    # estimated cost = input estimate + maxTokens; settled = real prompt tokens + maxTokens
    assert reservation.cost > 50
    assert reservation.settled == 11 + 50
    assert not reservation.released
    assert fake_limiter.key == ("acct-test", "HCX-005", "test")


def test_chat_budget_429_releases_and_slows_the_limiter(
    api: respx.MockRouter, sleeps: list[float], fake_limiter: FakeLimiter
) -> None:
    chat_route(api, [fail(429, "42901", headers={"Retry-After": "2"}), ok(V3_RESULT)])
    with sync_client() as client:
        client.chat_completion(MESSAGES, model="HCX-005")
    first, second = fake_limiter.reservations
    assert first.released and first.settled is None
    assert second.settled == 11 + 100  # default maxTokens reserved
    assert fake_limiter.rate_limited == [2.0]
    # The refused reservation goes along, so the limiter can tell 429 episodes apart.
    assert fake_limiter.rate_limited_reservations == [first]
    assert sleeps == [2.0]


def test_chat_overload_429_releases_without_slowing(
    api: respx.MockRouter, sleeps: list[float], fake_limiter: FakeLimiter
) -> None:
    chat_route(api, [fail(429, "42902"), ok(V3_RESULT)])
    with sync_client() as client:
        client.chat_completion(MESSAGES, model="HCX-005")
    assert fake_limiter.reservations[0].released
    assert fake_limiter.rate_limited == []


def test_chat_server_error_keeps_the_estimate_and_retries(
    api: respx.MockRouter, sleeps: list[float], fake_limiter: FakeLimiter
) -> None:
    route = chat_route(api, [fail(500, "50000"), httpx.ReadTimeout("slow"), ok(V3_RESULT)])
    with sync_client() as client:
        client.chat_completion(MESSAGES, model="HCX-005")
    assert route.call_count == 3
    first, second, third = fake_limiter.reservations
    # The server may have counted these: the estimate stays in the window.
    assert not first.released and first.settled is None
    assert not second.released and second.settled is None
    assert third.settled is not None


def test_chat_connect_error_releases(api: respx.MockRouter, sleeps: list[float], fake_limiter: FakeLimiter) -> None:
    chat_route(api, [httpx.ConnectError("refused"), ok(V3_RESULT)])
    with sync_client() as client:
        client.chat_completion(MESSAGES, model="HCX-005")
    assert fake_limiter.reservations[0].released


def test_chat_bad_request_not_retried(api: respx.MockRouter, sleeps: list[float], fake_limiter: FakeLimiter) -> None:
    route = chat_route(api, [fail(400, "40003", "too long")])
    with sync_client() as client, pytest.raises(ClovaStudioBadRequestError) as info:
        client.chat_completion(MESSAGES, model="HCX-005")
    assert route.call_count == 1
    assert "shorten" in str(info.value)


def test_chat_with_missing_usage_keeps_the_estimate(
    api: respx.MockRouter, sleeps: list[float], fake_limiter: FakeLimiter
) -> None:
    chat_route(api, [ok({"message": {"role": "assistant", "content": "x"}})])
    with sync_client() as client:
        client.chat_completion(MESSAGES, model="HCX-005", max_tokens=40)
    (reservation,) = fake_limiter.reservations
    # No usage reported: do not settle at 0 + maxTokens (under-charging earns 429s).
    assert reservation.settled in (None, reservation.cost)


async def test_async_chat_429_then_success(
    api: respx.MockRouter, sleeps: list[float], fake_limiter: FakeLimiter
) -> None:
    chat_route(api, [fail(429, "42901"), ok(V3_RESULT)])
    async with async_client() as client:
        result = await client.chat_completion(MESSAGES, model="HCX-005")
    assert result.content == "네"
    assert fake_limiter.async_acquires == 2
    assert fake_limiter.reservations[0].released
    assert fake_limiter.rate_limited == [None]
    assert fake_limiter.reservations[1].settled == 111


async def test_async_chat_server_errors_bounded(
    api: respx.MockRouter, sleeps: list[float], fake_limiter: FakeLimiter
) -> None:
    route = chat_route(api, [fail(503, "50000")] * 3)
    async with async_client(retry=RetryPolicy(max_attempts=3)) as client:
        with pytest.raises(ClovaStudioServerError):
            await client.chat_completion(MESSAGES, model="HCX-005")
    assert route.call_count == 3


# -- the real limiter, on a fake clock -----------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture
def real_limiter_factory() -> Callable[..., Any]:
    from airflow_provider_clova.client import limiter as limiter_module

    created: list[Any] = []

    def install(client: Any, model: str, fake_time: FakeTime) -> Any:
        """Put a fake-clock RateLimiter in the shared registry under the client's key."""
        from airflow_provider_clova.client.limits import lookup_budget

        config = client.config
        budget = lookup_budget(model, config.app_type, config.limits)
        key = (config.account_id, model, config.app_type)
        limiter = limiter_module.RateLimiter(
            budget,
            window_seconds=config.rate_window_seconds,
            share=config.rate_share,
            name=f"{model}/{config.app_type}",
            clock=fake_time.clock,
            sleep=fake_time.sleep,
            asleep=fake_time.asleep,
        )
        with limiter_module._registry_lock:
            limiter_module._registry[key] = limiter
        created.append(key)
        return limiter

    yield install
    limiter_module.clear_shared_limiters()


def test_chat_retry_through_the_real_limiter(
    api: respx.MockRouter, sleeps: list[float], real_limiter_factory: Callable[..., Any]
) -> None:
    from airflow_provider_clova.client.limiter import shared_limiter
    from airflow_provider_clova.client.limits import lookup_budget

    fake_time = FakeTime()
    route = chat_route(api, [fail(429, "42901", headers={"Retry-After": "4"}), ok(V3_RESULT), ok(V3_RESULT)])
    with sync_client() as client:
        limiter = real_limiter_factory(client, "HCX-005", fake_time)
        # The client finds the same shared instance for its (account, model, app type).
        config = client.config
        assert (
            shared_limiter(
                (config.account_id, "HCX-005", "test"),
                lookup_budget("HCX-005", "test", config.limits),
                window_seconds=config.rate_window_seconds,
                share=config.rate_share,
            )
            is limiter
        )
        client.chat_completion(MESSAGES, model="HCX-005", max_tokens=20)
        snap = limiter.snapshot()
        assert snap["rate_limited_total"] == 1
        assert snap["granted_total"] == 2
        # The refused attempt was released; the successful one settled at usage + maxTokens.
        assert snap["used_qpm"] == 1
        assert snap["used_tpm"] == 11 + 20
        # The limiter paused every caller for Retry-After before the retry was committed.
        assert sum(fake_time.slept) >= 4.0
        client.chat_completion(MESSAGES, model="HCX-005", max_tokens=20)
        assert limiter.snapshot()["used_qpm"] == 2
    assert route.call_count == 3
    assert sleeps == [4.0]


async def test_async_chat_through_the_real_limiter(
    api: respx.MockRouter, sleeps: list[float], real_limiter_factory: Callable[..., Any]
) -> None:
    fake_time = FakeTime()
    chat_route(api, [ok(V3_RESULT), ok(V3_RESULT)])
    async with async_client() as client:
        limiter = real_limiter_factory(client, "HCX-005", fake_time)
        await client.chat_completion(MESSAGES, model="HCX-005", max_tokens=20)
        await client.chat_completion(MESSAGES, model="HCX-005", max_tokens=20)
    snap = limiter.snapshot()
    assert snap["granted_total"] == 2
    assert snap["used_tpm"] == 2 * (11 + 20)
    # Burst-free pacing spaced the second request on the fake clock, never the real one.
    assert fake_time.slept


# -- the elapsed-time bound counts the first attempt (made before tenacity runs) ----------------


class SteppingClock:
    """``time.monotonic`` stand-in: every request the mocked server answers costs ``step`` s."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def monotonic(self) -> float:
        return self.now

    def answer(self, response: Any) -> Callable[[httpx.Request], Any]:
        def side_effect(request: httpx.Request) -> Any:
            self.now += self.step
            return response

        return side_effect


def test_elapsed_bound_counts_the_first_attempt(
    api: respx.MockRouter, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_clova.client import client as client_module
    from airflow_provider_clova.client import retry as retry_module

    clock = SteppingClock(step=6.0)
    monkeypatch.setattr(client_module, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(retry_module, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    route = api.get(TASK).mock(side_effect=clock.answer(fail(503, "50000")))
    policy = RetryPolicy(max_attempts=10, max_elapsed_seconds=10.0)
    with sync_client(retry=policy) as client, pytest.raises(ClovaStudioServerError):
        client.get_tuning_task("czf9fbky")
    # t=6 after the first attempt (< 10: retry), t=12 after the second (>= 10: stop).
    assert route.call_count == 2
    assert len(sleeps) == 1


async def test_async_elapsed_bound_counts_the_first_attempt(
    api: respx.MockRouter, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_clova.client import client as client_module
    from airflow_provider_clova.client import retry as retry_module

    clock = SteppingClock(step=11.0)
    monkeypatch.setattr(client_module, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(retry_module, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    route = api.get(TASK).mock(side_effect=clock.answer(fail(503, "50000")))
    async with async_client(retry=RetryPolicy(max_attempts=10, max_elapsed_seconds=10.0)) as client:
        with pytest.raises(ClovaStudioServerError):
            await client.get_tuning_task("czf9fbky")
    assert route.call_count == 1
    assert sleeps == []


def test_first_failure_is_replayed_as_attempt_one(api: respx.MockRouter, sleeps: list[float]) -> None:
    # max_attempts counts the attempt made before the retry loop: 3 means 3 requests in all.
    route = api.get(TASK).mock(return_value=fail(429, "42902", headers={"Retry-After": "1"}))
    with sync_client(retry=RetryPolicy(max_attempts=3)) as client, pytest.raises(ClovaStudioRateLimitError):
        client.get_tuning_task("czf9fbky")
    assert route.call_count == 3
    assert sleeps == [1.0, 1.0]


def test_non_api_errors_are_not_retried(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.get(TASK).mock(side_effect=RuntimeError("bug in a transport"))
    with sync_client() as client, pytest.raises(Exception, match="bug in a transport"):
        client.get_tuning_task("czf9fbky")
    assert route.call_count == 1
    assert sleeps == []


def test_chat_uses_the_shared_real_limiter_by_default(api: respx.MockRouter, sleeps: list[float]) -> None:
    from dataclasses import replace

    from airflow_provider_clova.client import limiter as limiter_module

    limiter_module.clear_shared_limiters()
    try:
        chat_route(api, [ok(V3_RESULT)])
        api.post("/v3/tasks/abcd1234/chat-completions").mock(return_value=ok(V3_RESULT))
        # A large budget, so the burst-free pacing of the real (real-clock) limiter spaces
        # the two requests by well under a millisecond.
        limits = {"HCX-005": {"qpm": 600_000, "tpm": 100_000_000}}
        config = replace(make_config(), limits=limits, rate_share=0.5)
        with ClovaStudioClient(config) as client:
            client.chat_completion(MESSAGES, model="HCX-005", max_tokens=20)
            limiter = limiter_module._registry[("acct-test", "HCX-005", "test")]
            snap = limiter.snapshot()
            assert snap["budget"] == {"qpm": 600_000, "tpm": 100_000_000}
            assert snap["share"] == 0.5
            assert snap["granted_total"] == 1
            assert snap["used_tpm"] == 11 + 20  # settled to the reported usage + maxTokens
            # A tuned task pays from its base model's budget: the same limiter.
            client.chat_completion(MESSAGES, model="HCX-005", task_id="abcd1234", max_tokens=20)
        assert limiter_module._registry[("acct-test", "HCX-005", "test")] is limiter
        assert limiter.snapshot()["granted_total"] == 2
    finally:
        limiter_module.clear_shared_limiters()


# -- a caller's deadline bounds every attempt, retries included -----------------------------


@pytest.fixture
def virtual_time(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """``time.monotonic`` on a virtual clock that the retry loop's sleeps (and the fake server) move."""
    import functools
    import time

    import tenacity

    from airflow_provider_clova.client import client as client_module

    now = [1000.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    async def asleep(seconds: float) -> None:
        now[0] += seconds

    fake = types.SimpleNamespace(
        Retrying=functools.partial(tenacity.Retrying, sleep=sleep),
        AsyncRetrying=functools.partial(tenacity.AsyncRetrying, sleep=asleep),
    )
    monkeypatch.setattr(client_module, "tenacity", fake)
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    return now


def slow_answers(now: list[float], answers: list[httpx.Response], seconds: float) -> Callable[..., httpx.Response]:
    """Each answer takes ``seconds`` (or the attempt's own read timeout, if shorter) to arrive."""
    queue = list(answers)

    def answer(request: httpx.Request) -> httpx.Response:
        allowed = request.extensions.get("timeout", {}).get("read") or seconds
        if allowed < seconds:
            now[0] += allowed
            raise httpx.ReadTimeout("timed out", request=request)
        now[0] += seconds
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return answer


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_retries_inside_one_call_stop_at_the_callers_deadline(
    api: respx.MockRouter, virtual_time: list[float], asynchronous: bool
) -> None:
    now = virtual_time
    route = api.get(TASK).mock(side_effect=slow_answers(now, [fail(503, "50000")] * 20 + [ok(task_json())], 0.2))
    policy = RetryPolicy(max_attempts=20, initial_backoff_seconds=0.5, max_backoff_seconds=2.0)
    deadline = now[0] + 1.5
    with pytest.raises((ClovaStudioServerError, ClovaStudioTimeoutError)):
        if asynchronous:
            async with async_client(retry=policy) as aclient:
                await aclient.get_tuning_task("czf9fbky", deadline=deadline)
        else:
            with sync_client(retry=policy) as client:
                client.get_tuning_task("czf9fbky", deadline=deadline)
    assert now[0] <= deadline + 1e-6  # no attempt and no backoff carried it past
    assert route.call_count >= 2  # it did retry while there was time


def test_no_attempt_starts_after_the_deadline(api: respx.MockRouter, virtual_time: list[float]) -> None:
    route = api.get(TASK).mock(return_value=ok(task_json()))
    with sync_client() as client, pytest.raises(ClovaStudioTimeoutError, match="deadline"):
        client.get_tuning_task("czf9fbky", deadline=virtual_time[0] - 0.1)
    assert route.call_count == 0


def test_an_attempt_does_not_wait_for_its_answer_past_the_deadline(
    api: respx.MockRouter, virtual_time: list[float]
) -> None:
    now = virtual_time
    api.get(TASK).mock(side_effect=slow_answers(now, [ok(task_json())], 5.0))  # would answer after 5 s
    deadline = now[0] + 1.0
    with sync_client(retry=NO_RETRY) as client, pytest.raises(ClovaStudioTimeoutError):
        client.get_tuning_task("czf9fbky", deadline=deadline)
    assert now[0] == pytest.approx(deadline)


def test_a_tuning_wait_never_answers_after_its_timeout(api: respx.MockRouter, virtual_time: list[float]) -> None:
    """The fault storm's finding: timeout=1.5 s, 503s retried inside one poll, SUCCEEDED arriving
    just after the deadline: the wait must time out, at the deadline."""
    from airflow_provider_clova.client.polling import PollPolicy, TuningPoller

    now = virtual_time
    succeeded = ok(task_json(status="SUCCEEDED"))
    api.get(TASK).mock(side_effect=slow_answers(now, [ok(task_json()), *[fail(503, "50000")] * 6, succeeded], 0.25))
    policy = RetryPolicy(max_attempts=6, initial_backoff_seconds=0.2, max_backoff_seconds=1.0)

    def sleep(seconds: float) -> None:
        now[0] += seconds

    start = now[0]
    with sync_client(retry=policy) as client:
        poller = TuningPoller.with_timeout("czf9fbky", PollPolicy(0.5, 1.0), 1.5)
        event = poller.wait_sync(lambda: client.get_tuning_task("czf9fbky", deadline=poller.client_deadline()), sleep)
    assert event.status == "timeout"
    assert now[0] <= start + 1.5 + 1e-6
