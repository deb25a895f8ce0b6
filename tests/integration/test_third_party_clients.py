"""Real third-party clients, unmodified, against the emulator's OpenAI-compatible API over loopback.

``openai`` (the official SDK) and NAVER's ``langchain-naver`` (``ChatClovaX``, ``ClovaXEmbeddings``,
built on the SDK) are what teams already use with CLOVA Studio. If the emulator's routes, auth,
shapes or errors drift from what those clients parse, these tests fail.
"""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest

from airflow_provider_clova.testing.emulator.embedding import cosine, embed_text
from airflow_provider_clova.testing.servers import ClovaEmulator
from airflow_provider_clova.testing.waiting import wait_until

pytestmark = pytest.mark.integration

QUESTION = "Tell me about Seoul in one sentence."


def sdk(emulator: ClovaEmulator, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(api_key=emulator.api_key, base_url=f"{emulator.url}/v1/openai", max_retries=0, **kwargs)  # type: ignore[arg-type]


def test_openai_sdk_chat_and_usage(clova_emulator: ClovaEmulator) -> None:
    completion = sdk(clova_emulator).chat.completions.create(
        model="HCX-005",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}],
        max_tokens=12,
        temperature=0,
        extra_body={"top_k": 3, "repetition_penalty": 1.2},  # CLOVA's own knobs, as the docs show
    )
    assert completion.model == "HCX-005" and completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content and completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 12
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 12
    # The emulator charged exactly that request to HCX-005's budget: prompt + max_tokens.
    (window,) = clova_emulator.stats()["windows"]
    assert (window["model"], window["max_tokens_in_window"]) == ("HCX-005", completion.usage.prompt_tokens + 12)


def test_openai_sdk_reasoning_model_thinking_content(clova_emulator: ClovaEmulator) -> None:
    completion = sdk(clova_emulator).chat.completions.create(
        model="HCX-007",
        messages=[{"role": "user", "content": QUESTION}],
        max_completion_tokens=200,
        reasoning_effort="low",
    )
    message = completion.choices[0].message
    assert message.content and (message.model_extra or {}).get("thinking_content")


def test_openai_sdk_unsupported_parameter_is_bad_request(clova_emulator: ClovaEmulator) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(clova_emulator).chat.completions.create(
            model="HCX-005", messages=[{"role": "user", "content": "hi"}], frequency_penalty=0.5
        )
    assert caught.value.code == "40002" and "frequency_penalty" in caught.value.message


def test_openai_sdk_embeddings_and_models(clova_emulator: ClovaEmulator) -> None:
    client = sdk(clova_emulator)
    response = client.embeddings.create(model="bge-m3", input="오늘 서울 날씨가 맑습니다", encoding_format="float")
    assert response.data[0].embedding == embed_text("오늘 서울 날씨가 맑습니다")
    assert response.usage.prompt_tokens == 11  # one token per Hangul syllable
    assert {"HCX-005", "HCX-007", "bge-m3"} <= {m.id for m in client.models.list()}


def test_openai_sdk_rate_limit_error(clova_emulator_factory: Callable[..., ClovaEmulator]) -> None:
    emulator = clova_emulator_factory(limits={"HCX-005": {"qpm": 1, "tpm": 100_000}})
    client = sdk(emulator)
    ask = {"model": "HCX-005", "messages": [{"role": "user", "content": "hi"}]}
    client.chat.completions.create(**ask)  # type: ignore[call-overload]
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(**ask)  # type: ignore[call-overload]
    assert caught.value.status_code == 429 and caught.value.code == "42901"
    (window,) = emulator.stats()["windows"]
    assert (window["served"], window["refused"]) == (1, 1)


