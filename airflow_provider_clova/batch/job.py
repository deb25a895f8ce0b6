"""One try of a batch, start to end: index the input, read back earlier results, send what is
still pending, write the output, and judge the outcome against the failure threshold.

Synchronous (an operator's ``execute`` calls it); the sending runs in its own event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from airflow_provider_clova.batch.input import InputIndex, build_index, iter_lines, pending_rows
from airflow_provider_clova.batch.run import ERRORS_SHOWN, RowKind, RunSettings, RunStats, number, run_batch
from airflow_provider_clova.batch.store import ResultIndex, ResultStore
from airflow_provider_clova.client.errors import ClovaStudioBatchFailedError

if TYPE_CHECKING:
    from airflow_provider_clova.client.client import AsyncClovaStudioClient

#: Opens the async client a run sends through (it is used as ``async with``).
Connect = Callable[[], Awaitable["AsyncClovaStudioClient"]]


def run_file(
    rows: RowKind,
    source: Any,
    store: ResultStore,
    settings: RunSettings,
    *,
    connect: Connect,
    resume: bool,
    target: str,
    log: Callable[..., Any],
    started: float | None = None,
) -> dict[str, Any]:
    """Run every row of ``source`` (a path or ``ObjectStoragePath``) into ``store``; the summary.

    ``target`` names what rows go to, for the log (``"HCX-005 (v3)"``). Raises the first
    ``fatal_for_batch`` error, or :class:`ClovaStudioBatchFailedError` when the run stopped
    early or the failures exceed ``settings.threshold``; results so far stay journaled.
    """
    started = time.monotonic() if started is None else started
    index = build_index(iter_lines(source), rows)
    try:
        results = store.open(resume=resume)
        done = {
            key
            for line, key, _ in index.entries
            if key is not None and line not in index.errors and results.answered(key)
        }
        stats = start_stats(index, results, done)
        log(
            "batch: %d rows in %s: %d bad input line(s), %d answered by earlier tries, %d to send to %s "
            "with up to %d in flight, pacing at %s QPM / %s TPM",
            index.rows,
            source,
            len(index.errors),
            len(done),
            stats.to_send,
            target,
            settings.concurrency,
            number(settings.qpm),
            number(settings.tpm),
        )
        if stats.to_send and settings.threshold.exceeded(stats.failed_total, stats.rows):
            stats.stopped = (
                f"{stats.failed_total} of {stats.rows} rows already failed (bad input lines or earlier tries), "
                f"past {settings.threshold.describe()}; nothing was sent"
            )
        elif stats.to_send:
            asyncio.run(_send(connect, rows, pending_rows(source, index, rows, done), store, stats, settings, log))
        if stats.fatal is not None:
            raise stats.fatal
        summary = summarize(index, results, stats, store, started)
        if summary["missing"] == 0:
            store.finalize(index)
            log("batch: wrote %d results to %s", index.rows, store.output_uri)
    finally:
        store.close()
    judge(summary, stats, settings, index, log=log)
    return summary


async def _send(
    connect: Connect,
    rows: RowKind,
    pending: Any,
    store: ResultStore,
    stats: RunStats,
    settings: RunSettings,
    log: Callable[..., Any],
) -> None:
    async with await connect() as client:
        await run_batch(client, rows, pending, store, stats, settings, log=log)


def start_stats(index: InputIndex, results: ResultIndex, done: set[str]) -> RunStats:
    """The counters a try starts from: bad lines and kept failures count as failed already."""
    failed_before = len(index.errors) + sum(1 for key in done if results.outcome(key) is False)
    return RunStats(
        rows=index.rows,
        to_send=index.rows - len(index.errors) - len(done),
        failed_before=failed_before,
    )


def summarize(
    index: InputIndex, results: ResultIndex, stats: RunStats, store: ResultStore, started: float
) -> dict[str, Any]:
    """The task's return value (see ``ClovaStudioBatchInferenceOperator``)."""
    ok = failed = missing = 0
    for line, key, _ in index.entries:
        outcome = None if line in index.errors else results.outcome(key)
        if line in index.errors or outcome is False:
            failed += 1
        elif outcome:
            ok += 1
        else:
            missing += 1
    return {
        "rows": index.rows,
        "ok": ok,
        "failed": failed,
        "skipped_as_done": stats.rows - stats.to_send - len(index.errors),
        "input_errors": len(index.errors),
        "missing": missing,
        "sent": stats.sent,
        "output": store.output_uri,
        "tokens": {
            "prompt_tokens": stats.prompt_tokens,
            "completion_tokens": stats.completion_tokens,
            "total_tokens": stats.prompt_tokens + stats.completion_tokens,
            "charged_tokens": stats.charged_tokens,
        },
        "elapsed_seconds": round(time.monotonic() - started, 3),
    }


def judge(
    summary: dict[str, Any], stats: RunStats, settings: RunSettings, index: InputIndex, *, log: Callable[..., Any]
) -> None:
    """Fail when the run stopped early or too many rows failed; say which rows and why."""
    over = settings.threshold.exceeded(summary["failed"], summary["rows"])
    if not over and stats.stopped is None:
        log(
            "batch done: %d ok, %d failed (%d bad input lines), %d from earlier tries, %d tokens charged",
            summary["ok"],
            summary["failed"],
            summary["input_errors"],
            summary["skipped_as_done"],
            summary["tokens"]["charged_tokens"],
        )
        return
    examples = [bad.error.message for bad in list(index.errors.values())[:ERRORS_SHOWN]]
    examples += stats.failures[: max(0, ERRORS_SHOWN - len(examples))]
    head = (
        stats.stopped or f"{summary['failed']} of {summary['rows']} rows failed, past {settings.threshold.describe()}"
    )
    where = (
        f"results so far are journaled for {summary['output']}; a retry sends only the {summary['missing']} "
        "unanswered rows and retryable failures"
        if summary["missing"]
        else f"every row's result is in {summary['output']}; a retry re-sends only retryable failures"
    )
    listing = "".join(f"\n  - {text}" for text in examples)
    raise ClovaStudioBatchFailedError(f"batch: {head}; {where}. First failures:{listing}", summary)
