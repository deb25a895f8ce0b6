"""The whole tuning wait: the poll decisions (a state machine with no I/O) and the loop.

``TuningPoller.step()`` takes one fetch outcome (the task, or the error the fetch raised)
and answers with the next action: ``Sleep`` for that long, or stop with a ``PollEvent``.
The loop around it ("fetch, catch, step, sleep") is written once, in ``_wait``, and run by
two drivers: ``wait_sync`` (the operator's in-worker wait) and ``wait_async`` (the trigger);
``poll_sync`` is one round of it (the sensor's poke). The ``PollEvent`` a wait ends with
turns itself into the finished task or the provider's typed error (``finished_task()``), and into
the JSON payload a trigger event carries (``to_payload``/``from_payload``).

Adaptive polling: while a task runs, the service reports steps and an ``estimatedTime``.
The poller predicts the remaining time as the smaller of that estimate and what the observed
step rate implies, and sleeps half of it (never more than ``max_poll_interval``, never less
than ``poll_interval``). So a long training is polled a logarithmic number of times, and the
end is still seen at most ``poll_interval`` late unless the job finishes more than twice as
fast as both predictions. Waiting (WAIT) and running without progress are polled every
``poll_interval``. Errors that are worth retrying back off exponentially up to
``max_poll_interval``; the deadline is monotonic.

Jitter: a thousand waits started together (a mapped tuning sweep, a triggerer restart) must
not poll in lockstep. ``begin()`` pauses for ``first_delay()``, uniform over
``[0, first_poll_spread * poll_interval)``, before the first fetch of every driver of the loop
(a sensor's poke has no such pause), and every later pause is shortened by a random fraction
below ``jitter`` (default 10 %, in ``_pace``), so waits that once lined up drift apart again.
Jitter only ever shortens a pause: completion is still seen within one ``poll_interval``, at
the price of at most ``1 / (1 - jitter)`` times the polls.

The deadline is checked around every poll attempt: ``_poll`` stops before a fetch once it has
passed, the fetch hands ``client_deadline()`` to the client so its retries inside that one
poll (and each attempt's wait for an answer) stop there too, and ``step`` stops after it. So a
wait never answers after its deadline because retries carried one poll past it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from airflow_provider_clova.client.catalog import model_info
from airflow_provider_clova.client.drivers import as_async, run_blocking
from airflow_provider_clova.client.errors import (
    ClovaStudioApiError,
    ClovaStudioConfigError,
    ClovaStudioError,
    ClovaStudioTuningFailedError,
    ClovaStudioWaitTimeoutError,
)
from airflow_provider_clova.client.models import TuningStatus, TuningTask
from airflow_provider_clova.datasets import fix_for

EventStatus = Literal["success", "failed", "timeout", "error"]

_RANDOM = random.Random()


def uniform_fraction() -> float:
    """The default jitter source: uniform in [0, 1) from this module's own generator."""
    return _RANDOM.random()


@dataclass(frozen=True)
class PollPolicy:
    """How often to look. ``poll_interval`` bounds how late completion is seen."""

    poll_interval: float = 30.0
    max_poll_interval: float = 900.0
    max_consecutive_errors: int = 20
    #: Each pause is shortened by a random fraction in ``[0, jitter)``; 0 turns jitter off.
    jitter: float = 0.1
    #: The first poll comes after a random pause in ``[0, first_poll_spread * poll_interval)``.
    first_poll_spread: float = 1.0

    def __post_init__(self) -> None:
        if self.poll_interval <= 0:
            raise ValueError("poll_interval must be greater than 0")
        if self.max_poll_interval < self.poll_interval:
            raise ValueError("max_poll_interval must be at least poll_interval")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if not 0 <= self.first_poll_spread <= 1:
            raise ValueError("first_poll_spread must be in [0, 1]")

    @classmethod
    def clamped(cls, poll_interval: float, max_poll_interval: float) -> PollPolicy:
        """The policy for user-given intervals: a ``max_poll_interval`` below ``poll_interval``
        is raised to it (every pause is then ``poll_interval``) instead of failing the task."""
        return cls(poll_interval, max(poll_interval, max_poll_interval))


def failure_of(task: TuningTask) -> ClovaStudioTuningFailedError:
    """The error for a FAILED task: the service's failureReason and message, and how to fix it."""
    info = task.status_info
    reason = info.failure_reason
    return ClovaStudioTuningFailedError(
        f"CLOVA Studio tuning task {task.id} FAILED: failureReason={reason or 'unknown'}"
        f" message={info.message or '-'}. Fix: {fix_for(reason or '', info.message)}",
        task_id=task.id,
        failure_reason=reason,
    )


