"""ClovaStudioTuningOperator: submit once, reattach on retry, reconcile, fail clearly, leak nothing."""

from __future__ import annotations

import io
import json
import logging
import time
from importlib import resources
from typing import Any

import pytest

from airflow_provider_clova.client.errors import (
    ClovaStudioBadRequestError,
    ClovaStudioConfigError,
    ClovaStudioDatasetError,
    ClovaStudioError,
    ClovaStudioServerError,
    ClovaStudioTuningFailedError,
    ClovaStudioUnknownOutcomeError,
    ClovaStudioWaitTimeoutError,
)
from airflow_provider_clova.links.console import DEFAULT_CONSOLE_URL, ClovaStudioTuningConsoleLink
from airflow_provider_clova.operators import _object_storage
from airflow_provider_clova.operators.tuning import (
    TUNING_TASK_ID_XCOM_KEY,
    ClovaStudioTuningOperator,
    tuning_task_name,
)
from airflow_provider_clova.testing.samples import failed_json, succeeded_json, task_json
from airflow_provider_clova.triggers.tuning import ClovaStudioTuningTrigger
from tests.unit.tuning.conftest import (
    CLOVA_CONN_ID,
    OBJ_ACCESS_KEY,
    OBJ_CONN_ID,
    OBJ_SECRET_KEY,
    SECRETS,
    Clock,
    FakeService,
    FakeTI,
    TaskDeferred,
    make_context,
    succeed_after,
)

pytestmark = pytest.mark.usefixtures("connections")

#: the real one, before the autouse ``versions`` fixture replaces it
REAL_OBJECT_VERSION = _object_storage.object_version

SAMPLE = (resources.files("airflow_provider_clova.datasets") / "samples" / "tuning_sample.jsonl").read_bytes()
BAD_DATASET = b'{"C_ID": 0, "System_Prompt": "", "T_ID": 0, "Text": "hi", "Completion": "hello"}\n'


def unknown(message: str = "Gateway timeout") -> ClovaStudioUnknownOutcomeError:
    return ClovaStudioUnknownOutcomeError(
        message, http_status=504, code="50400", method="POST", path="/tuning/v2/tasks"
    )


