"""NAVER Cloud Object Storage through the amazon provider's ``S3Hook``.

Object Storage is S3-compatible: an ``aws`` connection whose extra carries
``{"endpoint_url": "https://kr.object.ncloudstorage.com"}`` is all it takes. This module is
the one place the provider touches it: reading an object as a stream for validation, and the
credentials CLOVA Studio needs to read the dataset itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_clova._compat import mask_secret
from airflow_provider_clova.client.errors import (
    ClovaStudioConfigError,
    ClovaStudioDatasetError,
    ClovaStudioStorageError,
)

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook


#: HEAD answers that say "no such object or bucket": a definite answer, unlike a 5xx or a reset.
_MISSING = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}


#: How to create a bucket in NAVER Cloud's region: boto3 sends no LocationConstraint by default,
#: which only us-east-1 accepts (the error is IllegalLocationConstraintException).
CREATE_BUCKET_HINT = (
    's3.create_bucket(Bucket=..., CreateBucketConfiguration={"LocationConstraint": "kr-standard"}) '
    "or create it in the NAVER Cloud console"
)


def require_location(where: str, **fields: Any) -> None:
    """Raise naming the field when a bucket or key is empty (e.g. a template that rendered to '')."""
    for name, value in fields.items():
        if not isinstance(value, str) or not value.strip():
            raise ClovaStudioConfigError(
                f"{where}: {name}={value!r} is empty. Fix: give the Object Storage {name.replace('_', ' ')} "
                "(check the template or variable it comes from)"
            )


def no_such_bucket(bucket: str, where: str) -> Exception:
    return ClovaStudioDatasetError(
        f"file.noexist: bucket {bucket!r} does not exist ({where}). Fix: check the bucket name and the "
        f"connection's endpoint_url, or create the bucket first: {CREATE_BUCKET_HINT}"
    )


def s3_hook(conn_id: str) -> S3Hook:
    # lazy: boto3 loads when a task touches Object Storage, not when a DAG file is parsed
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=conn_id)


def credentials(conn_id: str) -> tuple[str, str]:
    """(access key, secret key) of an Object Storage connection, registered with the log masker."""
    creds = s3_hook(conn_id).get_credentials()
    if not creds.access_key or not creds.secret_key:
        raise ClovaStudioConfigError(
            f"connection {conn_id!r} has no access key / secret key; CLOVA Studio needs them to read the dataset"
        )
    mask_secret(creds.secret_key)
    return creds.access_key, creds.secret_key


def open_object(conn_id: str, bucket: str, key: str) -> tuple[Any, int | None]:
    """A streaming body (``.read(n)``) of ``s3://bucket/key`` and its size; raises if missing.

    A missing bucket or key is the user's to fix (``ClovaStudioDatasetError``, file.noexist); a
    failing Object Storage (5xx, network) is a ``ClovaStudioStorageError`` the next try repeats.
    """
    # lazy: boto3 loads when a task touches Object Storage, not when a DAG file is parsed
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        answer = s3_hook(conn_id).get_conn().get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "") or "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            raise no_such_bucket(bucket, f"dataset s3://{bucket}/{key}") from None
        if code in _MISSING or status == 404 or status == 403:
            raise ClovaStudioDatasetError(
                f"file.noexist: cannot read dataset s3://{bucket}/{key} ({code or status}). "
                "Fix: upload the dataset first, and check the bucket, key and the connection's permissions"
            ) from None
        raise ClovaStudioStorageError(
            f"Object Storage failed reading dataset s3://{bucket}/{key} (HTTP {status or '-'} {code}); nothing "
            "was submitted. Fix: usually passing; the task's next try reads it again (give the task retries)"
        ) from None
    except BotoCoreError as exc:
        raise read_failed(bucket, key, exc) from None
    return answer["Body"], answer.get("ContentLength")


def read_failed(bucket: str, key: str, exc: BaseException) -> Exception:
    return ClovaStudioStorageError(
        f"cannot reach Object Storage for dataset s3://{bucket}/{key} ({type(exc).__name__}); nothing was "
        "submitted. Fix: check the connection's endpoint_url; a passing network failure is retried by the "
        "task's next try"
    )


def object_version(conn_id: str, bucket: str, key: str) -> str | None:
    """The object's ETag (changes with its content), or None when it is not there.

    The version is part of the tuning task's name, so a read that fails for any other reason
    (5xx, throttling, a dropped connection; after the S3 client's own retries) raises instead
    of answering None: a retry that named the job differently would not find the job an
    earlier try created, and would bill a second one. Nothing has been created at this point.
    """
    # lazy: boto3 loads when a task touches Object Storage, not when a DAG file is parsed
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        head = s3_hook(conn_id).get_conn().head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(error.get("Code") or status or "")
        if code in _MISSING or status == 404:
            return None
        raise ClovaStudioStorageError(
            f"cannot read the version of dataset s3://{bucket}/{key} (HTTP {status or '-'} {code}); nothing "
            "was submitted. Fix: this is usually a passing Object Storage failure and the task's next try "
            "reads it again (give the task retries); if it persists, check the connection's endpoint_url "
            f"and that {conn_id!r} may read the bucket"
        ) from None
    except BotoCoreError as exc:
        raise read_failed(bucket, key, exc) from None
    return str(head.get("ETag") or "") or None