def tuning_result(task: TuningTask) -> dict[str, Any]:
    """What the tuning operator and sensor return (XCom): enough to use and judge the tuned model."""
    info = task.status_info
    try:
        api = model_info(task.model).api if task.model else "v3"
    except ClovaStudioConfigError:
        # A model newer than this provider's catalog (e.g. a task made in the console and
        # watched by the sensor): the training still succeeded; current models speak v3.
        api = "v3"
    return {
        "task_id": task.id,
        "name": task.name,
        "model": task.model,
        "status": task.status.value,
        "train_loss": info.train_loss,
        "steps": info.curr_step,
        "total_steps": info.total_train_steps,
        "epochs": info.total_train_epochs,
        "data_rows": info.data_rows,
        "num_tokens": info.num_of_tokens,
        "chat_completions_path": f"/{api}/tasks/{task.id}/chat-completions",
    }


@dataclass(frozen=True)
class PollEvent:
    """The one result of a wait: what happened, the last snapshot, and a sentence for people."""

    status: EventStatus
    task_id: str
    message: str
    task: dict[str, Any] | None = None

    def to_payload(self) -> dict[str, Any]:
        """The JSON a trigger event carries (the keys are stored with deferred tasks: keep them)."""
        return {"status": self.status, "task_id": self.task_id, "message": self.message, "task": self.task}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> PollEvent:
        """The event back from a trigger payload; anything unexpected becomes an error event."""
        status = payload.get("status")
        if status not in get_args(EventStatus):
            status = "error"
        message = payload.get("message") or f"unexpected trigger event: {dict(payload)!r}"
        return cls(cast(EventStatus, status), str(payload.get("task_id")), str(message), payload.get("task"))

    def finished_task(self, *, cancel: Callable[[str], bool] | None = None) -> TuningTask:
        """The finished task of a success; otherwise raise the provider error for what happened.

        On timeout ``cancel`` (e.g. the hook's ``delete_tuning_task``; it returns False when
        the task was already gone) is called first, so a training nobody waits for any more
        stops billing; a failed cancel is reported in the error, not instead of it.
        """
        if self.status == "success" and self.task:
            return TuningTask.from_api(self.task)
        if self.status == "failed" and self.task:
            raise failure_of(TuningTask.from_api(self.task))
        if self.status == "timeout":
            raise ClovaStudioWaitTimeoutError(
                f"{self.message}.{self._cancel_note(cancel)} Raise `timeout` for longer trainings."
            )
        raise ClovaStudioError(self.message)

    def _cancel_note(self, cancel: Callable[[str], bool] | None) -> str:
        if cancel is None:
            return ""
        try:
            deleted = cancel(self.task_id)
        except Exception as exc:
            return (
                f" Deleting the remote tuning task failed ({exc}); delete task {self.task_id} "
                "in the CLOVA Studio console so it stops training."
            )
        if deleted:
            return " The remote tuning task was deleted (cancel_on_kill=True)."
        return " The remote tuning task was already gone."


@dataclass(frozen=True)
class Sleep:
    """Poll again after ``seconds``."""

    seconds: float


