"""Evaluation of chat models against references: Airflow-free, built on the batch engine.

* :mod:`.metrics`: pure scoring of one answer against its reference (exact match, contains,
  regex, token-overlap F1 with a tokenizer that handles Korean).
* :mod:`.judge`: the optional LLM judge (a CLOVA model grading 1-5 with a fixed rubric).
* :mod:`.rows`: the batch :class:`~airflow_provider_clova.batch.run.RowKind` of an evaluation
  set: ask the candidate, score the answer, ask the judge; one record per row.
* :mod:`.scoring`: per-candidate metrics from the result files, the gate (``min_score``,
  ``must_beat``), the winner, the side-by-side table and the Markdown report.

``ClovaStudioEvaluationOperator`` adapts it to Airflow.
"""
