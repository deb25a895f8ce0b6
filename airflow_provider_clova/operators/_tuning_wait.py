"""What the tuning operator and sensor share: the sync driver of the poll loop and the
handling of its final event. The poll decisions themselves live in ``client.polling``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_clova.client.models import TuningTask
    from airflow_provider_clova.client.polling import PollPolicy
    from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook


def failure_hint(failure_reason: str | None, message: str | None = None) -> str:
    """How to fix a FAILED training, by the service's failureReason (and message, for file.format)."""
    from airflow_provider_clova.datasets import fix_for

    return fix_for(failure_reason or "", message)


def wait_sync(
    hook: ClovaStudioHook,
    tuning_task_id: str,
    policy: PollPolicy,
    *,
    timeout: float | None,
    log: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Wait in the worker (non-deferrable mode); returns the final event payload."""
    from airflow_provider_clova.client.polling import PollEvent, TuningPoller

    deadline = None if timeout is None else clock() + timeout
    poller = TuningPoller(tuning_task_id, policy, deadline=deadline, clock=clock, log=log)
    while True:
        expired = poller.expired()
        if expired is not None:
            return expired.to_payload()
        left = poller.remaining()
        outcome: Any
        try:
            outcome = hook.get_tuning_task(tuning_task_id, deadline=None if left is None else time.monotonic() + left)
        except Exception as exc:
            outcome = exc
        action = poller.step(outcome)
        if isinstance(action, PollEvent):
            return action.to_payload()
        sleep(action.seconds)


def task_from_event(event: dict[str, Any], *, hook: ClovaStudioHook | None, cancel: bool) -> TuningTask:
    """The finished task of a success event; otherwise raise the matching provider error.

    On timeout the remote task is deleted first when ``cancel`` is set, so a training nobody
    waits for does not keep billing.
    """
    from airflow_provider_clova.client.errors import (
        ClovaStudioError,
        ClovaStudioTuningFailedError,
        ClovaStudioWaitTimeoutError,
    )
    from airflow_provider_clova.client.models import TuningTask

    status = event.get("status")
    tuning_task_id = str(event.get("task_id"))
    snapshot = event.get("task")
    if status == "success" and snapshot:
        return TuningTask.from_api(snapshot)
    if status == "failed" and snapshot:
        task = TuningTask.from_api(snapshot)
        reason = task.status_info.failure_reason
        raise ClovaStudioTuningFailedError(
            f"CLOVA Studio tuning task {tuning_task_id} FAILED: failureReason={reason or 'unknown'}"
            f" message={task.status_info.message or '-'}. Fix: {failure_hint(reason, task.status_info.message)}",
            task_id=tuning_task_id,
            failure_reason=reason,
        )
    if status == "timeout":
        note = ""
        if cancel and hook is not None:
            # A failed delete must not hide the timeout: say so, and how to stop the billing.
            try:
                deleted = hook.delete_tuning_task(tuning_task_id)
            except Exception as exc:
                note = (
                    f" Deleting the remote tuning task failed ({exc}); delete task {tuning_task_id} "
                    "in the CLOVA Studio console so it stops training."
                )
            else:
                note = (
                    " The remote tuning task was deleted (cancel_on_kill=True)."
                    if deleted
                    else " The remote tuning task was already gone."
                )
        raise ClovaStudioWaitTimeoutError(f"{event.get('message')}.{note} Raise `timeout` for longer trainings.")
    raise ClovaStudioError(str(event.get("message") or f"unexpected trigger event: {event!r}"))