@pytest.fixture
def dataset(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The object in Object Storage, as open_object would stream it (no network)."""
    state: dict[str, Any] = {"body": SAMPLE, "opened": []}

    def open_object(conn_id: str, bucket: str, key: str) -> tuple[Any, int | None]:
        state["opened"].append((conn_id, bucket, key))
        if state["body"] is None:
            raise ClovaStudioDatasetError(f"file.noexist: cannot read dataset s3://{bucket}/{key} (NoSuchKey)")
        return io.BytesIO(state["body"]), len(state["body"])

    monkeypatch.setattr(_object_storage, "open_object", open_object)
    return state


@pytest.fixture(autouse=True)
def versions(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, str], str | None]:
    """ETags of the dataset objects, as object_version would read them (no network)."""
    state: dict[tuple[str, str], str | None] = {}
    monkeypatch.setattr(
        _object_storage, "object_version", lambda conn_id, bucket, key: state.get((bucket, key), '"etag-1"')
    )
    return state


@pytest.fixture(autouse=True)
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The in-worker wait on a virtual clock: its (default) ``time.sleep`` records the pause
    and moves its (default) ``time.monotonic`` instead of sleeping."""
    clock = Clock()
    recorded: list[float] = []

    def sleep(seconds: float) -> None:
        recorded.append(seconds)
        clock.now += seconds

    monkeypatch.setattr(time, "sleep", sleep)
    monkeypatch.setattr(time, "monotonic", clock)
    return recorded


def operator(service: FakeService, **kwargs: Any) -> ClovaStudioTuningOperator:
    kwargs.setdefault("task_id", "tune")
    kwargs.setdefault("deferrable", False)
    kwargs.setdefault("poll_interval", 30.0)
    op = ClovaStudioTuningOperator(
        model=kwargs.pop("model", "HCX-003"),
        dataset_bucket="clova-datasets",
        dataset_key="datasets/support/train.jsonl",
        object_storage_conn_id=OBJ_CONN_ID,
        clova_conn_id=CLOVA_CONN_ID,
        train_epochs=4,
        learning_rate=1e-4,
        **kwargs,
    )
    op._hook = service  # type: ignore[assignment]
    return op


def context_for(service: FakeService, **ti: Any) -> Any:
    return make_context(FakeTI(journal=service.calls, **ti))


def name_for(ti: FakeTI | None = None, op: ClovaStudioTuningOperator | None = None) -> str:
    """The name the (default) operator derives for ``ti``: task instance plus inputs."""
    op = op or operator(FakeService())
    return op._name(make_context(ti or FakeTI()))


# -- the deterministic name -----------------------------------------------------------------


def test_name_is_stable_across_tries_and_distinct_per_map_index_and_run(service: FakeService) -> None:
    op = operator(service)
    first = op._name(make_context(FakeTI(try_number=1)))
    assert first == op._name(make_context(FakeTI(try_number=2)))
    assert first == op._name(make_context(FakeTI(try_number=7)))
    names = {
        first,
        op._name(make_context(FakeTI(map_index=0))),
        op._name(make_context(FakeTI(map_index=1))),
        op._name(make_context(FakeTI(map_index=2))),
        op._name(make_context(FakeTI(run_id="scheduled__2026-01-02T00:00:00+00:00"))),
        op._name(make_context(FakeTI(task_id="tune_other"))),
        op._name(make_context(FakeTI(dag_id="other_dag"))),
    }
    assert len(names) == 7
    assert first.startswith("clova_dag.tune.")


def test_name_changes_with_the_inputs_so_a_cleared_task_trains_again(
    service: FakeService, versions: dict[tuple[str, str], str | None]
) -> None:
    op = operator(service)
    first = op._name(make_context(FakeTI(try_number=1)))
    assert op._name(make_context(FakeTI(try_number=2))) == first  # same inputs: a retry reattaches
    versions[(op.dataset_bucket, op.dataset_key)] = '"etag-2"'  # the dataset was fixed and re-uploaded
    fixed = op._name(make_context(FakeTI(try_number=3)))
    assert fixed != first
    op.train_epochs = 3  # a parameter changed
    assert op._name(make_context(FakeTI(try_number=4))) not in {first, fixed}


def test_name_stays_short_for_long_ids() -> None:
    a = tuning_task_name("d" * 300, "t" * 300, "r", 0)
    b = tuning_task_name("d" * 300, "t" * 300, "r", 1)
    assert len(a) <= 100 and len(b) <= 100 and a != b


def test_an_explicit_name_wins(service: FakeService, dataset: dict[str, Any]) -> None:
    op = operator(service, name="my-training", wait_for_completion=False)
    op.execute(context_for(service))
    assert service.created[0]["fields"]["name"] == "my-training"


# -- submit and reattach --------------------------------------------------------------------


def test_first_try_lists_by_name_then_creates_with_the_dataset(service: FakeService, dataset: dict[str, Any]) -> None:
    op = operator(service, wait_for_completion=False)
    result = op.execute(context_for(service))
    assert service.kinds()[:2] == ["list", "create"]
    assert service.calls[0] == ("list", name_for())
    created = service.created[0]
    assert created["model"] == "HCX-003"
    assert created["fields"] == {"name": name_for(), "trainEpochs": 4, "learningRate": 1e-4}
    ds = created["dataset"]
    assert (ds.bucket, ds.key, ds.access_key, ds.secret_key) == (
        "clova-datasets",
        "datasets/support/train.jsonl",
        OBJ_ACCESS_KEY,
        OBJ_SECRET_KEY,
    )
    assert result["task_id"] == created["id"] and result["status"] == "WAIT"
    assert dataset["opened"] == [(OBJ_CONN_ID, "clova-datasets", "datasets/support/train.jsonl")]


def test_a_retry_after_a_crash_reattaches_instead_of_creating(service: FakeService, dataset: dict[str, Any]) -> None:
    service.get_errors = [RuntimeError("worker lost")]  # the first try dies while waiting
    first = operator(service)
    with pytest.raises(ClovaStudioError):
        first.execute(context_for(service, try_number=1))
    assert service.kinds().count("create") == 1
    made = service.created[0]["id"]

    service.calls.clear()
    service.script = succeed_after("RUNNING")
    second = operator(service)
    ctx = context_for(service, try_number=2)
    result = second.execute(ctx)
    assert "create" not in service.kinds()
    assert result["task_id"] == made and result["status"] == "SUCCEEDED"
    assert ctx["ti"].xcoms[TUNING_TASK_ID_XCOM_KEY] == made
    assert dataset["opened"] == [(OBJ_CONN_ID, "clova-datasets", "datasets/support/train.jsonl")]  # validated once


def test_reattach_to_a_succeeded_task_returns_it_without_waiting(service: FakeService) -> None:
    service.add(succeeded_json("done0001", name=name_for()))
    result = operator(service).execute(context_for(service))
    assert result["task_id"] == "done0001"
    assert service.kinds() == ["list", "xcom", "xcom"]


def test_each_map_index_gets_its_own_task(service: FakeService, dataset: dict[str, Any]) -> None:
    for index in range(3):
        operator(service, wait_for_completion=False).execute(context_for(service, map_index=index))
    assert len({c["fields"]["name"] for c in service.created}) == 3
    # a retry of map index 1 finds its own task
    service.calls.clear()
    result = operator(service, wait_for_completion=False).execute(context_for(service, map_index=1, try_number=2))
    assert "create" not in service.kinds()
    assert result["task_id"] == service.created[1]["id"]


@pytest.mark.parametrize(
    ("policy", "reason", "resubmits"),
    [
        ("resource_timeout", "resource.timeout", True),
        ("resource_timeout", "file.format", False),
        ("resource_timeout", "train.unknown", False),
        ("transient", "resource.timeout", True),
        ("transient", "train.unknown", True),
        ("transient", "clops.error", True),
        ("transient", "file.format", False),
        ("always", "train.unknown", True),
        ("always", "file.format", True),
        ("never", "resource.timeout", False),
    ],
)
def test_reattach_to_a_failed_task_follows_the_resubmit_policy(
    service: FakeService, dataset: dict[str, Any], policy: str, reason: str, resubmits: bool
) -> None:
    service.add(failed_json("fail0001", reason, None, name=name_for()))
    service.script = succeed_after("WAIT")
    op = operator(service, resubmit_failed=policy)
    if resubmits:
        result = op.execute(context_for(service, try_number=2))
        assert service.kinds().count("create") == 1
        assert result["task_id"] == service.created[0]["id"] != "fail0001"
        assert result["status"] == "SUCCEEDED"
    else:
        with pytest.raises(ClovaStudioTuningFailedError) as info:
            op.execute(context_for(service, try_number=2))
        assert info.value.failure_reason == reason and info.value.task_id == "fail0001"
        assert "create" not in service.kinds()


def test_resubmissions_are_bounded_by_max_resubmits(service: FakeService, dataset: dict[str, Any]) -> None:
    for n in range(3):
        service.add(failed_json(f"fail000{n}", "resource.timeout", None, name=name_for()))
    with pytest.raises(ClovaStudioTuningFailedError, match=r"resource\.timeout"):
        operator(service, max_resubmits=2).execute(context_for(service))
    assert "create" not in service.kinds()


def test_a_wait_that_ends_failed_for_want_of_a_gpu_resubmits_once_and_succeeds(
    service: FakeService, dataset: dict[str, Any]
) -> None:
    service.scripts["tsk00001"] = [
        {"status": "WAIT"},
        failed_json("tsk00001", "resource.timeout", None),
    ]
    service.scripts["tsk00002"] = succeed_after("WAIT", "RUNNING")
    result = operator(service).execute(context_for(service))
    assert [c["id"] for c in service.created] == ["tsk00001", "tsk00002"]
    assert result["task_id"] == "tsk00002" and result["status"] == "SUCCEEDED"


# -- unknown outcome ------------------------------------------------------------------------


def test_unknown_outcome_is_reconciled_to_the_task_it_made(service: FakeService, dataset: dict[str, Any]) -> None:
    service.create_effects = [("after", unknown())]
    result = operator(service, wait_for_completion=False).execute(context_for(service))
    assert service.kinds()[:3] == ["list", "create", "list"]
    assert service.kinds().count("create") == 1
    assert len(service.tasks) == 1
    assert result["task_id"] == service.created[0]["id"]


def test_unknown_outcome_with_no_task_is_checked_before_submitting_again(
    service: FakeService, dataset: dict[str, Any]
) -> None:
    service.create_effects = [unknown()]
    result = operator(service, wait_for_completion=False).execute(context_for(service))
    assert service.kinds()[:4] == ["list", "create", "list", "create"]
    assert len(service.tasks) == 1 and result["task_id"] == service.created[0]["id"]


def test_unknown_outcome_reconciliation_ignores_tasks_that_already_existed(
    service: FakeService, dataset: dict[str, Any]
) -> None:
    """An old FAILED task of the same name is not mistaken for the one the lost reply made."""
    service.add(failed_json("fail0001", "resource.timeout", None, name=name_for()))
    service.create_effects = [("after", unknown())]
    result = operator(service, wait_for_completion=False).execute(context_for(service, try_number=2))
    assert result["task_id"] == service.created[0]["id"] != "fail0001"
    assert service.kinds().count("create") == 1


def test_unknown_outcome_gives_up_after_three_checked_attempts(service: FakeService, dataset: dict[str, Any]) -> None:
    service.create_effects = [unknown(), unknown(), unknown(), None]
    with pytest.raises(ClovaStudioUnknownOutcomeError):
        operator(service, wait_for_completion=False).execute(context_for(service))
    kinds = [k for k in service.kinds() if k != "xcom"]
    assert kinds == ["list", "create", "list", "create", "list", "create", "list"]
    assert service.tasks == {}


def test_a_definite_create_error_is_not_retried(service: FakeService, dataset: dict[str, Any]) -> None:
    service.create_effects = [ClovaStudioBadRequestError("trainEpochs out of range", http_status=400, code="40001")]
    with pytest.raises(ClovaStudioBadRequestError):
        operator(service).execute(context_for(service))
    assert service.kinds() == ["list", "create"]


# -- dataset validation ---------------------------------------------------------------------


def test_an_invalid_dataset_fails_before_any_create(service: FakeService, dataset: dict[str, Any]) -> None:
    dataset["body"] = BAD_DATASET
    with pytest.raises(ClovaStudioDatasetError) as info:
        operator(service).execute(context_for(service))
    assert "nothing was submitted" in str(info.value)
    assert "column order" in str(info.value) or "C_ID" in str(info.value)
    assert "create" not in service.kinds()


def test_a_missing_dataset_fails_before_any_create(service: FakeService, dataset: dict[str, Any]) -> None:
    dataset["body"] = None
    with pytest.raises(ClovaStudioDatasetError, match=r"file\.noexist"):
        operator(service).execute(context_for(service))
    assert "create" not in service.kinds()


@pytest.mark.parametrize("model", ["HCX-005", "HCX-DASH-002", "HCX-007"])
def test_an_untunable_model_fails_first_naming_the_tunable_ones(
    service: FakeService, dataset: dict[str, Any], model: str
) -> None:
    with pytest.raises(ClovaStudioConfigError) as info:
        operator(service, model=model).execute(context_for(service))
    assert f"ClovaStudioTuningOperator(tune): model {model!r} cannot be tuned; tunable models: HCX-003." in str(
        info.value
    )
    # Before the dataset is streamed and before tasks are listed: nothing read, nothing sent.
    assert service.calls == [] and dataset["opened"] == []


def test_a_connection_can_open_a_model_to_tuning(service: FakeService, dataset: dict[str, Any]) -> None:
    service.models = {"HCX-005": {"tunable": True}}
    operator(service, model="HCX-005", wait_for_completion=False).execute(context_for(service))
    assert service.kinds().count("create") == 1


def test_validation_can_be_turned_off(service: FakeService, dataset: dict[str, Any]) -> None:
    dataset["body"] = BAD_DATASET
    operator(service, validate_dataset=False, wait_for_completion=False).execute(context_for(service))
    assert dataset["opened"] == [] and service.kinds().count("create") == 1


# -- FAILED: reason, message and fix --------------------------------------------------------

SEED_FAILURES = [
    ("file.extension", "Unavailable file extension. Please check the file extension again.", ".jsonl"),
    ("file.size", "Exceeded the disk usage limit. Please check if the file size is 1 TB or less.", "smaller"),
    ("file.encoding", "Unsupported charset", "UTF-8"),
    ("file.format", "Invalid json format. Expecting value: line 3 column 1 (char 2)", "JSON object"),
    ("file.format", "Invalid dataset: required field empty. Completion", "Give Completion a non-empty value"),
    ("file.format", "Invalid dataset: unexpected column. Label", "Remove the column Label"),
    ("file.format", "Invalid dataset: duplicate columns. text", "Keep one column named text"),
    ("file.format", "Invalid dataset: column order", "System_Prompt, C_ID, T_ID, Text, Completion"),
    ("file.format", "Invalid dataset: C_ID", "C_ID 0, 1, 2"),
    ("file.format", "Invalid dataset: T_ID", "T_ID 0, 1, 2"),
    ("file.error", None, "readable"),
    ("file.noexist", None, "trainingDatasetFilePath"),
    ("resource.timeout", None, "GPU"),
    ("clops.error", None, "support"),
    ("train.unknown", None, "support"),
]


@pytest.mark.parametrize(("reason", "message", "fix"), SEED_FAILURES)
def test_failed_raises_naming_the_reason_the_message_and_the_fix(
    service: FakeService, reason: str, message: str | None, fix: str
) -> None:
    op = operator(service, resubmit_failed="never")
    event = {
        "status": "failed",
        "task_id": "fail0001",
        "message": "failed",
        "task": failed_json("fail0001", reason, message),
    }
    with pytest.raises(ClovaStudioTuningFailedError) as info:
        op.execute_complete(context_for(service), event)
    text = str(info.value)
    assert info.value.failure_reason == reason and info.value.task_id == "fail0001"
    assert f"failureReason={reason}" in text
    assert "fail0001" in text
    if message:
        assert message in text
    _, _, hint = text.partition("Fix: ")
    assert fix in hint, hint
    assert "create" not in service.kinds()


def test_each_file_format_message_gets_its_own_fix(service: FakeService) -> None:
    hints = set()
    for reason, message, _ in SEED_FAILURES:
        if reason != "file.format":
            continue
        event = {"status": "failed", "task_id": "f1", "message": "", "task": failed_json("f1", reason, message)}
        with pytest.raises(ClovaStudioTuningFailedError) as info:
            operator(service, resubmit_failed="never").execute_complete(context_for(service), event)
        hints.add(str(info.value).partition("Fix: ")[2])
    assert len(hints) == 6  # C_ID and T_ID share one fix


# -- waiting --------------------------------------------------------------------------------


def test_non_deferrable_wait_polls_until_success(
    service: FakeService, dataset: dict[str, Any], waits: list[float]
) -> None:
    service.script = succeed_after("WAIT", "WAIT", "RUNNING")
    result = operator(service, poll_interval=5.0).execute(context_for(service))
    assert result["status"] == "SUCCEEDED"
    assert service.kinds().count("get") == 4
    assert waits == [5.0, 5.0, 5.0]


def test_id_and_link_are_recorded_before_the_wait_starts(
    service: FakeService, dataset: dict[str, Any], waits: list[float]
) -> None:
    service.script = succeed_after("WAIT")
    service.console_url = "https://console.example/tuning/{task_id}?region=kr"
    ctx = context_for(service)
    operator(service).execute(ctx)
    kinds = service.kinds()
    first_get = kinds.index("get")
    assert kinds.index("xcom") < first_get
    assert ctx["ti"].xcoms[TUNING_TASK_ID_XCOM_KEY] == "tsk00001"
    assert ctx["ti"].xcoms[ClovaStudioTuningConsoleLink.key] == "https://console.example/tuning/tsk00001?region=kr"


def test_deferrable_records_id_and_link_then_defers_with_the_trigger(
    service: FakeService, dataset: dict[str, Any]
) -> None:
    import time

    ctx = context_for(service)
    op = operator(service, deferrable=True, poll_interval=12.0, max_poll_interval=300.0, timeout=3600)
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        op.execute(ctx)
    assert "get" not in service.kinds()
    assert ctx["ti"].xcoms[TUNING_TASK_ID_XCOM_KEY] == "tsk00001"
    assert ctx["ti"].xcoms[ClovaStudioTuningConsoleLink.key] == DEFAULT_CONSOLE_URL.format(task_id="tsk00001")
    deferred = info.value
    assert deferred.method_name == "execute_complete"
    trigger = deferred.trigger
    assert isinstance(trigger, ClovaStudioTuningTrigger)
    assert trigger.tuning_task_id == "tsk00001" and trigger.clova_conn_id == CLOVA_CONN_ID
    assert trigger.poll_interval == 12.0 and trigger.max_poll_interval == 300.0
    assert trigger.cancel_on_kill is True
    assert trigger.end_time is not None and before + 3600 <= trigger.end_time <= time.time() + 3600
    # resumed with the trigger's success event
    result = op.execute_complete(
        ctx, {"status": "success", "task_id": "tsk00001", "message": "", "task": succeeded_json("tsk00001")}
    )
    assert result["status"] == "SUCCEEDED"


def test_deferrable_without_timeout_waits_for_ever(service: FakeService, dataset: dict[str, Any]) -> None:
    with pytest.raises(TaskDeferred) as info:
        operator(service, deferrable=True).execute(context_for(service))
    assert info.value.trigger.end_time is None


def test_timeout_event_deletes_the_remote_task_and_raises_clearly(service: FakeService) -> None:
    service.add(task_json("tsk00009", "RUNNING"))
    event = {
        "status": "timeout",
        "task_id": "tsk00009",
        "message": "gave up waiting for tuning task tsk00009 (timeout reached)",
        "task": task_json("tsk00009", "RUNNING"),
    }
    with pytest.raises(ClovaStudioWaitTimeoutError) as info:
        operator(service).execute_complete(context_for(service), event)
    assert ("delete", "tsk00009") in service.calls
    text = str(info.value)
    assert "tsk00009" in text and "deleted" in text and "timeout" in text


def test_timeout_event_without_cancel_on_kill_keeps_the_task(service: FakeService) -> None:
    event = {"status": "timeout", "task_id": "tsk00009", "message": "gave up", "task": None}
    with pytest.raises(ClovaStudioWaitTimeoutError):
        operator(service, cancel_on_kill=False).execute_complete(context_for(service), event)
    assert "delete" not in service.kinds()


def test_a_failed_delete_on_timeout_still_reports_the_timeout(service: FakeService) -> None:
    service.delete_error = ClovaStudioServerError("Internal", http_status=500, code="50000")
    event = {"status": "timeout", "task_id": "tsk00009", "message": "gave up", "task": None}
    with pytest.raises(ClovaStudioWaitTimeoutError, match="console"):
        operator(service).execute_complete(context_for(service), event)


def test_non_deferrable_timeout_deletes_and_raises(
    service: FakeService, dataset: dict[str, Any], waits: list[float]
) -> None:
    service.script = [{"status": "WAIT"}]
    with pytest.raises(ClovaStudioWaitTimeoutError, match="deleted"):
        operator(service, timeout=100, poll_interval=30).execute(context_for(service))
    assert service.kinds()[-1] == "delete"
    assert sum(waits) == pytest.approx(100)


def test_error_event_raises_the_message(service: FakeService) -> None:
    event = {
        "status": "error",
        "task_id": "t1",
        "message": "polling tuning task t1 failed: CLOVA Studio 40400",
        "task": None,
    }
    with pytest.raises(ClovaStudioError, match="40400"):
        operator(service).execute_complete(context_for(service), event)


# -- on_kill --------------------------------------------------------------------------------


@pytest.mark.parametrize("cancel", [True, False])
def test_on_kill_deletes_only_when_cancel_on_kill(service: FakeService, dataset: dict[str, Any], cancel: bool) -> None:
    op = operator(service, deferrable=True, cancel_on_kill=cancel)
    with pytest.raises(TaskDeferred):
        op.execute(context_for(service))
    op.on_kill()
    assert (("delete", "tsk00001") in service.calls) is cancel


def test_on_kill_before_submit_does_nothing(service: FakeService) -> None:
    operator(service).on_kill()
    assert service.calls == []


# -- what the task leaves behind -------------------------------------------------------------


def test_success_attaches_the_model_to_every_outlet_asset_event(
    service: FakeService, dataset: dict[str, Any], waits: list[float]
) -> None:
    from airflow_provider_clova.assets import tuned_model_asset

    asset = tuned_model_asset("support")
    service.script = succeed_after("RUNNING")
    ctx = context_for(service)
    operator(service, outlets=[asset]).execute(ctx)
    extra = ctx["outlet_events"][asset].extra
    assert {key: extra[key] for key in ("task_id", "name", "model", "train_loss", "chat_completions_path")} == {
        "task_id": "tsk00001",
        "name": name_for(),
        "model": "HCX-003",
        "train_loss": 0.3125,
        "chat_completions_path": "/v1/tasks/tsk00001/chat-completions",
    }
    # and where it came from (the same facts OpenLineage gets)
    assert extra["dataset"].startswith("s3://") and extra["namespace"].startswith("clova-studio://")
    assert set(extra) >= {"epochs", "learning_rate", "num_tokens", "data_rows"}


def test_object_storage_secret_never_leaves_the_create_call(
    service: FakeService, dataset: dict[str, Any], caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """Airflow 3 logs through structlog (stdout), 2.11 through logging: both are searched."""
    caplog.set_level(logging.DEBUG)
    logging.getLogger("botocore").setLevel(logging.INFO)
    service.create_effects = [("after", unknown())]  # exercise the warning path too
    op = operator(service, deferrable=True)
    ctx = context_for(service)
    with pytest.raises(TaskDeferred) as info:
        op.execute(ctx)
    assert service.created[0]["dataset"].secret_key == OBJ_SECRET_KEY  # it was really used
    _, kwargs = info.value.trigger.serialize()
    rendered = {name: getattr(op, name) for name in op.template_fields}
    result = op.execute_complete(
        ctx, {"status": "success", "task_id": "tsk00001", "message": "", "task": succeeded_json("tsk00001")}
    )
    captured = capsys.readouterr()
    logs = caplog.text + captured.out + captured.err
    places = {
        "xcom": json.dumps(ctx["ti"].pushes, default=str),
        "trigger kwargs": json.dumps(kwargs),
        "template fields": json.dumps(rendered, default=str),
        "result": json.dumps(result),
        "logs": logs,
        "operator repr": repr(vars(op)),
        "dataset repr": repr(service.created[0]["dataset"]),
    }
    for where, text in places.items():
        for secret in SECRETS:
            assert secret not in text, f"a secret leaked into {where}"
    assert "object_storage_conn_id" in op.template_fields
    assert "outcome unknown" in logs  # the logs were captured


def test_the_object_storage_secret_is_registered_with_the_masker() -> None:
    try:
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # Airflow 2.11
        from airflow.utils.log.secrets_masker import redact  # type: ignore[no-redef]
    access, secret = _object_storage.credentials(OBJ_CONN_ID)
    assert (access, secret) == (OBJ_ACCESS_KEY, OBJ_SECRET_KEY)
    assert OBJ_SECRET_KEY not in str(redact(f"key={OBJ_SECRET_KEY}"))


def test_bad_arguments_fail_at_construction(service: FakeService) -> None:
    with pytest.raises(ValueError, match="resubmit_failed"):
        operator(service, resubmit_failed="sometimes")
    with pytest.raises(ValueError, match="poll_interval"):
        operator(service, poll_interval=0)
    with pytest.raises(ValueError, match="timeout"):
        operator(service, timeout=0)
    with pytest.raises(ValueError, match="max_resubmits"):
        operator(service, max_resubmits=-1)


# -- the dataset version cannot be read: fail before any create ----------------------------


class _FakeS3:
    def __init__(self, error: BaseException | None, etag: str = '"etag-9"') -> None:
        self.error, self.etag, self.heads = error, etag, 0

    def get_conn(self) -> _FakeS3:
        return self

    def get_credentials(self) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(access_key=OBJ_ACCESS_KEY, secret_key=OBJ_SECRET_KEY)

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        self.heads += 1
        if self.error is not None:
            raise self.error
        return {"ETag": self.etag}


def _client_error(status: int, code: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError(
        {"Error": {"Code": code, "Message": ""}, "ResponseMetadata": {"HTTPStatusCode": status}}, "HeadObject"
    )


@pytest.mark.parametrize("status", [500, 503])
def test_an_unreadable_dataset_version_fails_the_try_before_any_create(
    service: FakeService, dataset: dict[str, Any], monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    from airflow_provider_clova.client.errors import ClovaStudioStorageError

    monkeypatch.setattr(_object_storage, "object_version", REAL_OBJECT_VERSION)
    s3 = _FakeS3(_client_error(status, str(status)))
    monkeypatch.setattr(_object_storage, "s3_hook", lambda conn_id: s3)
    with pytest.raises(ClovaStudioStorageError, match=rf"HTTP {status}.*nothing was submitted\. Fix:"):
        operator(service).execute(context_for(service))
    assert service.kinds() == []  # not even listed: the name is not known
    # the next try reads the version and names the job as the first try would have
    s3.error = None
    op = operator(service, wait_for_completion=False)
    op.execute(context_for(service, try_number=2))
    assert service.kinds() == ["list", "create", "list", "xcom", "xcom"]


def test_an_unreachable_object_storage_is_a_typed_error(service: FakeService, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import EndpointConnectionError

    from airflow_provider_clova.client.errors import ClovaStudioStorageError

    monkeypatch.setattr(_object_storage, "object_version", REAL_OBJECT_VERSION)
    monkeypatch.setattr(
        _object_storage, "s3_hook", lambda conn_id: _FakeS3(EndpointConnectionError(endpoint_url="http://x"))
    )
    with pytest.raises(ClovaStudioStorageError, match="EndpointConnectionError"):
        operator(service).execute(context_for(service))
    assert "create" not in service.kinds()


def test_a_missing_object_has_no_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_object_storage, "s3_hook", lambda conn_id: _FakeS3(_client_error(404, "404")))
    assert REAL_OBJECT_VERSION(OBJ_CONN_ID, "b", "k") is None
    monkeypatch.setattr(_object_storage, "s3_hook", lambda conn_id: _FakeS3(None, '"abc"'))
    assert REAL_OBJECT_VERSION(OBJ_CONN_ID, "b", "k") == '"abc"'


# -- two tries of one task instance at once: one training -----------------------------------


def test_two_tries_that_both_created_converge_on_the_first_created(
    service: FakeService, dataset: dict[str, Any]
) -> None:
    first, second = operator(service), operator(service)
    name = name_for()
    made_first = first._create(name, set())
    made_second = second._create(name, set())  # both created before either looked
    kept_by_second = second._converge(name, made_second)
    kept_by_first = first._converge(name, made_first)
    assert kept_by_first.id == kept_by_second.id == made_first.id
    assert list(service.tasks) == [made_first.id]
    assert ("delete", made_first.id) not in service.calls


def test_a_try_that_overlaps_another_never_deletes_the_task_that_one_kept(
    service: FakeService, dataset: dict[str, Any]
) -> None:
    # Try 2 runs start to finish while try 1's create is in flight: try 2 lists (nothing yet),
    # creates, looks again and keeps its own. Try 1's create then lands (newer): it must give
    # way to the task try 2 already waits on.
    zombie = operator(service, wait_for_completion=False)
    other = operator(service, wait_for_completion=False)
    real_create = service.create_tuning_task
    results: dict[str, Any] = {}

    def create_racing(model: str, dataset: Any = None, **fields: Any) -> Any:
        if "other" not in results:
            service.create_tuning_task = real_create  # type: ignore[method-assign]
            results["other"] = other.execute(context_for(service, try_number=2))
        return real_create(model, dataset, **fields)

    service.create_tuning_task = create_racing  # type: ignore[method-assign]
    results["zombie"] = zombie.execute(context_for(service, try_number=1))
    kept = results["other"]["task_id"]
    assert results["zombie"]["task_id"] == kept
    assert list(service.tasks) == [kept]
    assert [c["id"] for c in service.created] == [kept, "tsk00002"]
    assert ("delete", kept) not in service.calls and ("delete", "tsk00002") in service.calls


def test_a_retry_finding_two_live_duplicates_keeps_the_first_and_deletes_the_other(service: FakeService) -> None:
    name = name_for()
    service.add(task_json("older001", "RUNNING", name=name, created="2023-08-21T13:00:00+0900"))
    service.add(task_json("newer002", "WAIT", name=name, created="2023-08-21T13:00:00+0900"))  # same second
    result = operator(service, wait_for_completion=False).execute(context_for(service, try_number=3))
    assert result["task_id"] == "older001"
    assert list(service.tasks) == ["older001"]
    assert "create" not in service.kinds()


# -- train.unknown: "create it again once" ------------------------------------------------------


@pytest.mark.parametrize("reason", ["train.unknown", "clops.error"])
def test_a_platform_failure_is_created_again_once_then_fails_with_the_hint(
    service: FakeService, dataset: dict[str, Any], reason: str
) -> None:
    name = name_for()
    service.scripts["tsk00001"] = [failed_json("tsk00001", reason, None, name=name)]
    service.scripts["tsk00002"] = [failed_json("tsk00002", reason, None, name=name)]
    with pytest.raises(ClovaStudioTuningFailedError, match="support") as info:
        operator(service).execute(context_for(service))
    assert info.value.task_id == "tsk00002" and [c["id"] for c in service.created] == ["tsk00001", "tsk00002"]
    # an Airflow retry re-raises at once: the service's hint allows one more try, and it was made
    with pytest.raises(ClovaStudioTuningFailedError, match="support"):
        operator(service).execute(context_for(service, try_number=2))
    assert len(service.created) == 2


def test_a_retry_after_one_train_unknown_creates_it_again(service: FakeService, dataset: dict[str, Any]) -> None:
    service.add(failed_json("fail0001", "train.unknown", None, name=name_for()))
    service.script = succeed_after("RUNNING")
    result = operator(service).execute(context_for(service, try_number=2))
    assert result["status"] == "SUCCEEDED" and len(service.created) == 1


@pytest.mark.parametrize("field", ["dataset_bucket", "dataset_key"])
def test_an_empty_dataset_location_fails_naming_the_field(service: FakeService, field: str) -> None:
    from airflow_provider_clova.client.errors import ClovaStudioConfigError

    with pytest.raises(ClovaStudioConfigError, match=rf"{field}='' is empty\. Fix:"):
        ClovaStudioTuningOperator(
            task_id="tune", model="HCX-005", **{"dataset_bucket": "b", "dataset_key": "k", field: ""}
        )
    op = operator(service)
    setattr(op, field, "   ")  # a template that rendered to blanks
    with pytest.raises(ClovaStudioConfigError, match=rf"{field}='   ' is empty"):
        op.execute(context_for(service))
    assert service.kinds() == []
