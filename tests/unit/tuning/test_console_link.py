"""The "CLOVA Studio console" extra link: stored in XCom by the operator, read by the UI."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_clova._compat import AIRFLOW_V_3
from airflow_provider_clova.links.console import DEFAULT_CONSOLE_URL, ClovaStudioTuningConsoleLink, console_url
from airflow_provider_clova.operators.tuning import ClovaStudioTuningOperator
from tests.unit.tuning.conftest import FakeTI, make_context


def test_console_url_default_and_template() -> None:
    assert console_url("czf9fbky") == DEFAULT_CONSOLE_URL.format(task_id="czf9fbky")
    assert console_url("czf9fbky").endswith("/czf9fbky")
    assert console_url("czf9fbky", "https://gov.example/t/{task_id}/detail") == "https://gov.example/t/czf9fbky/detail"


def test_persist_pushes_the_url_under_the_link_key() -> None:
    ti = FakeTI()
    ClovaStudioTuningConsoleLink.persist(make_context(ti), "https://x/y")
    assert ti.pushes == [(ClovaStudioTuningConsoleLink.key, "https://x/y")]


def test_xcom_key_is_where_persist_writes() -> None:
    """Airflow 3 stores get_link()'s answer under xcom_key at task end: it must be the same key."""
    link = ClovaStudioTuningConsoleLink()
    assert link.xcom_key == ClovaStudioTuningConsoleLink.key
    assert link.name == "CLOVA Studio console"


@pytest.fixture
def xcom_store(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[Any, ...], Any]:
    store: dict[tuple[Any, ...], Any] = {}
    if AIRFLOW_V_3:
        from airflow.sdk.execution_time.xcom import XCom
    else:
        from airflow.models.xcom import XCom  # type: ignore[no-redef]

    def get_value(*, key: str, ti_key: Any) -> Any:
        return store.get((ti_key.run_id, ti_key.task_id, ti_key.map_index, key))

    monkeypatch.setattr(XCom, "get_value", staticmethod(get_value))
    return store


def test_get_link_reads_the_stored_url(xcom_store: dict[tuple[Any, ...], Any]) -> None:
    ti_key = SimpleNamespace(dag_id="d", task_id="t", run_id="r", map_index=-1, try_number=1)
    link = ClovaStudioTuningConsoleLink()
    assert link.get_link(None, ti_key=ti_key) == ""
    xcom_store[("r", "t", -1, link.key)] = "https://clovastudio.ncloud.com/tuning/task/abc12345"
    assert link.get_link(None, ti_key=ti_key) == "https://clovastudio.ncloud.com/tuning/task/abc12345"


def test_the_tuning_operator_offers_the_link() -> None:
    assert any(
        isinstance(link, ClovaStudioTuningConsoleLink) for link in ClovaStudioTuningOperator.operator_extra_links
    )


def test_a_try_that_failed_before_submit_answers_without_reading_a_missing_xcom(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Airflow 3's task runner asks every extra link at the end of a try, in the worker: a tuning
    task that failed before submit must not make it read (and log "XCom not found" for) a key
    that was never written."""
    from airflow_provider_clova.client.errors import ClovaStudioConfigError

    if AIRFLOW_V_3:
        from airflow.sdk.execution_time.xcom import XCom
    else:
        from airflow.models.xcom import XCom  # type: ignore[no-redef]

    reads: list[str] = []
    monkeypatch.setattr(XCom, "get_value", staticmethod(lambda *, key, ti_key: reads.append(key)))
    op = ClovaStudioTuningOperator(task_id="tune", model="HCX-005", dataset_bucket="b", dataset_key="k")
    op.dataset_key = ""  # fails at execute start, before anything is submitted
    with pytest.raises(ClovaStudioConfigError):
        op.execute(make_context(FakeTI()))
    ti_key = SimpleNamespace(dag_id="d", task_id="tune", run_id="r", map_index=-1, try_number=1)
    assert ClovaStudioTuningConsoleLink().get_link(op, ti_key=ti_key) == ""
    assert reads == []


def test_after_submit_the_link_comes_from_the_operator_that_recorded_it() -> None:
    op = ClovaStudioTuningOperator(task_id="tune", model="HCX-005", dataset_bucket="b", dataset_key="k")
    ti = FakeTI()
    ClovaStudioTuningConsoleLink.persist(make_context(ti), "https://x/task/abc", op)
    assert ClovaStudioTuningConsoleLink().get_link(op, ti_key=None) == "https://x/task/abc"
    assert ti.pushes == [(ClovaStudioTuningConsoleLink.key, "https://x/task/abc")]