def test_langchain_naver_chat_from_environment(clova_emulator: ClovaEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_naver import ChatClovaX

    # ChatClovaX reads its key and base URL from these variables (or api_key= / base_url=).
    monkeypatch.setenv("CLOVASTUDIO_API_KEY", clova_emulator.api_key)
    monkeypatch.setenv("CLOVASTUDIO_API_BASE_URL", f"{clova_emulator.url}/v1/openai")
    chat = ChatClovaX(model="HCX-005", max_tokens=20, top_k=2, repetition_penalty=1.1, max_retries=0)
    reply = chat.invoke([("system", "Be brief."), ("human", QUESTION)])
    assert isinstance(reply.content, str) and reply.content
    usage = reply.usage_metadata
    assert usage is not None and 0 < usage["output_tokens"] <= 20
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert clova_emulator.stats()["requests"]["openai.chat"] == {"200": 1}
    # ChatClovaX tags each call with its request id, which the emulator logs (the log is written
    # by a reader thread, so wait for the line rather than read once)
    wait_until(
        lambda: (
            "/v1/openai/chat/completions -> 200 [openai.chat, account=default, request-id='lcnv-"
            in clova_emulator.log_path.read_text("utf-8")
        ),
        timeout=20,
    )


async def test_langchain_naver_async_chat_on_a_v1_model(clova_emulator: ClovaEmulator) -> None:
    from langchain_naver import ChatClovaX

    chat = ChatClovaX(
        model="HCX-003",
        api_key=clova_emulator.api_key,  # type: ignore[arg-type]
        base_url=f"{clova_emulator.url}/v1/openai",
        repeat_penalty=4.0,  # v1's knob
        max_retries=0,
    )
    reply = await chat.ainvoke(QUESTION)
    assert reply.content and reply.response_metadata["finish_reason"] in ("stop", "length")


def test_langchain_naver_rate_limit_surfaces_as_rate_limit_error(
    clova_emulator_factory: Callable[..., ClovaEmulator],
) -> None:
    from langchain_naver import ChatClovaX

    emulator = clova_emulator_factory(limits={"HCX-005": {"qpm": 1, "tpm": 100_000}})
    chat = ChatClovaX(
        model="HCX-005",
        api_key=emulator.api_key,  # type: ignore[arg-type]
        base_url=f"{emulator.url}/v1/openai",
        max_retries=0,
    )
    chat.invoke("hi")
    with pytest.raises(openai.RateLimitError):
        chat.invoke("hi")


@pytest.mark.parametrize("model", ["clir-emb-dolphin", "bge-m3"])
def test_langchain_naver_embeddings(clova_emulator: ClovaEmulator, model: str) -> None:
    from langchain_naver import ClovaXEmbeddings

    embeddings = ClovaXEmbeddings(
        model=model,
        api_key=clova_emulator.api_key,  # type: ignore[arg-type]
        base_url=f"{clova_emulator.url}/v1/openai",
    )
    query = embeddings.embed_query("튜닝 작업이 실패했습니다")
    docs = embeddings.embed_documents(["튜닝 작업 실패", "점심 메뉴는 김치찌개입니다"])
    assert len(query) == 1024 and len(docs) == 2
    assert cosine(query, docs[0]) > cosine(query, docs[1])
    assert clova_emulator.stats()["requests"]["openai.embeddings"] == {"200": 3}


def test_wrong_key_is_the_sdks_authentication_error(clova_emulator: ClovaEmulator) -> None:
    client = openai.OpenAI(api_key="nv-wrong", base_url=f"{clova_emulator.url}/v1/openai", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def tight_budget(
    factory: Callable[..., ClovaEmulator], monkeypatch: pytest.MonkeyPatch, *, qpm: int, window: float
) -> ClovaEmulator:
    """An emulator whose HCX-005 takes ``qpm`` requests per ``window`` s, and the default connection
    to it with the same limits (and no SDK retries: a 429 would fail the call)."""
    from airflow_provider_clova.client import limiter

    limits = {"HCX-005": {"qpm": qpm, "tpm": 100_000}}
    emulator = factory(limits=limits, rate_window_seconds=window)
    for key, value in emulator.env(limits=limits, rate_window_seconds=window, max_retries=0).items():
        monkeypatch.setenv(key, value)
    limiter.clear_shared_limiters()
    return emulator


@pytest.mark.slow
def test_sdk_and_langchain_through_the_hook_share_the_budget_with_zero_429s(
    clova_emulator_factory: Callable[..., ClovaEmulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The openai SDK and LangChain on the hook's paced HTTP client, and the hook's own chat
    calls, all at once from several threads: one budget, no 429 (the SDK retries nothing:
    max_retries=0), and nothing sandbagged."""
    import threading
    import time

    from langchain_naver import ChatClovaX

    from airflow_provider_clova.client import limiter
    from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook

    window, qpm = 2.0, 4
    emulator = tight_budget(clova_emulator_factory, monkeypatch, qpm=qpm, window=window)
    hook = ClovaStudioHook()
    sdk_client = hook.openai_client()
    chat = ChatClovaX(
        model="HCX-005",
        api_key=sdk_client.api_key,  # type: ignore[arg-type]
        base_url=str(sdk_client.base_url),
        http_client=hook.openai_http_client(),
        max_tokens=8,
        max_retries=0,
    )
    messages = [{"role": "user", "content": "hi"}]
    calls = [
        lambda: hook.chat_completion(messages, model="HCX-005", maxTokens=8),
        lambda: sdk_client.chat.completions.create(model="HCX-005", messages=messages, max_tokens=8),  # type: ignore[arg-type]
        lambda: chat.invoke("hi"),
    ] * 4
    failures: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        try:
            call()
        except BaseException as exc:  # collected for the assertion below
            failures.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    elapsed = time.monotonic() - started
    assert failures == []
    stats = emulator.stats()
    (win,) = [w for w in stats["windows"] if w["model"] == "HCX-005"]
    assert win["served"] == 12 and win["refused"] == 0 and win["max_requests_in_window"] <= qpm
    assert stats["requests"]["openai.chat"] == {"200": 8} and stats["requests"]["chat.v3"] == {"200": 4}
    # 12 requests at 4 per 2 s window need two more windows after the first; well under 8
    assert 2 * window * 0.9 <= elapsed < 8 * window
    limiter.clear_shared_limiters()


async def test_the_async_sdk_through_the_hook_is_paced(
    clova_emulator_factory: Callable[..., ClovaEmulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from airflow_provider_clova.client import limiter
    from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook

    window, qpm = 2.0, 3
    emulator = tight_budget(clova_emulator_factory, monkeypatch, qpm=qpm, window=window)
    client = await ClovaStudioHook().aopenai_client()
    ask = {"model": "HCX-005", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    answers = await asyncio.gather(*(client.chat.completions.create(**ask) for _ in range(6)))  # type: ignore[call-overload]
    await client.close()
    assert all(answer.choices[0].message.content for answer in answers)
    (win,) = emulator.stats()["windows"]
    assert win["refused"] == 0 and win["served"] == 6 and win["max_requests_in_window"] <= qpm
    limiter.clear_shared_limiters()
