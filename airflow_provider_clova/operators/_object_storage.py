"""NAVER Cloud Object Storage through the amazon provider's ``S3Hook``.

Object Storage is S3-compatible: an ``aws`` connection whose extra carries
``{"endpoint_url": "https://kr.object.ncloudstorage.com"}`` is all it takes. This module is
the one place the provider touches it: reading an object as a stream for validation, and the
credentials CLOVA Studio needs to read the dataset itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_clova._compat import mask_secret

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook


def s3_hook(conn_id: str) -> S3Hook:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=conn_id)


def credentials(conn_id: str) -> tuple[str, str]:
    """(access key, secret key) of an Object Storage connection, registered with the log masker."""
    from airflow_provider_clova.client.errors import ClovaStudioConfigError

    creds = s3_hook(conn_id).get_credentials()
    if not creds.access_key or not creds.secret_key:
        raise ClovaStudioConfigError(
            f"connection {conn_id!r} has no access key / secret key; CLOVA Studio needs them to read the dataset"
        )
    mask_secret(creds.secret_key)
    return creds.access_key, creds.secret_key


def open_object(conn_id: str, bucket: str, key: str) -> tuple[Any, int | None]:
    """A streaming body (``.read(n)``) of ``s3://bucket/key`` and its size; raises if missing."""
    from botocore.exceptions import ClientError

    from airflow_provider_clova.client.errors import ClovaStudioDatasetError

    client = s3_hook(conn_id).get_conn()
    try:
        answer = client.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise ClovaStudioDatasetError(
            f"file.noexist: cannot read dataset s3://{bucket}/{key} ({code or exc}). "
            "Fix: upload the dataset first, and check the bucket, key and the connection's permissions"
        ) from None
    return answer["Body"], answer.get("ContentLength")


def object_version(conn_id: str, bucket: str, key: str) -> str | None:
    """The object's ETag (changes with its content), or None when it is not there."""
    from botocore.exceptions import ClientError

    try:
        head = s3_hook(conn_id).get_conn().head_object(Bucket=bucket, Key=key)
    except ClientError:
        return None
    return str(head.get("ETag") or "") or None
