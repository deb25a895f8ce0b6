"""An extra link from the Airflow task to its tuning task in the CLOVA Studio console.

The operator stores the full URL in XCom before it starts waiting, so the button works while
the training runs and for every later look at the task instance.

At the end of every try Airflow 3's task runner asks the link again, in the worker, with the
operator that just ran. That operator knows its URL (``""`` when it failed before submitting),
so the link answers from it instead of reading an XCom that was never written: a missing XCom
is logged as an error by the SDK and would look like a second failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink

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

    #: Attribute the operator sets in ``execute`` (the URL, or "" before a job exists).
    operator_attr = "tuning_console_url"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        known = getattr(operator, self.operator_attr, None)
        if isinstance(known, str):
            return known
        # lazy: a run-time and UI path; the XCom model loads Airflow's execution-time machinery
        from airflow.providers.common.compat.sdk import XCom

        url = XCom.get_value(key=self.key, ti_key=ti_key)
        return str(url) if url else ""

    @classmethod
    def persist(cls, context: Context, url: str, operator: Any = None) -> None:
        context["ti"].xcom_push(key=cls.key, value=url)
        if operator is not None:
            setattr(operator, cls.operator_attr, url)
