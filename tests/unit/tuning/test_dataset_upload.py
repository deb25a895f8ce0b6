"""ClovaStudioDatasetUploadOperator on moto's in-process S3: validate, then upload or skip by sha256."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_clova.client.errors import ClovaStudioDatasetError
from airflow_provider_clova.operators.dataset import SHA256_METADATA_KEY, ClovaStudioDatasetUploadOperator
from tests.unit.tuning.conftest import OBJ_CONN_ID, make_context

moto = pytest.importorskip("moto")

SAMPLE = (resources.files("airflow_provider_clova.datasets") / "samples" / "tuning_sample.jsonl").read_bytes()
BUCKET = "clova-datasets"

pytestmark = pytest.mark.usefixtures("connections")


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto.mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def uploads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Keys actually written through the S3Hook."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    written: list[str] = []
    real = S3Hook.load_file_obj

    def spy(self: S3Hook, file_obj: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        written.append(key)
        return real(self, file_obj, key, *args, **kwargs)

    monkeypatch.setattr(S3Hook, "load_file_obj", spy)
    return written


def write(tmp_path: Path, data: bytes, name: str = "train.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def upload(source: Any, key: str | None = "datasets/train.jsonl", **kwargs: Any) -> dict[str, Any]:
    op = ClovaStudioDatasetUploadOperator(
        task_id="upload", source=source, bucket=BUCKET, key=key, object_storage_conn_id=OBJ_CONN_ID, **kwargs
    )
    result: dict[str, Any] = op.execute(make_context())
    return result


def test_uploads_a_valid_dataset_with_its_sha256(s3: Any, uploads: list[str], tmp_path: Path) -> None:
    result = upload(str(write(tmp_path, SAMPLE)))
    digest = hashlib.sha256(SAMPLE).hexdigest()
    assert result == {
        "bucket": BUCKET,
        "key": "datasets/train.jsonl",
        "sha256": digest,
        "bytes": len(SAMPLE),
        "uploaded": True,
        "rows": 120,
        "conversations": result["conversations"],
        "estimated_tokens": result["estimated_tokens"],
    }
    assert result["conversations"] > 0 and result["estimated_tokens"] > 0
    obj = s3.get_object(Bucket=BUCKET, Key="datasets/train.jsonl")
    assert obj["Body"].read() == SAMPLE
    assert obj["Metadata"][SHA256_METADATA_KEY] == digest
    assert uploads == ["datasets/train.jsonl"]


def test_same_content_is_not_uploaded_again(s3: Any, uploads: list[str], tmp_path: Path) -> None:
    path = write(tmp_path, SAMPLE)
    upload(path)
    again = upload(path)
    assert again["uploaded"] is False
    assert again["sha256"] == hashlib.sha256(SAMPLE).hexdigest()
    assert uploads == ["datasets/train.jsonl"]


def test_changed_content_is_uploaded(s3: Any, uploads: list[str], tmp_path: Path) -> None:
    upload(write(tmp_path, SAMPLE))
    changed = SAMPLE.replace(b"2-year", b"3-year")
    assert changed != SAMPLE
    result = upload(write(tmp_path, changed))
    assert result["uploaded"] is True
    obj = s3.get_object(Bucket=BUCKET, Key="datasets/train.jsonl")
    assert obj["Body"].read() == changed
    assert obj["Metadata"][SHA256_METADATA_KEY] == hashlib.sha256(changed).hexdigest()
    assert uploads == ["datasets/train.jsonl"] * 2


def test_an_object_without_our_digest_is_replaced(s3: Any, uploads: list[str], tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="datasets/train.jsonl", Body=SAMPLE)
    assert upload(write(tmp_path, SAMPLE))["uploaded"] is True


def test_an_invalid_dataset_uploads_nothing(s3: Any, uploads: list[str], tmp_path: Path) -> None:
    bad = b'{"C_ID": 0, "System_Prompt": "", "T_ID": 0, "Text": "hi", "Completion": "hello"}\n'
    with pytest.raises(ClovaStudioDatasetError) as info:
        upload(write(tmp_path, bad))
    assert "nothing was uploaded" in str(info.value)
    assert uploads == []
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_a_wrong_extension_uploads_nothing(s3: Any, uploads: list[str], tmp_path: Path) -> None:
    with pytest.raises(ClovaStudioDatasetError, match=r"file\.extension|extension"):
        upload(write(tmp_path, SAMPLE, "train.txt"), key=None)
    assert uploads == []


def test_without_validation_the_whole_file_is_hashed_and_uploaded(s3: Any, uploads: list[str], tmp_path: Path) -> None:
    data = b"not a dataset at all\n" * 100_000  # > one 1 MiB chunk
    result = upload(write(tmp_path, data, "blob.jsonl"), validate=False)
    assert result["uploaded"] is True and result["rows"] is None
    assert result["sha256"] == hashlib.sha256(data).hexdigest() and result["bytes"] == len(data)


def test_the_key_defaults_to_the_file_name(s3: Any, uploads: list[str], tmp_path: Path) -> None:
    result = upload(write(tmp_path, SAMPLE, "support.jsonl"), key=None)
    assert result["key"] == "support.jsonl" and uploads == ["support.jsonl"]


def test_template_fields() -> None:
    assert set(ClovaStudioDatasetUploadOperator.template_fields) == {
        "source",
        "bucket",
        "key",
        "object_storage_conn_id",
    }


def test_a_missing_local_file_is_a_typed_error_with_the_fix(s3: Any, tmp_path: Path) -> None:
    with pytest.raises(ClovaStudioDatasetError, match=r"not-there\.jsonl.*No such file.*Fix: check the path"):
        upload(tmp_path / "not-there.jsonl")


def test_a_missing_bucket_is_a_typed_error_naming_the_bucket_and_how_to_create_it(s3: Any, tmp_path: Path) -> None:
    op = ClovaStudioDatasetUploadOperator(
        task_id="upload", source=write(tmp_path, SAMPLE), bucket="no-such-bucket", object_storage_conn_id=OBJ_CONN_ID
    )
    with pytest.raises(ClovaStudioDatasetError, match="'no-such-bucket' does not exist") as info:
        op.execute(make_context())
    assert "LocationConstraint" in str(info.value) and "kr-standard" in str(info.value)


def test_an_empty_bucket_name_fails_at_construction_or_after_rendering(s3: Any, tmp_path: Path) -> None:
    from airflow_provider_clova.client.errors import ClovaStudioConfigError

    with pytest.raises(ClovaStudioConfigError, match=r"bucket='' is empty\. Fix:"):
        ClovaStudioDatasetUploadOperator(
            task_id="upload", source="x.jsonl", bucket="", object_storage_conn_id=OBJ_CONN_ID
        )
    op = ClovaStudioDatasetUploadOperator(
        task_id="upload", source=write(tmp_path, SAMPLE), bucket="{{ var }}", object_storage_conn_id=OBJ_CONN_ID
    )
    op.bucket = ""  # what the template rendered to
    with pytest.raises(ClovaStudioConfigError, match=r"bucket='' is empty"):
        op.execute(make_context())
