"""The one retry policy of the provider, on tenacity.

Follows the error table of clova-studio-api.md: rate limits, timeouts, server errors and
network failures are retried with exponential backoff and full jitter, honouring
``Retry-After``; bad requests and auth errors are not. A call that creates something (a
tuning task) is retried only when the server provably never saw it: a failed connect. Any
other failure of a create, a 429 included (a gateway may refuse the reply of a create the
service already made), is an unknown outcome, raised for the caller to reconcile by listing
rather than risking a second billed training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import tenacity

from airflow_provider_clova.client.errors import (
    ClovaStudioApiError,
    ClovaStudioRateLimitError,
    ClovaStudioTransportError,
    ClovaStudioUnknownOutcomeError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the retry loop. ``max_attempts`` counts the first try."""

    max_attempts: int = 6
    max_elapsed_seconds: float = 180.0
    initial_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")


NO_RETRY = RetryPolicy(max_attempts=1)


def server_cannot_have_acted(exc: BaseException) -> bool:
    """True when a failed request provably never reached the server (the connect failed)."""
    return isinstance(exc, ClovaStudioTransportError) and not exc.request_sent


def is_retryable(exc: BaseException, *, idempotent: bool) -> bool:
    """Whether the policy retries ``exc`` for a call of this kind."""
    if not isinstance(exc, ClovaStudioApiError) or isinstance(exc, ClovaStudioUnknownOutcomeError):
        return False
    if idempotent:
        return exc.retryable
    return server_cannot_have_acted(exc)


class _WaitRetryAfterOrJitter(tenacity.wait.wait_base):
    """Honour the server's ``Retry-After``; otherwise exponential backoff with full jitter."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._jitter = tenacity.wait_random_exponential(
            multiplier=policy.initial_backoff_seconds, max=policy.max_backoff_seconds
        )
        self._max = policy.max_elapsed_seconds

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, ClovaStudioRateLimitError) and exc.retry_after is not None:
            return min(exc.retry_after, self._max)
        return float(self._jitter(retry_state))


class _StopAfterElapsed(tenacity.stop.stop_base):
    """Stop once ``seconds`` have passed since the call's first attempt began.

    Like ``tenacity.stop_after_delay``, but counted from ``started_at`` (``time.monotonic``)
    when given: the clients make the first attempt before entering tenacity (see
    :func:`should_retry`), and that attempt's time counts against the bound too.
    """

    def __init__(self, seconds: float, started_at: float | None) -> None:
        self._seconds = seconds
        self._started_at = started_at

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        start = retry_state.start_time if self._started_at is None else self._started_at
        return time.monotonic() - start >= self._seconds


class _StopAtDeadline(tenacity.stop.stop_base):
    """Stop when the next attempt would start at or after ``deadline`` (``time.monotonic``).

    A caller that must be done by some time (a tuning wait with a ``timeout``) passes its
    deadline down, so retries inside one call cannot carry it past (the backoff is counted:
    tenacity computes the upcoming sleep before asking ``stop``).
    """

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        upcoming = float(getattr(retry_state, "upcoming_sleep", 0.0) or 0.0)
        return time.monotonic() + upcoming >= self._deadline


def should_retry(exc: BaseException, policy: RetryPolicy, *, idempotent: bool) -> bool:
    """Whether a failed first attempt goes on to the retry loop at all."""
    return policy.max_attempts > 1 and is_retryable(exc, idempotent=idempotent)


def retry_kwargs(
    policy: RetryPolicy, *, idempotent: bool, started_at: float | None = None, deadline: float | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` / ``AsyncRetrying``; the same for both.

    ``started_at`` (``time.monotonic()``) is when the call's first attempt began, if that was
    before the retry loop was entered; ``max_elapsed_seconds`` is counted from it. ``deadline``
    (``time.monotonic()`` scale) ends the retries before an attempt that would start after it.
    """
    stop = tenacity.stop_after_attempt(policy.max_attempts) | _StopAfterElapsed(policy.max_elapsed_seconds, started_at)
    if deadline is not None:
        stop = stop | _StopAtDeadline(deadline)
    return {
        "stop": stop,
        "wait": _WaitRetryAfterOrJitter(policy),
        "retry": tenacity.retry_if_exception(lambda exc: is_retryable(exc, idempotent=idempotent)),
        "reraise": True,
    }
