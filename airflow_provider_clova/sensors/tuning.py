"""``ClovaStudioTuningSensor``: wait on a tuning task someone else submitted.

Poke and reschedule mode take one round of the core's tuning wait per poke
(``TuningPoller.poll_sync``); deferrable mode hands the wait to ``ClovaStudioTuningTrigger``.
Every path ends in ``PollEvent.finished_task()``, as the tuning operator's do, so a FAILED
task raises the same error with the same fix.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator

from airflow_provider_clova._compat import default_deferrable
from airflow_provider_clova.client.polling import PollEvent, PollPolicy, TuningPoller, tuning_result
from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook
from airflow_provider_clova.links.console import ClovaStudioTuningConsoleLink
from airflow_provider_clova.triggers.tuning import ClovaStudioTuningTrigger

try:  # Airflow 3
    from airflow.sdk import PokeReturnValue
except ImportError:  # Airflow 2.11
    from airflow.sensors.base import PokeReturnValue  # type: ignore[no-redef,attr-defined,unused-ignore]

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class ClovaStudioTuningSensor(BaseSensorOperator):
    """Succeeds when the tuning task succeeds; fails with the service's reason when it fails.

    :param tuning_task_id: the CLOVA tuning task id (templated; e.g. from an operator's XCom).
    :param clova_conn_id: the ``clova_studio`` connection.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param max_poll_interval: the longest pause between polls in deferrable mode.
    :param cancel_on_kill: in deferrable mode on Airflow 3.3+, delete the task when a user kills the wait.
    """

    template_fields: Sequence[str] = ("tuning_task_id", "clova_conn_id")
    operator_extra_links = (ClovaStudioTuningConsoleLink(),)
    ui_color = "#03c75a"

    def __init__(
        self,
        *,
        tuning_task_id: str,
        clova_conn_id: str = "clova_studio_default",
        deferrable: bool | None = None,
        max_poll_interval: float = 900.0,
        cancel_on_kill: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tuning_task_id = tuning_task_id
        self.clova_conn_id = clova_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.max_poll_interval = max_poll_interval
        self.cancel_on_kill = cancel_on_kill
        self._poller: TuningPoller | None = None

    @property
    def hook(self) -> ClovaStudioHook:
        # One hook (so one pooled HTTP client) for all pokes of this sensor, not one per poke.
        if getattr(self, "_hook", None) is None:
            self._hook = ClovaStudioHook(self.clova_conn_id)
        return self._hook

    @property
    def _poll_interval(self) -> float:
        # Airflow allows poke_interval=0; the poll loop needs a positive interval.
        return float(self.poke_interval) or 1.0

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)

        self.defer(
            trigger=ClovaStudioTuningTrigger(
                tuning_task_id=self.tuning_task_id,
                clova_conn_id=self.clova_conn_id,
                poll_interval=self._poll_interval,
                max_poll_interval=self.max_poll_interval,
                end_time=time.time() + float(self.timeout),
                cancel_on_kill=self.cancel_on_kill,
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Context) -> Any:
        """One round of the tuning wait: False to poke again; done with the result; or raise."""
        tuning_task_id = self.tuning_task_id
        if self._poller is None or self._poller.task_id != tuning_task_id:
            policy = PollPolicy.clamped(self._poll_interval, self.max_poll_interval)
            self._poller = TuningPoller(tuning_task_id, policy, log=self.log.info)
        action = self._poller.poll_sync(lambda: self.hook.get_tuning_task(tuning_task_id))
        if not isinstance(action, PollEvent):
            return False
        # The same XCom as the deferrable path (execute_complete) returns.
        return PokeReturnValue(is_done=True, xcom_value=tuning_result(action.finished_task()))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        cancel = self.hook.delete_tuning_task if self.cancel_on_kill else None
        return tuning_result(PollEvent.from_payload(event).finished_task(cancel=cancel))
