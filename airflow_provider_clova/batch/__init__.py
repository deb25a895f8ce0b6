"""The batch engine: a JSONL of rows in, one async call per row, a JSONL of results out.

Airflow-free core (like :mod:`airflow_provider_clova.client`): resumable, paced by the
client's shared QPM/TPM limiter, concurrent, with per-row errors and a failure threshold.
``ClovaStudioBatchInferenceOperator`` adapts it; the modules in the order data flows:

* :mod:`.input` reads the input: :func:`~.input.parse_line` checks a line's envelope (JSON
  object, ``id``, no unknown field), :func:`~.input.build_index` and
  :func:`~.input.pending_rows` are the two streaming passes.
* :mod:`.run` sends: :func:`~.run.run_batch` runs ``concurrency`` workers over the pending
  rows, journals each result, logs progress, checkpoints, and stops early past the
  :class:`~.run.Threshold` or on an error that is ``fatal_for_batch``.
* :mod:`.store` keeps results: a local journal or part objects in an object store, read back
  by a retry (the only module that touches ``ObjectStoragePath``, imported when needed).
* :mod:`.job` is one try end to end: :func:`~.job.run_file` returns the summary or raises
  ``ClovaStudioBatchFailedError``.
* :mod:`.chat` is the chat row kind: ``{"id", "messages", "parameters"}`` -> ``content``,
  ``finish_reason``, ``usage``.

The seam for other row kinds
----------------------------
What a row *is* lives in a :class:`~.run.RowKind` (a protocol):

* ``fields``: a class attribute, the fields a line may carry besides ``id``;
* ``parse(item) -> payload``: everything checkable before sending (field types, parameter
  ranges, that the request fits the task's token budget); raise
  :class:`~.input.RowInputError` ``(type, message)`` for a bad line;
* ``async call(client, row) -> RowOutput``: one call on the ``AsyncClovaStudioClient`` with
  ``row.payload``; ``RowOutput.fields`` go into the row's record after ``id``, ``line`` and
  ``ok``, its token counts into the summary.

An embedding or evaluation operator writes such a class and calls :func:`~.job.run_file`
with it; resume, pacing, concurrency, the threshold and the output format come with it::

    @dataclass(frozen=True)
    class TextRows:
        model: str
        fields: ClassVar[tuple[str, ...]] = ("text",)

        def parse(self, item: dict[str, Any]) -> str:
            if not isinstance(item.get("text"), str):
                raise RowInputError("invalid_request", "text must be a string")
            return item["text"]

        async def call(self, client: AsyncClovaStudioClient, row: Row) -> RowOutput:
            vector = ...  # await a call on client with row.payload
            return RowOutput({"embedding": vector})

A ``ClovaStudioError`` raised by ``call`` fails that row as ``error.type = exc.kind``
(``retryable`` ones are sent again by the next try; ``fatal_for_batch`` ones stop the batch
and are raised); any other exception stops the run with the journal kept.
"""
