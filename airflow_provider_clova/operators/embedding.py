"""``ClovaStudioEmbeddingOperator``: a JSONL of texts in, a JSONL of vectors out, under the budget.

The nightly RAG refresh: embed a document set with CLOVA Studio's embedding v2 (or v1's
``clir-emb-dolphin`` / ``clir-sts-dolphin``), paying only for the documents that changed.

* Input: one document per line, ``{<id_field>, <text_field>, <carry_fields>...}`` (names
  configurable; any other field is a per-row input error). A local path, a ``file://`` or
  ``s3://`` URI or an ``ObjectStoragePath``.
* Output: one record per input line, in input order: ``{"id", "line", "ok": true,
  <carried fields>, "embedding": [floats], "input_tokens", "content_hash"}`` or ``{"id",
  "line", "ok": false, "error": {...}}``. ``content_hash`` is the sha256 of the model and
  the text. With ``output_format="parquet"`` a Parquet copy is written too (needs pyarrow).
* Re-runs: with ``previous_output`` (last night's output, or ``output_path`` itself), a row
  whose id and content hash match a success there is copied without a request; only new
  and changed texts are sent.
* Everything else is the batch engine's (:mod:`airflow_provider_clova.batch`): resume after a
  kill from the journal, pacing by the embedding model's QPM/TPM budget (TPM counts input
  tokens) with ``max_concurrency`` in flight, per-row errors (a text proven over the model's
  token limit is refused before sending; the service's own 400 is recorded as the row's
  error) with a failure threshold, and progress lines with rows/s and an ETA.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_clova.batch.embedding import EmbeddingRows
from airflow_provider_clova.batch.job import run_file
from airflow_provider_clova.batch.parquet import parquet_module, parquet_target, write_parquet
from airflow_provider_clova.batch.store import as_input, store_for
from airflow_provider_clova.client.embeddings import embedding_model
from airflow_provider_clova.client.errors import ClovaStudioBatchFailedError
from airflow_provider_clova.client.limits import lookup_budget
from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook
from airflow_provider_clova.operators._lineage import batch_facts, batch_lineage, record
from airflow_provider_clova.operators.batch import (
    BatchEngineOperator,
    run_settings,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = ["ClovaStudioBatchFailedError", "ClovaStudioEmbeddingOperator"]

OUTPUT_FORMATS = ("jsonl", "parquet")
#: Fields every result record has; a carried input field may not take these names.
RESERVED_FIELDS = ("id", "line", "ok", "error", "embedding", "input_tokens", "content_hash")


class ClovaStudioEmbeddingOperator(BatchEngineOperator):
    """Embed every text of a JSONL file with CLOVA Studio and write the vectors as JSONL (and Parquet).

    :param input_path: local path, ``file://``/``s3://`` URI or ``ObjectStoragePath`` of the texts.
    :param output_path: where the vectors go (same kinds), as JSONL.
    :param model: ``embedding-v2`` (default; 1,024 dimensions, up to 8,192 tokens; also called
        ``bge-m3``), ``clir-emb-dolphin`` or ``clir-sts-dolphin`` (up to 500 tokens).
    :param id_field: the input field holding each document's id (written as ``id``).
    :param text_field: the input field holding the text to embed.
    :param carry_fields: input fields copied into each result (e.g. ``("title", "url")``).
    :param previous_output: an earlier output (path, URI or ``ObjectStoragePath``; may be
        ``output_path`` itself): rows whose id and content hash match a success there are
        copied, not sent. Missing is fine (a first run).
    :param output_format: ``"jsonl"`` (default) or ``"parquet"``: also write
        ``parquet_path`` (default: ``output_path`` with ``.parquet`` for ``.jsonl``), columns
        ``id``, ``ok``, ``embedding`` (list of float32), ``input_tokens``, ``content_hash``,
        ``error``. Needs ``pyarrow`` (``pip install 'airflow-provider-clova[parquet]'``).
    :param parquet_path: where the Parquet copy goes.

    The other parameters (``clova_conn_id``, ``max_concurrency``, ``max_failed_rows``,
    ``max_failed_fraction``, ``resume``, ``progress_interval``, ``checkpoint_interval``,
    ``work_dir``) are those of ``ClovaStudioBatchInferenceOperator``. Outlets get an asset
    event whose extra holds the input, output, model and counts (also OpenLineage facets).

    :return: the batch summary (``rows``, ``ok``, ``failed``, ``sent``, ``reused``,
        ``skipped_as_done``, ``tokens``, ``output``, ...) plus ``model`` and, with Parquet, ``parquet``.
    """

    template_fields: Sequence[str] = (
        "input_path",
        "output_path",
        "previous_output",
        "parquet_path",
        "model",
        "id_field",
        "text_field",
        "clova_conn_id",
    )

    ui_color = "#03c75a"

    def __init__(
        self,
        *,
        input_path: Any,
        output_path: Any,
        model: str = "embedding-v2",
        id_field: str = "id",
        text_field: str = "text",
        carry_fields: Sequence[str] = (),
        previous_output: Any = None,
        output_format: str = "jsonl",
        parquet_path: Any = None,
        clova_conn_id: str = "clova_studio_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        name = type(self).__name__
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(f"{name}: output_format must be one of {', '.join(OUTPUT_FORMATS)}, got {output_format!r}")
        carry = tuple(carry_fields)
        clash = sorted({*carry} & {*RESERVED_FIELDS, id_field, text_field})
        if clash:
            raise ValueError(
                f"{name}: carry_fields {', '.join(clash)} clash with the id, the text or a result field "
                f"({', '.join(RESERVED_FIELDS)}); carry other fields"
            )
        if not id_field or not text_field or id_field == text_field:
            raise ValueError(f"{name}: id_field and text_field must be two different, non-empty field names")
        self.input_path = input_path
        self.output_path = output_path
        self.model = model
        self.id_field = id_field
        self.text_field = text_field
        self.carry_fields = carry
        self.previous_output = previous_output
        self.output_format = output_format
        self.parquet_path = parquet_path
        self.clova_conn_id = clova_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        started = time.monotonic()
        model = embedding_model(self.model).name
        if self.output_format == "parquet":
            parquet_module()  # fail before anything is sent
        probe = hook = ClovaStudioHook(self.clova_conn_id)
        try:
            hook = probe.with_pool_share(self, model)
            summary = self._execute(hook, model, started)
        finally:
            probe.close()
            if hook is not probe:
                hook.close()
        summary["model"] = model
        if self.output_format == "parquet":
            summary["parquet"] = self._write_parquet()
        facts = batch_facts(self.input_path, summary, hook.config.base_url, model, None)
        record(self, context, {**facts, "sent": summary["sent"], "reused": summary["reused"]})
        return summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: input file + embedding model -> vectors file."""
        return batch_lineage(self)

    def _execute(self, hook: Any, model: str, started: float) -> dict[str, Any]:
        config = hook.config
        budget = lookup_budget(model, config.app_type, config.limits)
        rows = EmbeddingRows(
            model,
            text_field=self.text_field,
            id_field=self.id_field,
            carry=self.carry_fields,
            token_ceiling=budget.token_ceiling(config.pacing_share),
        )
        return run_file(
            rows,
            as_input(self.input_path),
            store_for(self.output_path, work_dir=self.work_dir),
            run_settings(self, hook, budget),
            connect=hook.aget_async_conn,
            resume=self.resume,
            target=model,
            log=self.log.info,
            started=started,
            previous=as_input(self.previous_output) if self.previous_output else None,
        )

    def _write_parquet(self) -> str:
        target = parquet_target(self.output_path, self.parquet_path)
        write_parquet(as_input(self.output_path), as_input(target))
        self.log.info("embedding: wrote the Parquet copy to %s", target)
        return str(target)
