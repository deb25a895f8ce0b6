"""Auth per endpoint family against the emulator: a connection with IAM keys and an API key signs
the tuning API and chats with the key; one with IAM keys only never sends a chat request."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from airflow_provider_clova.client.errors import ClovaStudioConfigError
from airflow_provider_clova.testing.servers import ClovaEmulator

pytestmark = pytest.mark.integration
MESSAGES = [{"role": "user", "content": "hello"}]


def test_mixed_connection_signs_tuning_and_chats_with_the_key(
    clova_emulator_factory: Callable[..., ClovaEmulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook

    emulator = clova_emulator_factory()
    monkeypatch.setenv("AIRFLOW_CONN_CLOVA_MIXED", emulator.conn_json("apigw_v2+bearer"))
    monkeypatch.setenv("AIRFLOW_CONN_CLOVA_IAM", emulator.conn_json("apigw_v2"))

    mixed = ClovaStudioHook("clova_mixed")
    try:
        assert list(mixed.list_tuning_tasks()) == []
        assert mixed.chat_completion(MESSAGES, model="HCX-005", maxTokens=16).content
        assert mixed.count_tokens(MESSAGES, "HCX-003") > 0
        ok, message = mixed.test_connection()
        assert ok, message
        assert message.count(": OK,") == 2  # the API key and the IAM keys, each checked
    finally:
        mixed.close()
    seen = emulator.stats()["requests_total"]

    iam_only = ClovaStudioHook("clova_iam")
    try:
        assert list(iam_only.list_tuning_tasks()) == []  # the tuning API takes signature v2
        with pytest.raises(ClovaStudioConfigError, match=r"extra\.api_key"):
            iam_only.chat_completion(MESSAGES, model="HCX-005")
        with pytest.raises(ClovaStudioConfigError, match=r"extra\.api_key"):
            iam_only.count_tokens(MESSAGES, "HCX-003")
    finally:
        iam_only.close()
    assert emulator.stats()["requests_total"] == seen + 1  # only the listing reached the emulator


def test_hook_openai_clients_reuse_the_connection_against_the_emulator(
    clova_emulator: ClovaEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook

    # IAM keys with the API key next to them: the SDK gets the API key, never the IAM secret.
    monkeypatch.setenv("AIRFLOW_CONN_CLOVA_MIXED", clova_emulator.conn_json("apigw_v2+bearer", max_retries=0))
    hook = ClovaStudioHook("clova_mixed")
    client = hook.openai_client()
    completion = client.chat.completions.create(model="HCX-005", messages=MESSAGES, max_tokens=8)
    assert completion.choices[0].message.content and completion.usage is not None
    assert completion.usage.completion_tokens <= 8
    embedding = client.embeddings.create(model="bge-m3", input="hello", encoding_format="float")
    assert len(embedding.data[0].embedding) == 1024
    assert {"HCX-005", "bge-m3"} <= {model.id for model in client.models.list()}
    # langchain-naver on the same two values, as the README shows.
    from langchain_naver import ChatClovaX

    chat = ChatClovaX(model="HCX-005", api_key=client.api_key, base_url=str(client.base_url), max_retries=0)  # type: ignore[arg-type]
    assert chat.invoke("hello").content

    async def ask() -> str | None:
        aclient = await hook.aopenai_client()
        try:
            answer = await aclient.chat.completions.create(model="HCX-003", messages=MESSAGES, max_tokens=8)
        finally:
            await aclient.close()
        return answer.choices[0].message.content

    assert asyncio.run(ask())
    assert clova_emulator.stats()["requests"]["openai.chat"] == {"200": 3}
