"""``ClovaStudioBatchInferenceOperator``: a JSONL of chat requests in, a JSONL of results out.

Built for inputs that take hours at a model's QPM/TPM budget, so the operator is designed
around interruption: every result is journaled as it arrives, a retry of the task sends only
what is still unanswered, and a few bad rows are reported rather than sinking the batch.

* Input: one request per line, ``{"id": optional, "messages": [...], "parameters": optional}``;
  ``id`` defaults to the (1-based) line number. A line that cannot be sent is a per-row error.
* Output: one result per non-blank input line, in input order, keyed by ``id`` and ``line``:
  ``{"id", "line", "ok": true, "content", "finish_reason", "usage"}`` or
  ``{"id", "line", "ok": false, "error": {"type", "code", "message", "retryable"}}``.
* Resume: see :mod:`._batch_store` (a local journal, or part objects for a remote output).
  Ids answered by an earlier try are skipped; failures marked ``retryable`` (rate limit,
  timeout, server error) are sent again, others are kept.
* Pacing: requests go through the async client and its shared QPM/TPM limiter, with at most
  ``max_concurrency`` in flight; in the model's CLOVA pool at ``pool_slots / pool size`` of
  the budget.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_clova.client.errors import ClovaStudioError

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook
    from airflow_provider_clova.operators._batch_input import InputIndex, Row
    from airflow_provider_clova.operators._batch_run import RunSettings, RunStats
    from airflow_provider_clova.operators._batch_store import ResultIndex, ResultStore


class ClovaStudioBatchFailedError(ClovaStudioError):
    """Too many rows of a batch failed (or it was stopped); the summary is attached."""

    def __init__(self, message: str, summary: Mapping[str, Any]) -> None:
        self.summary = dict(summary)
        super().__init__(message)


class ClovaStudioBatchInferenceOperator(BaseOperator):
    """Run every chat request of a JSONL file through CLOVA Studio and write the results as JSONL.

    :param input_path: local path, ``file://``/``s3://`` URI or ``ObjectStoragePath`` of the requests.
    :param output_path: where the results go (same kinds). A remote output is assembled from
        part objects under ``<output>.parts/`` (see the README's resume section).
    :param model: base model; with ``tuning_task_id`` it names the tuned task's base model.
    :param tuning_task_id: send every request to this tuned task.
    :param parameters: defaults for every row (a row's own ``parameters`` win key by key);
        checked against the model's documented ranges before anything is sent.
    :param clova_conn_id: connection of type ``clova_studio``.
    :param max_concurrency: requests in flight at once (the limiter decides when each goes).
    :param max_failed_rows: fail the task when more rows than this failed.
    :param max_failed_fraction: fail the task when more than this fraction of rows failed
        (default 0.05). With both set, exceeding either fails; with both None, never.
    :param resume: continue from an earlier try's results (default); False starts over.
    :param progress_interval: seconds between progress lines in the log.
    :param checkpoint_interval: seconds between uploads of results to ``<output>.parts/``
        (remote outputs; a local journal is flushed on every row and synced at this interval).
    :param work_dir: local spool directory for remote outputs (default: the system temp dir).
    :return: ``{"rows", "ok", "failed", "skipped_as_done", "input_errors", "missing", "sent",
        "output", "tokens": {"prompt_tokens", "completion_tokens", "total_tokens",
        "charged_tokens"}, "elapsed_seconds"}``; ``tokens`` and ``sent`` count this try only.
    """

    template_fields: Sequence[str] = (
        "input_path",
        "output_path",
        "model",
        "tuning_task_id",
        "parameters",
        "clova_conn_id",
    )
    ui_color = "#03c75a"

    def __init__(
        self,
        *,
        input_path: Any,
        output_path: Any,
        model: str | None = None,
        tuning_task_id: str | None = None,
        parameters: Mapping[str, Any] | str | None = None,
        clova_conn_id: str = "clova_studio_default",
        max_concurrency: int = 16,
        max_failed_rows: int | None = None,
        max_failed_fraction: float | None = 0.05,
        resume: bool = True,
        progress_interval: float = 30.0,
        checkpoint_interval: float = 60.0,
        work_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        name = type(self).__name__
        if not model and not tuning_task_id:
            raise ValueError(f"{name}: give model= (a base model) or tuning_task_id= (a tuned task)")
        if max_concurrency < 1:
            raise ValueError(f"{name}: max_concurrency must be at least 1, got {max_concurrency}")
        if max_failed_rows is not None and max_failed_rows < 0:
            raise ValueError(f"{name}: max_failed_rows must be >= 0, got {max_failed_rows}")
        if max_failed_fraction is not None and not 0 <= max_failed_fraction <= 1:
            raise ValueError(f"{name}: max_failed_fraction must be in [0, 1], got {max_failed_fraction}")
        if progress_interval <= 0 or checkpoint_interval <= 0:
            raise ValueError(f"{name}: progress_interval and checkpoint_interval must be > 0")
        self.input_path = input_path
        self.output_path = output_path
        self.model = model
        self.tuning_task_id = tuning_task_id
        self.parameters = parameters
        self.clova_conn_id = clova_conn_id
        self.max_concurrency = max_concurrency
        self.max_failed_rows = max_failed_rows
        self.max_failed_fraction = max_failed_fraction
        self.resume = resume
        self.progress_interval = progress_interval
        self.checkpoint_interval = checkpoint_interval
        self.work_dir = work_dir

    # -- execute -----------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook
        from airflow_provider_clova.operators.chat import resolve_base_model, shared_hook

        started = time.monotonic()
        task_id = str(self.tuning_task_id) if self.tuning_task_id else None
        probe = hook = ClovaStudioHook(self.clova_conn_id)
        try:
            model = resolve_base_model(probe, self.model, task_id)
            defaults = self._defaults(model)
            hook = shared_hook(self, self.clova_conn_id, model, probe)
            return self._execute(hook, model, task_id, defaults, started)
        finally:
            probe.close()
            if hook is not probe:
                hook.close()

    def _defaults(self, model: str) -> dict[str, Any]:
        """The operator-wide parameters, checked once: a bad default is the task's error, not every row's."""
        from airflow_provider_clova.client.catalog import model_info
        from airflow_provider_clova.client.params import normalize_chat_params
        from airflow_provider_clova.operators.chat import coerce_parameters

        defaults = coerce_parameters(self.parameters, where=f"{type(self).__name__}({self.task_id})")
        info = model_info(model)
        normalize_chat_params(defaults, api=info.api, max_output_tokens=info.max_output_tokens)
        return defaults

    def _execute(
        self, hook: ClovaStudioHook, model: str, task_id: str | None, defaults: dict[str, Any], started: float
    ) -> dict[str, Any]:
        from functools import partial

        from airflow_provider_clova.client.catalog import model_info
        from airflow_provider_clova.operators._batch_input import build_index, iter_lines, parse_line
        from airflow_provider_clova.operators._batch_run import number
        from airflow_provider_clova.operators._batch_store import as_input, store_for

        settings = self._settings(hook, model, task_id)
        parse = partial(parse_line, defaults=defaults, validate=self._validator(hook, model, task_id))
        source = as_input(self.input_path)
        index = build_index(iter_lines(source), parse)
        store = store_for(self.output_path, work_dir=self.work_dir)
        try:
            results = store.open(resume=self.resume)
            done = {
                key
                for line, key, _ in index.entries
                if key is not None and line not in index.errors and results.answered(key)
            }
            stats = self._stats(index, results, done)
            self.log.info(
                "batch: %d rows in %s: %d bad input line(s), %d answered by earlier tries, %d to send to %s (%s) "
                "with up to %d in flight, pacing at %s QPM / %s TPM",
                index.rows,
                source,
                len(index.errors),
                len(done),
                stats.to_send,
                model + (f" tuned task {task_id}" if task_id else ""),
                model_info(model).api,
                self.max_concurrency,
                number(settings.qpm),
                number(settings.tpm),
            )
            if stats.to_send and settings.threshold.exceeded(stats.failed_total, stats.rows):
                stats.stopped = (
                    f"{stats.failed_total} of {stats.rows} rows already failed (bad input lines or earlier tries), "
                    f"past {settings.threshold.describe()}; nothing was sent"
                )
            elif stats.to_send:
                asyncio.run(self._run(hook, self._pending(source, index, parse, done), store, stats, settings))
            if stats.fatal is not None:
                raise stats.fatal
            summary = self._summary(index, results, stats, store, started)
            if summary["missing"] == 0:
                store.finalize(index)
                self.log.info("batch: wrote %d results to %s", index.rows, store.output_uri)
        finally:
            store.close()
        self._judge(summary, stats, settings, index)
        return summary

    # -- pieces ------------------------------------------------------------------------
    def _settings(self, hook: ClovaStudioHook, model: str, task_id: str | None) -> RunSettings:
        from airflow_provider_clova.client.limits import lookup_budget
        from airflow_provider_clova.operators._batch_run import RunSettings, Threshold

        config = hook.config
        budget = lookup_budget(model, config.app_type, config.limits)
        per_minute = 60.0 / config.rate_window_seconds
        return RunSettings(
            model=model,
            tuning_task_id=task_id,
            concurrency=self.max_concurrency,
            threshold=Threshold(self.max_failed_rows, self.max_failed_fraction),
            progress_interval=self.progress_interval,
            checkpoint_interval=self.checkpoint_interval,
            qpm=round(budget.qpm * hook.rate_share * per_minute, 1),
            tpm=round(budget.tpm * hook.rate_share * per_minute),
        )

    def _validator(self, hook: ClovaStudioHook, model: str, task_id: str | None) -> Any:
        """(messages, parameters) -> (cost, reserved output tokens); raises naming what is wrong."""
        from airflow_provider_clova.client import calls
        from airflow_provider_clova.client.errors import ClovaStudioBudgetError
        from airflow_provider_clova.client.limits import lookup_budget

        config = hook.config
        ceiling = math.floor(lookup_budget(model, config.app_type, config.limits).tpm * hook.rate_share + 1e-9)

        def validate(messages: list[dict[str, Any]], parameters: dict[str, Any]) -> tuple[int, int]:
            call = calls.chat_completion(messages, model=model, task_id=task_id, params=parameters, prefix="")
            if call.estimated_cost > ceiling:
                raise ClovaStudioBudgetError(
                    f"this request costs about {call.estimated_cost} tokens (input + maxTokens), more than the "
                    f"{ceiling} tokens per window this task may spend; lower maxTokens or shorten the messages"
                )
            return call.estimated_cost, call.reserved_output_tokens

        return validate

    @staticmethod
    def _pending(source: Any, index: InputIndex, parse: Any, done: set[str]) -> Iterator[Row]:
        """Second pass: the sendable rows no earlier try answered (runs in a reader thread)."""
        from airflow_provider_clova.operators._batch_input import Row, id_key, iter_lines

        for number, raw in iter_lines(source):
            if number in index.errors:
                continue
            row = parse(number, raw)
            if isinstance(row, Row) and id_key(row.id) not in done:
                yield row

    @staticmethod
    def _stats(index: InputIndex, results: ResultIndex, done: set[str]) -> RunStats:
        from airflow_provider_clova.operators._batch_run import RunStats

        failed_before = len(index.errors) + sum(1 for key in done if results.outcome(key) is False)
        return RunStats(
            rows=index.rows,
            to_send=index.rows - len(index.errors) - len(done),
            failed_before=failed_before,
        )

    async def _run(
        self, hook: ClovaStudioHook, pending: Iterator[Row], store: ResultStore, stats: RunStats, settings: RunSettings
    ) -> None:
        from airflow_provider_clova.operators._batch_run import run_batch

        async with await hook.aget_async_conn() as client:
            await run_batch(client, pending, store, stats, settings, log=self.log.info)

    def _summary(
        self, index: InputIndex, results: ResultIndex, stats: RunStats, store: ResultStore, started: float
    ) -> dict[str, Any]:
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

    def _judge(self, summary: dict[str, Any], stats: RunStats, settings: RunSettings, index: InputIndex) -> None:
        """Fail the task when it stopped early or too many rows failed; say which rows and why."""
        from airflow_provider_clova.operators._batch_run import ERRORS_SHOWN

        over = settings.threshold.exceeded(summary["failed"], summary["rows"])
        if not over and stats.stopped is None:
            self.log.info(
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
        head = stats.stopped or (
            f"{summary['failed']} of {summary['rows']} rows failed, past {settings.threshold.describe()}"
        )
        where = (
            f"results so far are journaled for {summary['output']}; a retry sends only the {summary['missing']} "
            "unanswered rows and retryable failures"
            if summary["missing"]
            else f"every row's result is in {summary['output']}; a retry re-sends only retryable failures"
        )
        listing = "".join(f"\n  - {text}" for text in examples)
        raise ClovaStudioBatchFailedError(f"batch: {head}; {where}. First failures:{listing}", summary)
