"""The asynchronous part of a batch: a bounded number of requests in flight, paced by the limiter.

Why asyncio: chat calls take seconds, so one request at a time wastes most of the budget,
and threads would each hold a connection and a stack for what is mostly waiting. Here
``concurrency`` workers share one async client; the client's shared limiter decides *when*
each request may go (QPM and TPM, first come first served), the worker count only bounds
how many are open at once. Reading the input runs in a thread (an object store read may
block); the only sync I/O on the loop is the journal append of one line per result.

What a row *is* stays outside: the run hands each row to its :class:`RowKind`'s ``call``
and journals the :class:`RowOutput` it returns, so chat, embedding or evaluation rows share
the same pacing, resume and failure handling.

Per-row failures are recorded, not raised. The run stops early (keeping the journal for a
retry) when the failures already exceed the threshold, since finishing could not make the
task succeed, or when an error says no row can succeed (``fatal_for_batch``: authentication,
unknown task). How an error is recorded is the error class's own say (``kind``,
``retryable``; see :mod:`airflow_provider_clova.client.errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_clova.batch.input import Row, RowError, RowParser, read_chunks
from airflow_provider_clova.batch.store import ResultStore
from airflow_provider_clova.client.errors import ClovaStudioError
from airflow_provider_clova.client.models import human_duration

if TYPE_CHECKING:
    from airflow_provider_clova.client.client import AsyncClovaStudioClient

#: How many failures the task's exception message lists.
ERRORS_SHOWN = 5


@dataclass(frozen=True)
class RowOutput:
    """What one successful row adds to its result record, and the tokens it spent."""

    #: Written into the row's record after ``id``, ``line`` and ``ok``.
    fields: dict[str, Any]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: What the limiter charged: input tokens + the output tokens the request reserved.
    charged_tokens: int = 0


class RowKind(RowParser, Protocol):
    """One kind of batch row: how a line becomes a request, and how a request is sent.

    ``fields`` and ``parse`` read the input (see :class:`~airflow_provider_clova.batch.input.RowParser`);
    ``call`` sends one row through the async client and returns what its record carries. A
    :class:`ClovaStudioError` raised by ``call`` is that row's failure; any other exception
    stops the batch (the journal keeps what was answered).
    """

    async def call(self, client: AsyncClovaStudioClient, row: Row) -> RowOutput: ...


@dataclass(frozen=True)
class Threshold:
    """When the batch as a whole fails: more failed rows than ``max_rows`` or ``max_fraction``."""

    max_rows: int | None = None
    max_fraction: float | None = None

    def exceeded(self, failed: int, rows: int) -> bool:
        if self.max_rows is not None and failed > self.max_rows:
            return True
        return self.max_fraction is not None and failed > self.max_fraction * rows

    def describe(self) -> str:
        parts = []
        if self.max_rows is not None:
            parts.append(f"max_failed_rows={self.max_rows}")
        if self.max_fraction is not None:
            parts.append(f"max_failed_fraction={self.max_fraction:g}")
        return " or ".join(parts) or "no threshold"


@dataclass(frozen=True)
class RunSettings:
    """How one run sends: workers, when to give up, how often to report and checkpoint."""

    #: Requests in flight at once (the limiter decides when each goes).
    concurrency: int
    threshold: Threshold
    progress_interval: float
    checkpoint_interval: float
    #: Budget this task paces at, per minute (budget x share, scaled to a minute), for the log.
    qpm: float
    tpm: float


@dataclass
class RunStats:
    """Counters of one try."""

    rows: int
    to_send: int
    failed_before: int
    sent: int = 0
    ok: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    charged_tokens: int = 0
    started: float = field(default_factory=time.monotonic)
    first_send: float | None = None
    stopped: str | None = None
    fatal: BaseException | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.ok + self.failed

    @property
    def failed_total(self) -> int:
        return self.failed_before + self.failed

    def note_failure(self, text: str) -> None:
        if len(self.failures) < ERRORS_SHOWN:
            self.failures.append(text)


def row_error(exc: ClovaStudioError) -> RowError:
    """A per-row error from an exception of the client: its ``kind``, CLOVA code and retryability."""
    return RowError(exc.kind, str(exc), code=getattr(exc, "code", None), retryable=exc.retryable)


def number(value: float) -> str:
    """A budget figure as people write it: ``60``, ``10000000``, ``7.5``."""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def progress_line(stats: RunStats, settings: RunSettings, now: float) -> str:
    """done/total, request and token rates against the budget, ETA."""
    elapsed = max(1e-9, now - (stats.first_send or now))
    per_min = 60.0 / elapsed if stats.first_send else 0.0
    req_rate, tok_rate = stats.done * per_min, stats.charged_tokens * per_min
    remaining = stats.to_send - stats.done
    eta = remaining / (stats.done / elapsed) if stats.done and stats.first_send else math.inf
    return (
        f"batch: {stats.done}/{stats.to_send} sent rows answered ({stats.ok} ok, {stats.failed} failed; "
        f"{stats.rows - stats.to_send} of {stats.rows} rows settled before), "
        f"{req_rate:.1f} req/min of {number(settings.qpm)} QPM ({100 * req_rate / settings.qpm:.0f}%), "
        f"{tok_rate:.0f} tokens/min of {number(settings.tpm)} TPM ({100 * tok_rate / settings.tpm:.0f}%), "
        f"ETA {human_duration(eta) if remaining else '0s'}"
    )


async def run_batch(
    client: AsyncClovaStudioClient,
    rows: RowKind,
    pending: Iterator[Row],
    store: ResultStore,
    stats: RunStats,
    settings: RunSettings,
    *,
    log: Callable[..., Any],
) -> RunStats:
    """Send every pending row with ``rows.call``; journal each result as it arrives. Returns ``stats``."""
    queue: asyncio.Queue[Row | None] = asyncio.Queue(maxsize=2 * settings.concurrency)
    stop = asyncio.Event()

    def halt(reason: str) -> None:
        if stats.stopped is None:
            stats.stopped = reason
        stop.set()

    async def produce() -> None:
        async with contextlib.aclosing(read_chunks(pending)) as chunks:
            async for chunk in chunks:
                for row in chunk:
                    if stop.is_set():
                        break
                    await queue.put(row)
                if stop.is_set():
                    break
        # Not in a ``finally``: when cancelled, nobody is left to take these.
        for _ in range(settings.concurrency):
            await queue.put(None)

    async def send(row: Row) -> None:
        if stats.first_send is None:
            stats.first_send = time.monotonic()
        stats.sent += 1
        try:
            output = await rows.call(client, row)
        except ClovaStudioError as exc:
            if exc.fatal_for_batch:
                stats.fatal = exc
                halt(f"line {row.line} (id {row.id!r}): {exc}")
                return
            error = row_error(exc)
            store.append({"id": row.id, "line": row.line, "ok": False, "error": error.to_dict()})
            stats.failed += 1
            stats.note_failure(f"line {row.line} (id {row.id!r}): {error.type}: {error.message}")
            if settings.threshold.exceeded(stats.failed_total, stats.rows):
                halt(f"{stats.failed_total} of {stats.rows} rows failed, past {settings.threshold.describe()}")
            return
        store.append({"id": row.id, "line": row.line, "ok": True, **output.fields})
        stats.ok += 1
        stats.prompt_tokens += output.prompt_tokens
        stats.completion_tokens += output.completion_tokens
        stats.charged_tokens += output.charged_tokens

    async def work() -> None:
        while True:
            row = await queue.get()
            if row is None:
                return
            if not stop.is_set():
                await send(row)

    uploading: list[asyncio.Future[None]] = []

    async def checkpoint() -> None:
        slow = store.rotate()  # on the loop's thread, like every append
        if slow is None:
            return
        job = asyncio.ensure_future(asyncio.to_thread(slow))
        uploading.append(job)
        try:
            # shielded: stopping the ticker must not abandon an upload half done
            await asyncio.shield(job)
        except Exception as exc:  # a failed checkpoint only delays durability; the segment stays local
            log(f"batch: checkpoint failed ({type(exc).__name__}: {exc}); results stay in the local journal")

    async def tick() -> None:
        next_progress = time.monotonic() + settings.progress_interval
        next_checkpoint = time.monotonic() + settings.checkpoint_interval
        while True:
            wake = min(next_progress, next_checkpoint)
            await asyncio.sleep(max(0.0, wake - time.monotonic()))
            now = time.monotonic()
            if now >= next_progress:
                log(progress_line(stats, settings, now))
                next_progress = now + settings.progress_interval
            if now >= next_checkpoint:
                await checkpoint()
                next_checkpoint = time.monotonic() + settings.checkpoint_interval

    ticker = asyncio.create_task(tick())
    tasks = [asyncio.create_task(produce())] + [asyncio.create_task(work()) for _ in range(settings.concurrency)]
    try:
        await asyncio.gather(*tasks)
    finally:
        # On an unexpected error (or cancellation) stop the other workers too; their
        # results so far are journaled. A checkpoint upload under way is let finish.
        for task in [*tasks, ticker]:
            task.cancel()
        await asyncio.gather(*tasks, ticker, return_exceptions=True)
        await asyncio.gather(*uploading, return_exceptions=True)
    log(progress_line(stats, settings, time.monotonic()))
    return stats
