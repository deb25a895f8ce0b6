"""Triggers in one loop share their connection's pooled client and the process's SSL context."""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import pytest
import respx

from airflow_provider_clova.client import pool
from airflow_provider_clova.client.client import AsyncClovaStudioClient
from airflow_provider_clova.testing.samples import ok, succeeded_json
from airflow_provider_clova.triggers.tuning import ClovaStudioTuningTrigger
from tests.unit.tuning.conftest import ACCESS_KEY, CLOVA_CONN_ID, HOST, SECRET_KEY

OTHER_CONN_ID = "clova_tuning_other_account"
OTHER_ACCESS_KEY = "ncp-access-key-other-0002"


@pytest.fixture
def used(monkeypatch: pytest.MonkeyPatch) -> list[AsyncClovaStudioClient]:
    """The client each status fetch went through, in order."""
    clients: list[AsyncClovaStudioClient] = []
    real = AsyncClovaStudioClient.get_tuning_task

    async def recording(self: AsyncClovaStudioClient, task_id: str, **kwargs: Any) -> Any:
        clients.append(self)
        return await real(self, task_id, **kwargs)

    monkeypatch.setattr(AsyncClovaStudioClient, "get_tuning_task", recording)
    return clients


@pytest.mark.usefixtures("connections")
def test_two_triggers_on_one_connection_share_one_client_and_one_ssl_context(
    monkeypatch: pytest.MonkeyPatch, used: list[AsyncClovaStudioClient]
) -> None:
    builds: list[Any] = []
    real_build = pool._build_ssl_context
    monkeypatch.setattr(pool, "_tls", {})
    monkeypatch.setattr(pool, "_build_ssl_context", lambda key: builds.append(key) or real_build(key))
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{OTHER_CONN_ID.upper()}",
        json.dumps(
            {"conn_type": "clova_studio", "host": HOST, "login": OTHER_ACCESS_KEY, "password": SECRET_KEY + "2"}
        ),
    )

    async def wait(task_id: str, conn_id: str) -> Any:
        trigger = ClovaStudioTuningTrigger(task_id, clova_conn_id=conn_id, poll_interval=0.01)
        return [event.payload async for event in trigger.run()]

    async def main() -> list[Any]:
        return list(
            await asyncio.gather(
                wait("task0001", CLOVA_CONN_ID), wait("task0002", CLOVA_CONN_ID), wait("task0003", OTHER_CONN_ID)
            )
        )

    with respx.mock(base_url=HOST, assert_all_called=True) as api:
        for task_id in ("task0001", "task0002", "task0003"):
            api.get(f"/tuning/v2/tasks/{task_id}").mock(return_value=ok(succeeded_json(task_id)))
        events = asyncio.run(main())
        keys = {call.request.url.path[-8:]: call.request.headers["X-NCP-IAM-ACCESS-KEY"] for call in api.calls}

    assert [e[0]["status"] for e in events] == ["success"] * 3
    first, second, other = used
    assert first is second  # one connection, one loop: one pooled client
    assert other is not first and other.config.credentials.signature is not first.config.credentials.signature
    assert keys == {"task0001": ACCESS_KEY, "task0002": ACCESS_KEY, "task0003": OTHER_ACCESS_KEY}
    assert builds == [True]  # one verifying SSL context for the whole process
    contexts = {id(c._http._transport._pool._ssl_context) for c in used}  # type: ignore[attr-defined]
    assert contexts == {id(pool.ssl_context(True))}
    assert isinstance(pool.ssl_context(True), ssl.SSLContext)
    assert first.is_closed and other.is_closed  # the loop ended: the pool closed them