@dataclass
class TuningPoller:
    """The wait for one tuning task: decides, after each fetch, whether to stop (a
    ``PollEvent``) or sleep (a ``Sleep``), and runs that loop (``wait_sync``/``wait_async``)."""

    task_id: str
    policy: PollPolicy = field(default_factory=PollPolicy)
    deadline: float | None = None  # on ``clock``'s scale; None waits forever
    # Looked up when a poller is made (not when this module is imported), like ``time.sleep``
    # in ``wait_sync``, so both always come from the same ``time`` module.
    clock: Callable[[], float] = field(default_factory=lambda: time.monotonic)
    log: Callable[[str], None] = lambda line: None
    #: Uniform random numbers in [0, 1) for the jitter (a seeded ``Random().random`` in tests).
    rng: Callable[[], float] = uniform_fraction
    polls: int = 0
    _last_line: str | None = field(default=None, repr=False)
    _errors: int = field(default=0, repr=False)
    _step_seen: tuple[float, int] | None = field(default=None, repr=False)
    _rate: float | None = field(default=None, repr=False)
    _last_task: TuningTask | None = field(default=None, repr=False)

    @classmethod
    def with_timeout(
        cls,
        task_id: str,
        policy: PollPolicy,
        timeout: float | None,
        *,
        log: Callable[[str], None] = lambda line: None,
    ) -> TuningPoller:
        """A poller that gives up ``timeout`` seconds from now (None: never).

        The deadline is fixed once on the monotonic clock: a caller holding a wall-clock end
        passes ``end - time.time()``, and later wall-clock jumps do not move it.
        """
        clock = time.monotonic
        deadline = None if timeout is None else clock() + timeout
        return cls(task_id, policy, deadline=deadline, clock=clock, log=log)

    # -- the loop: written once, run by a blocking and an async driver -------------------
    def wait_sync(self, fetch: Callable[[], TuningTask], sleep: Callable[[float], None] | None = None) -> PollEvent:
        """Poll until the task ends or the deadline passes, blocking (the operator's in-worker wait).

        ``fetch`` returns the task or raises (the error is the poller's to judge); ``sleep``
        defaults to ``time.sleep``.
        """
        return run_blocking(self._wait(as_async(fetch), as_async(sleep or time.sleep)))

    async def wait_async(
        self,
        fetch: Callable[[], Awaitable[TuningTask]],
        sleep: Callable[[float], Awaitable[object]] | None = None,
    ) -> PollEvent:
        """As ``wait_sync``, without blocking the event loop (the trigger); ``sleep`` defaults
        to ``asyncio.sleep``."""
        return await self._wait(fetch, sleep or asyncio.sleep)

    def poll_sync(self, fetch: Callable[[], TuningTask]) -> PollEvent | Sleep:
        """One round of the loop without its pause: a sensor's poke (Airflow sleeps between pokes)."""
        return run_blocking(self._poll(as_async(fetch)))

    async def _wait(
        self,
        fetch: Callable[[], Awaitable[TuningTask]],
        sleep: Callable[[float], Awaitable[object]],
    ) -> PollEvent:
        """The one loop: pause as ``begin()``/``step()`` say, poll, until an event."""
        action: PollEvent | Sleep = self.begin()
        while isinstance(action, Sleep):
            if action.seconds > 0:
                await sleep(action.seconds)
            action = await self._poll(fetch)
        return action

    async def _poll(self, fetch: Callable[[], Awaitable[TuningTask]]) -> PollEvent | Sleep:
        """One poll attempt and the decision on its outcome.

        Every fetch of every driver runs here and nowhere else: no fetch starts once the
        deadline has passed (the drivers' fetches pass ``client_deadline()`` to the client, so
        its retries inside the fetch stop at it too).
        """
        expired = self.expired()
        if expired is not None:
            return expired
        outcome: TuningTask | BaseException
        try:
            outcome = await fetch()
        except Exception as exc:
            outcome = exc
        return self.step(outcome)

    # -- the deadline ----------------------------------------------------------------------
    def expired(self) -> PollEvent | None:
        """The timeout event once the deadline has passed (checked before every fetch)."""
        if self.deadline is None or self.clock() < self.deadline:
            return None
        return PollEvent("timeout", self.task_id, self._timeout_message(), self._snapshot())

    def client_deadline(self) -> float | None:
        """The deadline on ``time.monotonic``'s scale, for the client's ``deadline=`` (its
        attempts and retries inside one fetch stop there); None when the wait has none."""
        if self.deadline is None:
            return None
        return time.monotonic() + (self.deadline - self.clock())

    # -- the decisions ---------------------------------------------------------------------
    def begin(self) -> Sleep:
        """The pause before the first poll: ``first_delay()``, so waits started together start apart."""
        return Sleep(self.first_delay())

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

    def first_delay(self) -> float:
        """The random pause before the first poll, so waits started together start apart."""
        delay = self.rng() * self.policy.first_poll_spread * self.policy.poll_interval
        if self.deadline is not None:
            delay = max(0.0, min(delay, self.deadline - self.clock()))
        return delay

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

    def _pace(self, delay: float) -> float:
        """Every pause after a poll passes here: shortened by a random fraction below
        ``jitter``, never lengthened (see the module docstring). The first pause is
        ``first_delay``; the deadline clamp in ``_sleep`` applies after this."""
        return delay * (1.0 - self.policy.jitter * self.rng())

    def _sleep(self, delay: float, now: float) -> PollEvent | Sleep:
        delay = self._pace(delay)
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
