"""ClovaStudioHook: a connection from an environment variable, for every auth scheme, with
secrets masked, errors naming the field, and the sync and async calls wired to the core."""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from typing import Any

import pytest
import respx

from airflow_provider_clova.client import client as client_module
from airflow_provider_clova.client.auth import BearerAuth, LegacyKeyAuth, SignatureV2Auth
from airflow_provider_clova.client.calls import TuningDataset
from airflow_provider_clova.client.client import REQUEST_ID_HEADER, AsyncClovaStudioClient
from airflow_provider_clova.client.errors import ClovaStudioConfigError, ClovaStudioNotFoundError
from airflow_provider_clova.client.models import TuningStatus
from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook
from airflow_provider_clova.testing.samples import fail, ok, openai_completion, task_json
from tests.unit.client.conftest import FakeLimiter

HOST = "https://clova.hooktest.invalid"
ACCESS_KEY = "ncp_iam_BPAMKR-hook-access-0001"
SECRET_KEY = "hook-secret-key-0f1e2d3c4b5a69788796"
API_KEY = "nv-hook-api-key-abcdefabcdef0123456789"
GATEWAY_KEY = "hook-apigw-key-99887766554433221100"
ENV = "AIRFLOW_CONN_CLOVA_STUDIO_DEFAULT"
V3_RESULT = {
    "message": {"role": "assistant", "content": "ok"},
    "finishReason": "stop",
    "usage": {"promptTokens": 9, "completionTokens": 1, "totalTokens": 10},
}


def set_conn(monkeypatch: pytest.MonkeyPatch, env: str = ENV, **fields: Any) -> None:
    body = {"conn_type": "clova_studio", "host": HOST, **fields}
    monkeypatch.setenv(env, json.dumps(body))


def redact(text: str) -> Any:
    try:
        from airflow.sdk._shared.secrets_masker import redact as _redact
    except ImportError:  # Airflow 2.11
        from airflow.utils.log.secrets_masker import redact as _redact  # type: ignore[no-redef]
    return _redact(text)


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=HOST, assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    import functools

    import tenacity

    recorded: list[float] = []

    async def async_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(
        client_module,
        "tenacity",
        types.SimpleNamespace(
            Retrying=functools.partial(tenacity.Retrying, sleep=recorded.append),
            AsyncRetrying=functools.partial(tenacity.AsyncRetrying, sleep=async_sleep),
        ),
    )
    return recorded


@pytest.fixture
def fake_limiter(monkeypatch: pytest.MonkeyPatch) -> FakeLimiter:
    limiter = FakeLimiter()

    def limiter_for(self: Any, call: Any) -> FakeLimiter | None:
        if call.budget_model is None:
            return None
        limiter.key = (self.config.account_id, call.budget_model, self.config.app_type, self.config.rate_share)
        return limiter

    monkeypatch.setattr(client_module._BaseClient, "_limiter_for", limiter_for)
    return limiter


# -- each auth scheme from the environment variable ---------------------------------------


def test_signature_v2_from_env(monkeypatch: pytest.MonkeyPatch, api: respx.MockRouter) -> None:
    set_conn(monkeypatch, login=ACCESS_KEY, password=SECRET_KEY)
    route = api.get("/tuning/v2/tasks/czf9fbky").mock(return_value=ok(task_json()))
    hook = ClovaStudioHook()
    assert hook.config.auth_type == "apigw_v2"
    assert isinstance(hook.config.credentials.signature, SignatureV2Auth)
    assert hook.config.url_for("apigw_v2") == HOST
    task = hook.get_tuning_task("czf9fbky")
    assert task.status is TuningStatus.WAIT
    headers = route.calls.last.request.headers
    assert headers["X-NCP-IAM-ACCESS-KEY"] == ACCESS_KEY
    assert headers["X-NCP-APIGW-SIGNATURE-V2"]
    assert headers[REQUEST_ID_HEADER]


def test_bearer_from_env(monkeypatch: pytest.MonkeyPatch, api: respx.MockRouter) -> None:
    set_conn(monkeypatch, password=API_KEY)
    route = api.get("/tuning/v2/tasks/czf9fbky").mock(return_value=ok(task_json()))
    hook = ClovaStudioHook()
    assert hook.config.auth_type == "bearer"
    assert isinstance(hook.config.credentials.bearer, BearerAuth)
    hook.get_tuning_task("czf9fbky")
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {API_KEY}"


