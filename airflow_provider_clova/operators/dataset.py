"""``ClovaStudioDatasetUploadOperator``: check a tuning dataset and put it in Object Storage.

The file is read once: the bytes stream through a SHA-256 digest into the validator, so a
large dataset costs one pass before upload. A dataset that breaks a rule fails the task
with every problem's row, column and fix, and nothing is uploaded. When the object already
holds the same content (same SHA-256 in its metadata) the upload is skipped, so a daily DAG
re-run moves no bytes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_clova.client.errors import ClovaStudioDatasetError, ClovaStudioStorageError
from airflow_provider_clova.datasets import validate_stream
from airflow_provider_clova.operators._lineage import record, upload_lineage
from airflow_provider_clova.operators._object_storage import no_such_bucket, require_location, s3_hook

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

SHA256_METADATA_KEY = "sha256"


class _HashingReader:
    """A ``.read(n)`` stream that digests what passes through it."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._raw.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data


def _open(source: Any) -> Any:
    """Open a local path or an ``ObjectStoragePath`` (anything with ``.open``) for reading bytes."""
    try:
        if hasattr(source, "open") and not isinstance(source, (str, os.PathLike)):
            return source.open("rb")
        return open(os.fspath(source), "rb")  # closed by the caller
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        raise ClovaStudioDatasetError(
            f"cannot read the dataset source {str(source)!r}: {exc.strerror or type(exc).__name__}; nothing was "
            "uploaded. Fix: check the path (it is read on the worker that runs the task, so the file must "
            "exist there, e.g. on a shared volume or in object storage as an ObjectStoragePath)"
        ) from None


def _name_of(source: Any) -> str:
    return str(getattr(source, "name", None) or os.path.basename(os.fspath(source)))


class ClovaStudioDatasetUploadOperator(BaseOperator):
    """Validate a ``.jsonl``/``.csv`` tuning dataset and upload it to NAVER Cloud Object Storage.

    :param source: local path, or an ``ObjectStoragePath`` (any fsspec store Airflow can read).
    :param bucket: destination bucket.
    :param key: destination object key (default: the source's file name).
    :param object_storage_conn_id: ``aws`` connection with ``endpoint_url`` in its extra
        (``https://kr.object.ncloudstorage.com`` for NAVER Cloud).
    :param validate: apply CLOVA Studio's dataset rules first (default on).
    :param max_errors: stop listing problems after this many.
    :return: ``{"bucket", "key", "sha256", "bytes", "uploaded", "rows", "conversations", "estimated_tokens"}``.
    """

    template_fields: Sequence[str] = ("source", "bucket", "key", "object_storage_conn_id")
    ui_color = "#03c75a"

    def __init__(
        self,
        *,
        source: Any,
        bucket: str,
        key: str | None = None,
        object_storage_conn_id: str = "aws_default",
        validate: bool = True,
        max_errors: int = 20,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.bucket = bucket
        self.key = key
        self.object_storage_conn_id = object_storage_conn_id
        self.validate = validate
        self.max_errors = max_errors
        if bucket == "":
            require_location(f"task {self.task_id!r}", bucket=bucket)

    def execute(self, context: Context) -> dict[str, Any]:
        require_location(f"task {self.task_id!r}", bucket=self.bucket)
        name = _name_of(self.source)
        key = str(self.key or name)
        with _open(self.source) as raw:
            reader = _HashingReader(raw)
            if self.validate:
                report = validate_stream(cast("BinaryIO", reader), filename=key, max_errors=self.max_errors)
            else:
                report = None
                while reader.read(1 << 20):
                    pass
        if report is not None and not report.ok:
            raise ClovaStudioDatasetError(
                f"dataset {name} breaks CLOVA Studio's rules; nothing was uploaded:\n{report.format()}"
            )
        sha256 = reader.digest.hexdigest()
        result: dict[str, Any] = {
            "bucket": self.bucket,
            "key": key,
            "sha256": sha256,
            "bytes": reader.size,
            "uploaded": False,
            "rows": report.rows if report else None,
            "conversations": report.conversations if report else None,
            "estimated_tokens": report.estimated_tokens if report else None,
        }
        if self._same_content_present(key, sha256):
            self.log.info(
                "s3://%s/%s already holds this content (sha256 %s); upload skipped", self.bucket, key, sha256[:12]
            )
        else:
            self._upload(key, sha256)
            result["uploaded"] = True
            self.log.info("uploaded %s (%d bytes) to s3://%s/%s", name, reader.size, self.bucket, key)
        record(self, context, {"source": str(self.source), **result})
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the source file -> the Object Storage object."""
        return upload_lineage(self)

    def _same_content_present(self, key: str, sha256: str) -> bool:
        # lazy: boto3 loads when a task touches Object Storage, not when a DAG file is parsed
        from botocore.exceptions import ClientError

        try:
            head = s3_hook(self.object_storage_conn_id).get_conn().head_object(Bucket=self.bucket, Key=key)
        except ClientError:
            return False
        return bool(head.get("Metadata", {}).get(SHA256_METADATA_KEY) == sha256)

    def _upload(self, key: str, sha256: str) -> None:
        # lazy: boto3 loads when a task touches Object Storage, not when a DAG file is parsed
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        hook = S3Hook(aws_conn_id=self.object_storage_conn_id, extra_args={"Metadata": {SHA256_METADATA_KEY: sha256}})
        target = f"s3://{self.bucket}/{key}"
        with _open(self.source) as handle:
            try:
                hook.load_file_obj(handle, key=key, bucket_name=self.bucket, replace=True)
            except (ClientError, S3UploadFailedError, BotoCoreError) as exc:
                # boto3's transfer wraps the service's ClientError in S3UploadFailedError (text only)
                if "NoSuchBucket" in str(exc):
                    raise no_such_bucket(self.bucket, f"uploading to {target}") from None
                raise ClovaStudioStorageError(
                    f"uploading the dataset to {target} failed ({type(exc).__name__}: {exc}). Fix: check the "
                    "connection's endpoint_url and that its keys may write to the bucket; a passing failure is "
                    "retried by the task's next try"
                ) from None
