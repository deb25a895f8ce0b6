"""Read a task's dataset from the S3-compatible Object Storage and judge it as the service does.

The object is fetched with the bucket, key and keys given in the create request (never the
emulator's own), streamed through the core's ``validate_stream`` (the dataset rules live
there, in one place) and, when valid, read once more from a local spool for what the emulated
training needs: row count, tokens, class labels and the Text -> Completion pairs a tuned model
"learns". Runs in a worker thread: it blocks on the network.

Outcome mapping: a missing bucket or key is ``file.noexist``; any other storage failure
(refused credentials, an unreadable object such as an archived one, an unreachable endpoint)
is ``file.error``; a dataset that breaks a rule ends with the first problem the validator
reports, as ``failureReason`` + ``message``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from airflow_provider_clova.datasets import DEFAULT_MAX_BYTES, FAILURE_REASONS, validate_stream
from airflow_provider_clova.testing.emulator.tokenizer import count_text

log = logging.getLogger("airflow_provider_clova.testing.emulator")

_NOT_FOUND_CODES = frozenset({"NoSuchBucket", "NoSuchKey", "404", "NotFound"})
_SPOOL_IN_MEMORY = 8 * 1024 * 1024


@dataclass(frozen=True)
class DatasetRef:
    """Where the dataset is. The secret key stays in memory and out of every log and answer."""

    bucket: str
    key: str
    access_key: str
    secret_key: str = field(repr=False)


@dataclass(frozen=True)
class DatasetOutcome:
    """What training needs to know about the dataset, or why it cannot train."""

    failure_reason: str | None = None
    message: str | None = None
    rows: int = 0
    num_tokens: int = 0
    labels: tuple[str, ...] = ()
    answers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.failure_reason is None


def failure(code: str, detail: str | None = None) -> DatasetOutcome:
    """A failed outcome worded from the core's failure table."""
    reason = FAILURE_REASONS.get(code)
    text = reason[0] if reason is not None else code
    return DatasetOutcome(failure_reason=code, message=f"{text}: {detail}" if detail else text)


def normalize(text: str) -> str:
    """How a prompt is compared with the dataset's ``Text``: case and spacing do not matter."""
    return " ".join(text.split()).casefold()


class _Tee:
    """Hands the validator the object's bytes while keeping a copy for the second pass."""

    def __init__(self, stream: Any, sink: IO[bytes]) -> None:
        self._stream = stream
        self._sink = sink

    def read(self, size: int = -1, /) -> bytes:
        data: bytes = self._stream.read(size)
        self._sink.write(data)
        return data


def load_dataset(
    endpoint: str | None,
    region: str,
    ref: DatasetRef,
    *,
    max_bytes: int | None,
    classification: bool,
) -> DatasetOutcome:
    """Fetch, validate and digest one dataset object. Never raises: every failure is an outcome."""
    if not endpoint:
        return failure("file.error", "the emulator has no --object-storage-endpoint")
    try:
        return _load(endpoint, region, ref, max_bytes=max_bytes, classification=classification)
    except Exception as exc:  # a bug or an unexpected client failure must not kill the server
        log.warning("dataset read failed: %s", type(exc).__name__)
        log.debug("dataset read failure", exc_info=True)
        return failure("file.error", type(exc).__name__)


def _load(
    endpoint: str, region: str, ref: DatasetRef, *, max_bytes: int | None, classification: bool
) -> DatasetOutcome:
    # lazy: boto3 loads only when a test or the emulator talks to S3
    import boto3.session
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    # The service judges the extension from the path before it fetches anything; asking the
    # core validator about an empty stream applies that one rule without restating it here.
    named = validate_stream(io.BytesIO(b""), filename=ref.key, size=0, max_errors=1).first_failure()
    if named is not None and named.code == "file.extension":
        return DatasetOutcome(failure_reason=named.code, message=named.message)

    # A session per read: boto3's default session is not safe to share between threads.
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=ref.access_key,
        aws_secret_access_key=ref.secret_key,
        config=Config(
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": "path"},
        ),
    )
    try:
        obj = client.get_object(Bucket=ref.bucket, Key=ref.key)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _NOT_FOUND_CODES:
            return failure("file.noexist", f"s3://{ref.bucket}/{ref.key} ({code})")
        return failure("file.error", f"Object Storage answered {code or 'an error'}")
    except BotoCoreError as exc:
        return failure("file.error", type(exc).__name__)

    body = obj["Body"]
    size = obj.get("ContentLength")
    limit = max_bytes if max_bytes is not None else DEFAULT_MAX_BYTES
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
        try:
            report = validate_stream(
                _Tee(body, spool),  # type: ignore[arg-type]
                filename=ref.key,
                size=size,
                max_errors=1,
                max_bytes=limit,
            )
        finally:
            body.close()
        problem = report.first_failure()
        if not report.ok and problem is not None:
            return DatasetOutcome(failure_reason=problem.code, message=problem.message)
        spool.seek(0)
        return _digest(spool, ref.key, rows=report.rows, classification=classification)


def _rows(spool: IO[bytes], key: str) -> list[Mapping[str, Any]]:
    text = io.TextIOWrapper(spool, encoding="utf-8-sig", newline="")  # type: ignore[type-var]
    try:
        if key.lower().endswith(".jsonl"):
            return [json.loads(line) for line in text if line.strip()]
        return list(csv.DictReader(text))
    finally:
        text.detach()


def _digest(spool: IO[bytes], key: str, *, rows: int, classification: bool) -> DatasetOutcome:
    answers: dict[str, str] = {}
    labels: set[str] = set()
    tokens = 0
    count = 0
    for row in _rows(spool, key):
        count += 1
        prompt = str(row.get("Text") or "")
        completion = str(row.get("Completion") or "")
        tokens += count_text(str(row.get("System_Prompt") or "")) + count_text(prompt) + count_text(completion)
        answers.setdefault(normalize(prompt), completion)
        if classification:
            labels.add(completion)
    return DatasetOutcome(
        rows=rows or count,
        num_tokens=tokens,
        labels=tuple(sorted(labels)),
        answers=answers,
    )
