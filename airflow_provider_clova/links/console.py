"""An extra link from the Airflow task to its tuning task in the CLOVA Studio console.

The operator stores the full URL in XCom before it starts waiting, so the button works while
the training runs and for every later look at the task instance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS as AIRFLOW_V_3

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: Where a tuning task lives in the console; ``extra.console_url`` on the connection overrides it.
DEFAULT_CONSOLE_URL = "https://clovastudio.ncloud.com/tuning/task/{task_id}"


def console_url(task_id: str, template: str | None = None) -> str:
    """The console address of a tuning task."""
    return (template or DEFAULT_CONSOLE_URL).format(task_id=task_id)


class ClovaStudioTuningConsoleLink(BaseOperatorLink):
    """ "CLOVA Studio console" button on tuning tasks."""

    name = "CLOVA Studio console"
    key = "clova_tuning_console_url"

    @property
    def xcom_key(self) -> str:
        return self.key

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        if AIRFLOW_V_3:
            from airflow.sdk.execution_time.xcom import XCom
        else:
            from airflow.models.xcom import XCom  # type: ignore[no-redef]
        url = XCom.get_value(key=self.key, ti_key=ti_key)
        return str(url) if url else ""

    @classmethod
    def persist(cls, context: Context, url: str) -> None:
        context["ti"].xcom_push(key=cls.key, value=url)
