"""``ClovaStudioDeleteTuningTaskOperator``: delete a tuning task (and so stop it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class ClovaStudioDeleteTuningTaskOperator(BaseOperator):
    """Delete a CLOVA Studio tuning task, e.g. the model a retraining replaced.

    :param tuning_task_id: the task to delete (templated).
    :param missing_ok: succeed when the task is already gone (default), else fail.
    """

    template_fields: Sequence[str] = ("tuning_task_id", "clova_conn_id")
    ui_color = "#03c75a"

    def __init__(
        self,
        *,
        tuning_task_id: str,
        clova_conn_id: str = "clova_studio_default",
        missing_ok: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tuning_task_id = tuning_task_id
        self.clova_conn_id = clova_conn_id
        self.missing_ok = missing_ok

    def execute(self, context: Context) -> bool:
        if not self.tuning_task_id:
            self.log.info("no tuning task id given; nothing to delete")
            return False
        deleted = ClovaStudioHook(self.clova_conn_id).delete_tuning_task(
            str(self.tuning_task_id), missing_ok=self.missing_ok
        )
        self.log.info("tuning task %s %s", self.tuning_task_id, "deleted" if deleted else "was already gone")
        return deleted