def test_legacy_keys_from_env_extra(
    monkeypatch: pytest.MonkeyPatch, api: respx.MockRouter, fake_limiter: FakeLimiter
) -> None:
    set_conn(
        monkeypatch,
        password=API_KEY,
        extra={"auth_type": "legacy_keys", "apigw_api_key": GATEWAY_KEY, "app_type": "service"},
    )
    v1_result = {"message": {"role": "assistant", "content": "ok"}, "stopReason": "end_token", "inputLength": 9}
    route = api.post("/serviceapp/v1/chat-completions/HCX-003").mock(return_value=ok(v1_result))
    hook = ClovaStudioHook()
    assert isinstance(hook.config.credentials.legacy, LegacyKeyAuth)
    result = hook.chat_completion([{"role": "user", "content": "hi"}], model="HCX-003", max_tokens=30)
    assert result.usage.prompt_tokens == 9
    headers = route.calls.last.request.headers
    assert headers["X-NCP-CLOVASTUDIO-API-KEY"] == API_KEY
    assert headers["X-NCP-APIGW-API-KEY"] == GATEWAY_KEY
    assert fake_limiter.key[2] == "service"


def test_prefixed_extras_from_the_ui_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(
        monkeypatch,
        password=API_KEY,
        extra={
            "extra__clova_studio__auth_type": "legacy_keys",
            "extra__clova_studio__apigw_api_key": GATEWAY_KEY,
            "extra__clova_studio__app_type": "service",
            "extra__clova_studio__timeout": 15,
            "extra__clova_studio__verify": "",  # empty UI field: ignored, default applies
        },
    )
    config = ClovaStudioHook().config
    assert config.auth_type == "legacy_keys"
    assert config.app_type == "service"
    assert config.timeout == 15.0
    assert config.verify is True


def test_other_conn_id_and_rate_share(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, env="AIRFLOW_CONN_MY_CLOVA", password=API_KEY, extra={"limits": {"HCX-005": {"qpm": 30}}})
    hook = ClovaStudioHook(clova_conn_id="my_clova", rate_share=0.25)
    assert hook.config.rate_share == 0.25
    assert hook.config.limits == {"HCX-005": {"qpm": 30}}
    with pytest.raises(ClovaStudioConfigError, match="rate_share"):
        ClovaStudioHook(rate_share=0)
    with pytest.raises(ClovaStudioConfigError, match="rate_share"):
        ClovaStudioHook(rate_share=1.5)


def test_with_rate_share_reuses_the_settings_without_reading_the_connection_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_conn(monkeypatch, password=API_KEY, extra={"pool_slots": 8})
    hook = ClovaStudioHook()
    assert hook.config.pool_slots == 8
    monkeypatch.delenv(ENV)  # a second read of the connection would now fail
    quarter = hook.with_rate_share(0.25)
    assert quarter.config.rate_share == 0.25 and hook.config.rate_share == 1.0
    assert quarter.config.account_id == hook.config.account_id and quarter.config.pool_slots == 8


# -- missing or contradictory fields ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"login": ACCESS_KEY}, "'password'"),
        ({"login": ACCESS_KEY, "password": API_KEY, "extra": {"auth_type": "bearer"}}, "'login'"),
        ({"password": API_KEY, "extra": {"auth_type": "legacy_keys"}}, "extra.apigw_api_key"),
        ({"password": API_KEY, "extra": {"unknown_key": 1}}, "unknown_key"),
        ({"password": API_KEY, "extra": {"app_type": "production"}}, "extra.app_type"),
        ({"password": API_KEY, "extra": "this is not json"}, "extra is not valid JSON"),
        ({"password": API_KEY, "extra": {"auth_type": "sigv4"}}, "extra.auth_type"),
        ({"password": API_KEY, "extra": {"extra__clova_studio__app_type": "prod"}}, "extra.app_type"),
        ({"password": API_KEY, "extra": {"pool_slots": 0}}, "extra.pool_slots"),
        ({"password": API_KEY, "extra": {"pool_slots": "many"}}, "extra.pool_slots"),
    ],
)
def test_bad_connection_fails_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], named: str
) -> None:
    set_conn(monkeypatch, **fields)
    hook = ClovaStudioHook()
    with pytest.raises(ClovaStudioConfigError) as info:
        hook.get_conn()
    text = str(info.value)
    assert named in text
    assert "clova_studio_default" in text or "extra" in text
    for secret in (API_KEY, SECRET_KEY, GATEWAY_KEY):
        assert secret not in text


# -- masking -----------------------------------------------------------------------------------


