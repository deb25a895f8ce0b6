"""``ClovaStudioBatchInferenceOperator``: a JSONL of chat requests in, a JSONL of results out.

Built for inputs that take hours at a model's QPM/TPM budget, so the operator is designed
around interruption: every result is journaled as it arrives, a retry of the task sends only
what is still unanswered, and a few bad rows are reported rather than sinking the batch.

* Input: one request per line, ``{"id": optional, "messages": [...], "parameters": optional}``;
  ``id`` defaults to the (1-based) line number. A line that cannot be sent is a per-row error.
* Output: one result per non-blank input line, in input order, keyed by ``id`` and ``line``:
  ``{"id", "line", "ok": true, "content", "finish_reason", "usage"}`` or
  ``{"id", "line", "ok": false, "error": {"type", "code", "message", "retryable"}}``.
* Resume: see :mod:`airflow_provider_clova.batch.store` (a local journal, or part objects for a remote output).
  Ids answered by an earlier try are skipped; failures marked ``retryable`` (rate limit,
  timeout, server error) are sent again, others are kept.
* Pacing: requests go through the async client and its shared QPM/TPM limiter, with at most
  ``max_concurrency`` in flight; in the model's CLOVA pool at ``pool_slots / pool size`` of
  the budget.

The operator only adapts: arguments, connection and pool share in, the Airflow-free engine
of :mod:`airflow_provider_clova.batch` (with its chat rows) does the rest.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_clova.batch.chat import ChatRows, chat_validator
from airflow_provider_clova.batch.job import run_file
from airflow_provider_clova.batch.run import RunSettings, Threshold
from airflow_provider_clova.batch.store import as_input, store_for
from airflow_provider_clova.client.catalog import Overrides, model_info
from airflow_provider_clova.client.errors import ClovaStudioBatchFailedError
from airflow_provider_clova.client.limits import lookup_budget
from airflow_provider_clova.client.params import normalize_chat_params
from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook
from airflow_provider_clova.operators._arguments import coerce_parameters
from airflow_provider_clova.operators._lineage import batch_facts, batch_lineage, record

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_clova.client.limits import Budget

__all__ = ["ClovaStudioBatchFailedError", "ClovaStudioBatchInferenceOperator"]


class BatchEngineOperator(BaseOperator):
    """Base of the operators built on the batch engine (batch inference, evaluation, embedding).

    Owns the engine's run arguments once: their checks, their defaults and the attributes
    ``run_settings`` reads, so each operator declares only its own arguments.

    :param max_concurrency: requests in flight at once (the limiter decides when each goes);
        default ``default_concurrency`` of the operator class.
    :param max_failed_rows: fail the task when more rows than this failed.
    :param max_failed_fraction: fail the task when more than this fraction of rows failed.
    :param resume: read back the results of earlier tries and send only what is missing.
    :param progress_interval: seconds between progress lines.
    :param checkpoint_interval: seconds between checkpoints of the results.
    :param work_dir: where a local journal of a remote output is kept.
    """

    default_concurrency: ClassVar[int] = 16

    def __init__(
        self,
        *,
        max_concurrency: int | None = None,
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
        concurrency = self.default_concurrency if max_concurrency is None else max_concurrency
        if concurrency < 1:
            raise ValueError(f"{name}: max_concurrency must be at least 1, got {concurrency}")
        if max_failed_rows is not None and max_failed_rows < 0:
            raise ValueError(f"{name}: max_failed_rows must be >= 0, got {max_failed_rows}")
        if max_failed_fraction is not None and not 0 <= max_failed_fraction <= 1:
            raise ValueError(f"{name}: max_failed_fraction must be in [0, 1], got {max_failed_fraction}")
        if progress_interval <= 0 or checkpoint_interval <= 0:
            raise ValueError(f"{name}: progress_interval and checkpoint_interval must be > 0")
        self.max_concurrency = concurrency
        self.max_failed_rows = max_failed_rows
        self.max_failed_fraction = max_failed_fraction
        self.resume = resume
        self.progress_interval = progress_interval
        self.checkpoint_interval = checkpoint_interval
        self.work_dir = work_dir


class ClovaStudioBatchInferenceOperator(BatchEngineOperator):
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
    :return: ``{"rows", "ok", "failed", "skipped_as_done", "reused", "input_errors", "missing", "sent",
        "output", "tokens": {"prompt_tokens", "completion_tokens", "total_tokens",
        "charged_tokens"}, "elapsed_seconds", "sending_seconds"}``; ``tokens``, ``sent`` and
        ``sending_seconds`` (first request to last answer) count this try only; ``reused``
        counts the rows whose result was read from a finished earlier output.
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not model and not tuning_task_id:
            raise ValueError(f"{type(self).__name__}: give model= (a base model) or tuning_task_id= (a tuned task)")
        self.input_path = input_path
        self.output_path = output_path
        self.model = model
        self.tuning_task_id = tuning_task_id
        self.parameters = parameters
        self.clova_conn_id = clova_conn_id

    # -- execute -----------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        started = time.monotonic()
        tuning_task_id = str(self.tuning_task_id) if self.tuning_task_id else None
        probe = hook = ClovaStudioHook(self.clova_conn_id)
        try:
            model = probe.base_model(self.model, tuning_task_id)
            defaults = self._defaults(model, probe.config.models)
            hook = probe.with_pool_share(self, model)
            summary = self._execute(hook, model, tuning_task_id, defaults, started)
        finally:
            probe.close()
            if hook is not probe:
                hook.close()
        record(self, context, batch_facts(self.input_path, summary, *self._lineage_context))
        return summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: input file + model -> result file."""
        return batch_lineage(self)

    def _defaults(self, model: str, models: Overrides | None = None) -> dict[str, Any]:
        return checked_defaults(self.parameters, model, where=f"{type(self).__name__}({self.task_id})", models=models)

    def _execute(
        self, hook: ClovaStudioHook, model: str, tuning_task_id: str | None, defaults: dict[str, Any], started: float
    ) -> dict[str, Any]:
        config = hook.config
        budget = lookup_budget(model, config.app_type, config.limits)
        validate = chat_validator(model, tuning_task_id, budget.token_ceiling(config.pacing_share), config.models)
        rows = ChatRows(model, tuning_task_id, defaults, validate)
        tuned = f" tuned task {tuning_task_id}" if tuning_task_id else ""
        self._lineage_context = (config.base_url, model, tuning_task_id)
        return run_file(
            rows,
            as_input(self.input_path),
            store_for(self.output_path, work_dir=self.work_dir),
            self._settings(hook, budget),
            connect=hook.aget_async_conn,
            resume=self.resume,
            target=f"{model}{tuned} ({model_info(model, config.models).api})",
            log=self.log.info,
            started=started,
        )

    def _settings(self, hook: ClovaStudioHook, budget: Budget) -> RunSettings:
        return run_settings(self, hook, budget)


def checked_defaults(parameters: Any, model: str, *, where: str, models: Overrides | None = None) -> dict[str, Any]:
    """Operator-wide chat parameters, checked once: a bad default is the task's error, not every row's.
    ``models`` is the connection's ``extra.models``, so a model described there is checked as the client sends it."""
    defaults = coerce_parameters(parameters, where=where)
    info = model_info(model, models)
    normalize_chat_params(defaults, api=info.api, max_output_tokens=info.max_output_tokens, reasoning=info.reasoning)
    return defaults


def run_settings(operator: BatchEngineOperator, hook: ClovaStudioHook, budget: Budget) -> RunSettings:
    """The batch engine's settings from an operator's ``max_concurrency``, threshold and intervals."""
    per_minute = 60.0 / hook.config.rate_window_seconds
    return RunSettings(
        concurrency=operator.max_concurrency,
        threshold=Threshold(operator.max_failed_rows, operator.max_failed_fraction),
        progress_interval=operator.progress_interval,
        checkpoint_interval=operator.checkpoint_interval,
        qpm=round(budget.qpm * hook.config.pacing_share * per_minute, 1),
        tpm=round(budget.tpm * hook.config.pacing_share * per_minute),
    )
