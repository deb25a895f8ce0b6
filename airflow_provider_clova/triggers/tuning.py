"""``ClovaStudioTuningTrigger``: waits for a tuning task in the triggerer, off the worker.

``run()`` only reads (GET) and never blocks the event loop: it runs the core's one tuning
wait (``TuningPoller.wait_async``). Its serialized kwargs hold the connection id and ids,
never a secret, so a trigger that runs twice (or on another triggerer) is harmless.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_clova.client.errors import ClovaStudioConfigError
from airflow_provider_clova.client.polling import PollPolicy, TuningPoller
from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook

if TYPE_CHECKING:
    from airflow_provider_clova.client.client import AsyncClovaStudioClient
    from airflow_provider_clova.client.models import TuningTask


class ClovaStudioTuningTrigger(BaseTrigger):
    """Poll one tuning task until it succeeds, fails, or the deadline passes; emit one event.

    :param tuning_task_id: the CLOVA tuning task id.
    :param clova_conn_id: the ``clova_studio`` connection.
    :param poll_interval: completion is seen at most this many seconds late (see ``TuningPoller``).
    :param max_poll_interval: the longest pause between two polls of a long training.
    :param end_time: wall-clock epoch seconds after which the wait times out (None: no limit).
    :param cancel_on_kill: on Airflow 3.3+, delete the remote task when a user kills the deferred task.
    """

    def __init__(
        self,
        tuning_task_id: str,
        clova_conn_id: str = "clova_studio_default",
        poll_interval: float = 30.0,
        max_poll_interval: float = 900.0,
        end_time: float | None = None,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__()
        self.tuning_task_id = tuning_task_id
        self.clova_conn_id = clova_conn_id
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.end_time = end_time
        self.cancel_on_kill = cancel_on_kill

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "tuning_task_id": self.tuning_task_id,
                "clova_conn_id": self.clova_conn_id,
                "poll_interval": self.poll_interval,
                "max_poll_interval": self.max_poll_interval,
                "end_time": self.end_time,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    def _poller(self) -> TuningPoller:
        # The wall-clock end becomes a monotonic deadline once, so clock jumps don't matter.
        timeout = None if self.end_time is None else self.end_time - time.time()
        policy = PollPolicy.clamped(self.poll_interval, self.max_poll_interval)
        return TuningPoller.with_timeout(self.tuning_task_id, policy, timeout, log=self.log.info)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        poller = self._poller()
        client: AsyncClovaStudioClient | None = None

        async def fetch() -> TuningTask:
            nonlocal client
            if client is None:
                # Read after the loop's first (spread) pause, so a thousand waits started
                # together do not all read their connection in the same instant. The client
                # is shared by every trigger on this connection in this loop; the pool closes it.
                try:
                    client = await ClovaStudioHook(self.clova_conn_id).aget_conn()
                except Exception as exc:
                    raise ClovaStudioConfigError(f"cannot use connection {self.clova_conn_id!r}: {exc}") from exc
            return await client.get_tuning_task(self.tuning_task_id, deadline=poller.client_deadline())

        event = await poller.wait_async(fetch)
        yield TriggerEvent(event.to_payload())

    async def on_kill(self) -> None:
        """Stop the remote training when a user kills the deferred task (Airflow 3.3+ calls this)."""
        if not self.cancel_on_kill:
            return

        client = await ClovaStudioHook(self.clova_conn_id).aget_conn()
        await client.delete_tuning_task(self.tuning_task_id)
        self.log.info("deleted tuning task %s because the Airflow task was killed", self.tuning_task_id)