def _serve_connection(monkeypatch: pytest.MonkeyPatch, conn: Any) -> None:
    """Both connection lookups of the hook answer ``conn`` (a plain object, so only the hook,
    not Airflow's connection loading, can have registered its secrets with the masker)."""
    from airflow_provider_clova.hooks import clova_studio

    async def aget(conn_id: str, hook: Any = None) -> Any:
        return conn

    monkeypatch.setattr(ClovaStudioHook, "get_connection", classmethod(lambda cls, conn_id: conn))
    monkeypatch.setattr(clova_studio, "get_async_connection", aget)


async def _build(path: str) -> None:
    """Read the connection the way the sync path (operators) or the async path (triggers) does."""
    if path == "sync":
        ClovaStudioHook().config  # noqa: B018
    else:
        client = await ClovaStudioHook().aget_async_conn()
        await client.aclose()


@pytest.mark.parametrize("path", ["sync", "async"])
async def test_password_registered_with_the_masker(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    password = f"nv-only-the-hook-knows-this-5f6e7d8c-{path}"
    gateway = f"apigw-only-the-hook-knows-this-1a2b3c-{path}"
    conn = types.SimpleNamespace(
        host=HOST,
        login=None,
        password=password,
        extra=json.dumps({"auth_type": "legacy_keys", "apigw_api_key": gateway}),
        schema=None,
        port=None,
    )
    _serve_connection(monkeypatch, conn)
    await _build(path)
    line = f"calling with key={password} and gateway {gateway}"
    redacted = redact(line)
    assert password not in redacted
    assert gateway not in redacted
    assert "***" in redacted


@pytest.mark.parametrize("path", ["sync", "async"])
async def test_budget_store_password_registered_with_the_masker(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    store_password = f"redis-pw-only-the-hook-knows-{path}"
    conn = types.SimpleNamespace(
        host=HOST,
        login=None,
        password=API_KEY,
        extra=json.dumps({"budget_store": f"redis://:{store_password}@redis.internal:6379/0"}),
        schema=None,
        port=None,
    )
    _serve_connection(monkeypatch, conn)
    await _build(path)
    assert store_password not in redact(f"connecting to redis://:{store_password}@redis.internal:6379/0")


@pytest.mark.parametrize("path", ["sync", "async"])
@pytest.mark.parametrize("extra", ['{"app_type": "nope"}', "not json at all"])
async def test_password_masked_even_when_the_connection_is_invalid(
    monkeypatch: pytest.MonkeyPatch, path: str, extra: str
) -> None:
    password = f"nv-masked-before-validation-77aa88bb-{path}-{len(extra)}"
    conn = types.SimpleNamespace(host=HOST, login=None, password=password, extra=extra, schema=None, port=None)
    _serve_connection(monkeypatch, conn)
    with pytest.raises(ClovaStudioConfigError):
        await _build(path)
    assert password not in redact(f"x {password} y")


def test_env_connection_secret_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, login=ACCESS_KEY, password=SECRET_KEY)
    ClovaStudioHook().get_conn()
    assert SECRET_KEY not in redact(f"secret is {SECRET_KEY}")


@pytest.mark.parametrize("path", ["sync", "async"])
async def test_api_key_next_to_iam_keys_is_masked(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    api_key = f"nv-next-to-iam-keys-0c1d2e3f-{path}"
    set_conn(monkeypatch, login=ACCESS_KEY, password=SECRET_KEY, extra={"api_key": api_key})
    await _build(path)
    assert api_key not in redact(f"chat with {api_key}")


# -- test_connection -----------------------------------------------------------------------------


def test_test_connection_true(monkeypatch: pytest.MonkeyPatch, api: respx.MockRouter) -> None:
    set_conn(monkeypatch, login=ACCESS_KEY, password=SECRET_KEY)
    route = api.get("/tuning/v2/tasks").mock(
        return_value=ok({"content": [task_json()], "totalPages": 3, "totalElements": 3, "size": 1, "number": 0})
    )
    ok_, message = ClovaStudioHook().test_connection()
    assert ok_ is True
    assert message == f"IAM keys (signature v2) at {HOST}: OK, 3 tuning task(s)"
    assert route.calls.last.request.url.raw_path == b"/tuning/v2/tasks?page=0&size=1"


def test_test_connection_checks_each_credential(monkeypatch: pytest.MonkeyPatch, api: respx.MockRouter) -> None:
    set_conn(monkeypatch, login=ACCESS_KEY, password=SECRET_KEY, extra={"api_key": API_KEY})

    def answer(request: Any) -> Any:
        if "Authorization" in request.headers:
            return fail(401, "40104", "Invalid API key")
        return ok({"content": [], "totalPages": 0, "totalElements": 0, "size": 1, "number": 0})

    route = api.get("/tuning/v2/tasks").mock(side_effect=answer)
    ok_, message = ClovaStudioHook().test_connection()
    assert ok_ is False  # one credential failing fails the test, and the message says which
    bearer, signed = message.split(f"; IAM keys (signature v2) at {HOST}: ")
    assert bearer.startswith(f"API key (Bearer) at {HOST}: FAILED: ") and "40104" in bearer
    assert signed == "OK, 0 tuning task(s)"
    assert route.call_count == 2
    assert API_KEY not in message and SECRET_KEY not in message


def test_test_connection_with_legacy_keys_counts_tokens(monkeypatch: pytest.MonkeyPatch, api: respx.MockRouter) -> None:
    set_conn(monkeypatch, password=API_KEY, extra={"auth_type": "legacy_keys", "apigw_api_key": GATEWAY_KEY})
    route = api.post("/testapp/v1/api-tools/chat-tokenize/HCX-003").mock(return_value=ok({"messages": [{"count": 5}]}))
    ok_, message = ClovaStudioHook().test_connection()
    assert (ok_, message) == (True, f"legacy app keys at {HOST}: OK, token count works")
    assert route.calls.last.request.headers["X-NCP-APIGW-API-KEY"] == GATEWAY_KEY


def test_test_connection_false_on_bad_signature(monkeypatch: pytest.MonkeyPatch, api: respx.MockRouter) -> None:
    set_conn(monkeypatch, login=ACCESS_KEY, password=SECRET_KEY)
    route = api.get("/tuning/v2/tasks").mock(return_value=fail(401, "40101", "Invalid signature"))
    ok_, message = ClovaStudioHook().test_connection()
    assert ok_ is False
    assert "40101" in message and "secret key" in message
    assert SECRET_KEY not in message
    assert route.call_count == 1


def test_test_connection_false_on_bad_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, password=API_KEY, extra={"auth_type": "legacy_keys"})
    ok_, message = ClovaStudioHook().test_connection()
    assert ok_ is False
    assert "extra.apigw_api_key" in message


def test_test_connection_retries_briefly(
    monkeypatch: pytest.MonkeyPatch, api: respx.MockRouter, sleeps: list[float]
) -> None:
    set_conn(monkeypatch, password=API_KEY)
    route = api.get("/tuning/v2/tasks").mock(return_value=fail(503, "50000", "down"))
    ok_, message = ClovaStudioHook().test_connection()
    assert ok_ is False
    assert "50000" in message
    assert route.call_count <= 2
    assert sum(sleeps) <= 10


# -- the calls -----------------------------------------------------------------------------------


def test_hook_tuning_calls(monkeypatch: pytest.MonkeyPatch, api: respx.MockRouter) -> None:
    set_conn(monkeypatch, password=API_KEY)
    create = api.post("/tuning/v2/tasks").mock(return_value=ok(task_json("newtask1", name="run-a")))
    pages = [
        ok(
            {
                "content": [
                    task_json("old00001", name="run-a", createdDate="2024-01-01T00:00:00+0900"),
                    task_json("other001", name="run-b"),
                ],
                "totalPages": 2,
                "totalElements": 3,
                "size": 50,
                "number": 0,
            }
        ),
        ok(
            {
                "content": [task_json("new00001", name="run-a", createdDate="2024-02-01T00:00:00+0900")],
                "totalPages": 2,
                "totalElements": 3,
                "size": 50,
                "number": 1,
            }
        ),
    ]
    api.get("/tuning/v2/tasks").mock(side_effect=pages)
    delete = api.delete("/tuning/v2/tasks/newtask1").mock(return_value=ok())
    hook = ClovaStudioHook()
    dataset = TuningDataset(bucket="b", key="k.jsonl", access_key="a", secret_key="s")
    assert hook.create_tuning_task("HCX-003", dataset, name="run-a", train_epochs=2).id == "newtask1"
    assert json.loads(create.calls.last.request.content)["trainEpochs"] == 2
    assert [t.id for t in hook.find_tuning_tasks("run-a")] == ["new00001", "old00001"]
    assert hook.delete_tuning_task("newtask1") is True
    assert delete.called
    assert hook.get_conn() is hook.get_conn()  # cached
    hook.close()


def test_hook_delete_missing(monkeypatch: pytest.MonkeyPatch, api: respx.MockRouter) -> None:
    set_conn(monkeypatch, password=API_KEY)
    api.delete("/tuning/v2/tasks/gone0001").mock(return_value=fail(404, "40400", "not found"))
    hook = ClovaStudioHook()
    assert hook.delete_tuning_task("gone0001") is False
    with pytest.raises(ClovaStudioNotFoundError):
        hook.delete_tuning_task("gone0001", missing_ok=False)


def test_hook_base_model(monkeypatch: pytest.MonkeyPatch, api: respx.MockRouter) -> None:
    """What the chat and batch operators call: the given model, the task's base model, or a config error."""
    set_conn(monkeypatch, password=API_KEY)
    tuned = api.get("/tuning/v2/tasks/tuned001").mock(return_value=ok(task_json("tuned001", model="HCX-003")))
    api.get("/tuning/v2/tasks/nomodel1").mock(return_value=ok(task_json("nomodel1", model="")))
    hook = ClovaStudioHook()
    assert hook.base_model("HCX-005", "tuned001") == "HCX-005" and tuned.call_count == 0
    assert hook.base_model(None, "tuned001") == "HCX-003"
    assert hook.base_model(None, "tuned001") == "HCX-003" and tuned.call_count == 1
    with pytest.raises(ClovaStudioConfigError, match=r"tuning task nomodel1 reports no base model.*Fix: pass model="):
        hook.base_model(None, "nomodel1")
    with pytest.raises(ClovaStudioConfigError, match="Fix: pass model="):
        hook.base_model(None, None)


def test_hook_count_tokens(monkeypatch: pytest.MonkeyPatch, api: respx.MockRouter) -> None:
    set_conn(monkeypatch, password=API_KEY)
    api.post("/v3/api-tools/chat-tokenize/HCX-005").mock(return_value=ok({"messages": [{"count": 12}]}))
    assert ClovaStudioHook().count_tokens([{"role": "user", "content": "hi"}], "HCX-005") == 12


def test_hooks_on_one_connection_share_the_pooled_client_and_close_only_lets_go(
    monkeypatch: pytest.MonkeyPatch, api: respx.MockRouter
) -> None:
    set_conn(monkeypatch, password=API_KEY)
    api.get("/tuning/v2/tasks/czf9fbky").mock(return_value=ok(task_json()))
    hook, other = ClovaStudioHook(), ClovaStudioHook()
    first = hook.get_conn()
    assert other.get_conn() is first  # one pooled client per connection in this process
    hook.close()
    hook.close()  # harmless twice
    assert not first.is_closed  # still serving the other hook
    assert other.get_tuning_task("czf9fbky").id == "czf9fbky"
    assert hook.get_conn() is first


# -- async ---------------------------------------------------------------------------------------


async def test_aget_tuning_task_via_aget_connection(monkeypatch: pytest.MonkeyPatch, api: respx.MockRouter) -> None:
    set_conn(monkeypatch, login=ACCESS_KEY, password=SECRET_KEY)
    route = api.get("/tuning/v2/tasks/czf9fbky").mock(
        return_value=ok(task_json(status="RUNNING", currStep=5, totalTrainSteps=10))
    )
    hook = ClovaStudioHook()
    task = await hook.aget_tuning_task("czf9fbky")
    assert task.status is TuningStatus.RUNNING
    assert task.status_info.progress == 0.5
    assert route.calls.last.request.headers["X-NCP-IAM-ACCESS-KEY"] == ACCESS_KEY
    # The sync path was not needed: no cached sync client was made.
    assert "_client" not in hook.__dict__


async def test_aget_async_conn_uses_the_async_connection_getter(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_clova.hooks import clova_studio as hook_module

    seen: list[str] = []

    async def fake_aget_connection(conn_id: str, hook: Any = None) -> Any:
        seen.append(conn_id)
        return types.SimpleNamespace(host=HOST, login=None, password=API_KEY, extra=None, schema=None, port=None)

    monkeypatch.setattr(hook_module, "get_async_connection", fake_aget_connection)
    hook = ClovaStudioHook(clova_conn_id="async_conn")
    client = await hook.aget_async_conn()
    try:
        assert isinstance(client, AsyncClovaStudioClient)
        assert client.config.auth_type == "bearer"
    finally:
        await client.aclose()
    assert seen == ["async_conn"]


async def test_achat_and_acount(
    monkeypatch: pytest.MonkeyPatch, api: respx.MockRouter, fake_limiter: FakeLimiter, sleeps: list[float]
) -> None:
    set_conn(monkeypatch, password=API_KEY)
    chat = api.post("/v3/chat-completions/HCX-005").mock(side_effect=[fail(429, "42901"), ok(V3_RESULT)])
    api.post("/v3/api-tools/chat-tokenize/HCX-005").mock(return_value=ok({"totalTokens": 4}))
    hook = ClovaStudioHook(rate_share=0.5)
    result = await hook.achat_completion([{"role": "user", "content": "hi"}], model="HCX-005")
    assert result.content == "ok"
    assert chat.call_count == 2
    assert fake_limiter.async_acquires == 2
    assert fake_limiter.key[3] == 0.5
    assert await hook.acount_tokens([{"role": "user", "content": "hi"}], "HCX-005") == 4


async def test_aget_tuning_task_bad_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, password=API_KEY, extra={"app_type": "prod"})
    with pytest.raises(ClovaStudioConfigError, match=r"extra\.app_type"):
        await ClovaStudioHook().aget_tuning_task("czf9fbky")


# -- the OpenAI-compatible API through the openai SDK ------------------------------------------------


OPENAI_COMPLETION = openai_completion()


def _sdk_transport(seen: list[Any], *, asynchronous: bool = False) -> Any:
    """An in-memory transport for the openai SDK's own HTTP client (respx patches only httpx,
    and openai 3.x ships its own fork of it): answers a chat completion, records each request."""
    import importlib

    import openai

    client_class = openai.DefaultAsyncHttpxClient if asynchronous else openai.DefaultHttpxClient
    http = importlib.import_module(client_class.__mro__[1].__module__.split(".")[0])

    def answer(request: Any) -> Any:
        seen.append(request)
        return http.Response(200, json=OPENAI_COMPLETION)

    return client_class(transport=http.MockTransport(answer))


def test_openai_client_uses_the_api_key_and_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, login=ACCESS_KEY, password=SECRET_KEY, extra={"api_key": API_KEY, "timeout": 12})
    seen: list[Any] = []
    client = ClovaStudioHook().openai_client(http_client=_sdk_transport(seen))
    assert str(client.base_url) == f"{HOST}/v1/openai/"
    assert client.timeout == 12.0 and client.max_retries == 5  # extra.max_retries default
    answer = client.chat.completions.create(model="HCX-005", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "hello" and answer.usage.total_tokens == 8
    (request,) = seen
    assert str(request.url) == f"{HOST}/v1/openai/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert "X-NCP-APIGW-SIGNATURE-V2" not in request.headers
    assert API_KEY not in redact(f"key {API_KEY}")


async def test_aopenai_client_reads_the_connection_without_blocking(monkeypatch: pytest.MonkeyPatch) -> None:
    import openai

    set_conn(monkeypatch, password=API_KEY, extra={"max_retries": 0})
    seen: list[Any] = []
    client = await ClovaStudioHook().aopenai_client(http_client=_sdk_transport(seen, asynchronous=True))
    assert isinstance(client, openai.AsyncOpenAI) and client.max_retries == 0
    answer = await client.chat.completions.create(model="HCX-005", messages=[{"role": "user", "content": "hi"}])
    await client.close()
    assert answer.choices[0].message.content == "hello"
    assert seen[0].headers["Authorization"] == f"Bearer {API_KEY}"


def test_openai_client_keeps_tls_verification_off_when_the_connection_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import openai

    set_conn(monkeypatch, password=API_KEY, extra={"verify": False})
    client = ClovaStudioHook().openai_client()
    assert isinstance(client._client, openai.DefaultHttpxClient)
    paced = client._client._transport  # the pacing transport, around the SDK's own HTTP transport
    assert paced._inner._pool._ssl_context.verify_mode.name == "CERT_NONE"


def test_openai_client_needs_an_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, login=ACCESS_KEY, password=SECRET_KEY)
    with pytest.raises(ClovaStudioConfigError, match=r"takes only a CLOVA Studio API key .* Fix: add the API key"):
        ClovaStudioHook().openai_client()


# -- UI metadata ---------------------------------------------------------------------------------


def test_ui_field_behaviour() -> None:
    behaviour = ClovaStudioHook.get_ui_field_behaviour()
    assert set(behaviour) == {"hidden_fields", "relabeling", "placeholders"}
    assert "password" in behaviour["relabeling"]
    assert ClovaStudioHook.conn_type == "clova_studio"
    assert ClovaStudioHook.default_conn_name == "clova_studio_default"
