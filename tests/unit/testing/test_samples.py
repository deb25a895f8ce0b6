"""The shared test data speaks the client's language, and ``wait_until`` fails loudly."""

from __future__ import annotations

import httpx
import pytest

from airflow_provider_clova.client.envelope import parse_response
from airflow_provider_clova.client.errors import ClovaStudioNotFoundError, ClovaStudioRateLimitError
from airflow_provider_clova.client.models import TuningStatus, TuningTask
from airflow_provider_clova.testing.samples import (
    STATUS_INFO_FIELDS,
    TASK_FIELDS,
    fail,
    failed_json,
    ok,
    running_json,
    succeeded_json,
    task_json,
)
from airflow_provider_clova.testing.waiting import wait_until

REQUEST = httpx.Request("GET", "https://clovastudio.test/tuning/v2/tasks/czf9fbky")


def test_task_json_has_the_seed_fields_in_order_with_statusinfo_by_name() -> None:
    raw = task_json("abcd1234", "RUNNING", currStep=5, trainEpochs=4)
    assert tuple(raw) == TASK_FIELDS
    assert tuple(raw["statusInfo"]) == STATUS_INFO_FIELDS
    assert (raw["statusInfo"]["currStep"], raw["trainEpochs"]) == (5, 4)
    assert raw["statusInfo"]["totalTrainSteps"] is None


def test_task_json_refuses_a_misspelt_field() -> None:
    with pytest.raises(TypeError, match="currstep"):
        task_json(currstep=5)


@pytest.mark.parametrize(
    ("raw", "status", "summary_part"),
    [
        (running_json(), TuningStatus.RUNNING, "step 150/600 (25%)"),
        (succeeded_json(), TuningStatus.SUCCEEDED, "SUCCEEDED"),
        (failed_json("t1", "dataset.invalid", "bad row 3"), TuningStatus.FAILED, "dataset.invalid"),
    ],
)
def test_the_task_builders_parse_as_the_client_reads_them(raw: dict, status: TuningStatus, summary_part: str) -> None:
    task = TuningTask.from_api(raw)
    assert task.status is status
    assert summary_part in task.summary()


def test_ok_and_fail_are_the_envelopes_the_client_parses() -> None:
    answer = ok(task_json())
    answer.request = REQUEST
    assert parse_response(answer) == task_json()
    for response, error in (
        (fail(429, "42901", "rate exceeded"), ClovaStudioRateLimitError),
        (fail(404, "40400"), ClovaStudioNotFoundError),
    ):
        response.request = REQUEST
        with pytest.raises(error):
            parse_response(response)


def test_wait_until_returns_the_first_truthy_value() -> None:
    values = iter([None, 0, "", "ready"])
    assert wait_until(lambda: next(values), timeout=5, interval=0) == "ready"


def test_wait_until_names_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match=r"waiting for the flag \(last value False\)"):
        wait_until(lambda: False, timeout=0.05, interval=0.01, what="the flag")
