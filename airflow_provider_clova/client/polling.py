"""The one poll loop for tuning tasks, as a state machine with no I/O.

The trigger (async), the sensor's poke and the operator's non-deferrable wait all drive a
``TuningPoller``: they fetch the task (or catch the error), hand the outcome to ``step()``,
and either sleep for the delay it returns or stop with its final ``PollEvent``. Every
decision (when to poll next, when to give up, what to log) lives here once.

Adaptive polling: while a task runs, the service reports steps and an ``estimatedTime``.
The poller predicts the remaining time as the smaller of that estimate and what the observed
step rate implies, and sleeps half of it (never more than ``max_poll_interval``, never less
than ``poll_interval``). So a long training is polled a logarithmic number of times, and the
end is still seen at most ``poll_interval`` late unless the job finishes more than twice as
fast as both predictions. Waiting (WAIT) and running without progress are polled every
``poll_interval``. Errors that are worth retrying back off exponentially up to
``max_poll_interval``; the deadline is monotonic.

The deadline is checked around every poll: a driver asks ``expired()`` before it fetches, and
passes the time left (``remaining()``) down to the client, whose retries inside that one
fetch stop before it (see ``ClovaStudioClient.call``). So a wait never answers after its
deadline because retries carried one poll past it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_provider_clova.client.errors import ClovaStudioApiError, ClovaStudioError
from airflow_provider_clova.client.models import TuningStatus, TuningTask

EventStatus = Literal["success", "failed", "timeout", "error"]


@dataclass(frozen=True)
class PollPolicy:
    """How often to look. ``poll_interval`` bounds how late completion is seen."""

    poll_interval: float = 30.0
    max_poll_interval: float = 900.0
    max_consecutive_errors: int = 20

    def __post_init__(self) -> None:
        if self.poll_interval <= 0:
            raise ValueError("poll_interval must be greater than 0")
        if self.max_poll_interval < self.poll_interval:
            raise ValueError("max_poll_interval must be at least poll_interval")


@dataclass(frozen=True)
class PollEvent:
    """The one result of a wait: what happened, the last snapshot, and a sentence for people."""

    status: EventStatus
    task_id: str
    message: str
    task: dict[str, Any] | None = None

    def to_payload(self) -> dict[str, Any]:
        return {"status": self.status, "task_id": self.task_id, "message": self.message, "task": self.task}


@dataclass(frozen=True)
class Sleep:
    """Poll again after ``seconds``."""

    seconds: float


@dataclass
class TuningPoller:
    """Decides, after each fetch, whether to stop (a ``PollEvent``) or sleep (a ``Sleep``)."""

    task_id: str
    policy: PollPolicy = field(default_factory=PollPolicy)
    deadline: float | None = None  # on ``clock``'s scale; None waits forever
    clock: Callable[[], float] = time.monotonic
    log: Callable[[str], None] = lambda line: None
    polls: int = 0
    _last_line: str | None = field(default=None, repr=False)
    _errors: int = field(default=0, repr=False)
    _step_seen: tuple[float, int] | None = field(default=None, repr=False)
    _rate: float | None = field(default=None, repr=False)
    _last_task: TuningTask | None = field(default=None, repr=False)

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None: no deadline); hand it to the fetch."""
        return None if self.deadline is None else self.deadline - self.clock()

    def expired(self) -> PollEvent | None:
        """The timeout event when the deadline has passed: check it before every fetch."""
        left = self.remaining()
        if left is None or left > 0:
            return None
        return PollEvent("timeout", self.task_id, self._timeout_message(), self._snapshot())

    def step(self, outcome: TuningTask | BaseException) -> PollEvent | Sleep:
        """Feed one fetch result; get the next action."""
        self.polls += 1
        now = self.clock()
        if isinstance(outcome, BaseException):
            return self._on_error(outcome, now)
        self._errors = 0
        self._last_task = outcome
        self._observe_progress(outcome, now)
        line = outcome.summary()
        if line != self._last_line:
            self.log(line)
            self._last_line = line
        if outcome.status is TuningStatus.SUCCEEDED:
            return PollEvent("success", self.task_id, f"tuning task {self.task_id} succeeded", outcome.to_dict())
        if outcome.status is TuningStatus.FAILED:
            info = outcome.status_info
            return PollEvent(
                "failed",
                self.task_id,
                f"tuning task {self.task_id} failed: {info.failure_reason or 'unknown'}: {info.message or ''}".rstrip(),
                outcome.to_dict(),
            )
        return self._sleep(self.next_delay(outcome, now), now)

    def next_delay(self, task: TuningTask, now: float) -> float:
        """Adaptive delay for a task that is not finished (see the module docstring)."""
        policy = self.policy
        remaining = self._predicted_remaining(task)
        if remaining is None:
            return policy.poll_interval
        return max(policy.poll_interval, min(policy.max_poll_interval, remaining / 2))

    def _predicted_remaining(self, task: TuningTask) -> float | None:
        if task.status is not TuningStatus.RUNNING:
            return None
        info = task.status_info
        guesses = []
        if info.eta_seconds is not None:
            guesses.append(info.eta_seconds)
        if self._rate and info.curr_step is not None and info.total_train_steps:
            guesses.append(max(0, info.total_train_steps - info.curr_step) / self._rate)
        return min(guesses) if guesses else None

    def _observe_progress(self, task: TuningTask, now: float) -> None:
        step = task.status_info.curr_step
        if step is None:
            return
        if self._step_seen is not None:
            then, old_step = self._step_seen
            if step > old_step and now > then:
                rate = (step - old_step) / (now - then)
                # Keep the fastest rate seen: predicting too early is safe, too late is not.
                self._rate = max(self._rate or 0.0, rate)
        self._step_seen = (now, step)

    def _on_error(self, exc: BaseException, now: float) -> PollEvent | Sleep:
        retryable = isinstance(exc, ClovaStudioApiError) and exc.retryable
        if not retryable:
            kind = type(exc).__name__ if not isinstance(exc, ClovaStudioError) else ""
            text = f"{kind}: {exc}" if kind else str(exc)
            return PollEvent(
                "error", self.task_id, f"polling tuning task {self.task_id} failed: {text}", self._snapshot()
            )
        self._errors += 1
        if self._errors > self.policy.max_consecutive_errors:
            return PollEvent(
                "error",
                self.task_id,
                f"polling tuning task {self.task_id} failed {self._errors} times in a row; last error: {exc}",
                self._snapshot(),
            )
        self.log(f"task {self.task_id}: poll failed ({exc}); retrying (attempt {self._errors})")
        backoff = min(self.policy.max_poll_interval, self.policy.poll_interval * 2 ** (self._errors - 1))
        return self._sleep(backoff, now)

    def _sleep(self, delay: float, now: float) -> PollEvent | Sleep:
        if self.deadline is not None:
            left = self.deadline - now
            if left <= 0:
                return PollEvent("timeout", self.task_id, self._timeout_message(), self._snapshot())
            delay = min(delay, left)
        return Sleep(delay)

    def _timeout_message(self) -> str:
        last = self._last_task.summary() if self._last_task else "never fetched"
        return f"gave up waiting for tuning task {self.task_id} (timeout reached); last seen: {last}"

    def _snapshot(self) -> dict[str, Any] | None:
        return self._last_task.to_dict() if self._last_task else None
