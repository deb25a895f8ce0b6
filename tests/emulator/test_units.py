"""Pieces tested without a server: lifecycle arithmetic, dates, tokenizer cut, config and flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_clova.testing.emulator.cli import build_parser, config_from_args
from airflow_provider_clova.testing.emulator.clock import default_task_name, iso_kst
from airflow_provider_clova.testing.emulator.config import (
    Account,
    EmulatorConfig,
    EmulatorConfigError,
    Timings,
    parse_accounts,
)
from airflow_provider_clova.testing.emulator.storage import DatasetOutcome, DatasetRef
from airflow_provider_clova.testing.emulator.tokenizer import count_text, truncate
from airflow_provider_clova.testing.emulator.tuning import Lifecycle, TuningTask

SEED_EPOCH = 1692590826  # 2023-08-21T13:07:06+0900, the API guide's createdDate


def test_dates_as_the_service_writes_them() -> None:
    assert iso_kst(SEED_EPOCH) == "2023-08-21T13:07:06+0900"
    assert default_task_name(SEED_EPOCH - 2) == "230821-130704"


def make_task(run_fault: str | None = None, rows: int = 100, epochs: int = 2, **outcome: object) -> TuningTask:
    return TuningTask(
        id="czf9fbky",
        name="t",
        model="HCX-003",
        account="default",
        task_type="GENERATION",
        train_epochs=epochs,
        learning_rate=1e-4,
        created_at=SEED_EPOCH,
        dataset=DatasetRef("b", "k.jsonl", "a", "s"),
        run_fault=run_fault,
        outcome=DatasetOutcome(rows=rows, num_tokens=500, **outcome),  # type: ignore[arg-type]
    )


LIFE = Lifecycle(Timings(wait_seconds=30, step_seconds=2, batch_size=8), scale=1.0)


def test_lifecycle_by_the_clock() -> None:
    task = make_task()  # 100 rows -> 13 steps per epoch, 26 steps, 52 s of training after 30 s of WAIT
    status, info, changed = LIFE.status(task, SEED_EPOCH + 29.9)
    assert status == "WAIT" and set(info.values()) == {None} and changed == SEED_EPOCH
    status, info, changed = LIFE.status(task, SEED_EPOCH + 30 + 2 * 14 + 1)  # 14 steps done
    assert status == "RUNNING"
    assert (info["currStep"], info["totalTrainSteps"], info["currEpoch"], info["totalTrainEpochs"]) == (14, 26, 2, 2)
    assert info["estimatedTime"] == 52 - 29 and changed == SEED_EPOCH + 58
    assert (info["dataRows"], info["numOfTokens"]) == (100, 500)
    status, info, changed = LIFE.status(task, SEED_EPOCH + 10_000)
    assert status == "SUCCEEDED" and changed == SEED_EPOCH + 82
    assert info["endDatetime"] == iso_kst(SEED_EPOCH + 82)
    assert (info["currStep"], info["estimatedTime"], info["sendWeightSuccess"]) == (26, 0, True)
    losses = [LIFE.status(task, SEED_EPOCH + 30 + 2 * s)[1]["trainLoss"] for s in range(1, 27)]
    assert losses == sorted(losses, reverse=True) and len(set(losses)) == 26
    assert losses == [LIFE.status(make_task(), SEED_EPOCH + 30 + 2 * s)[1]["trainLoss"] for s in range(1, 27)]


def test_time_scale_shrinks_every_duration() -> None:
    fast = Lifecycle(Timings(wait_seconds=30, step_seconds=2, batch_size=8), scale=0.01)
    assert fast.status(make_task(), SEED_EPOCH + 0.29)[0] == "WAIT"
    assert fast.status(make_task(), SEED_EPOCH + 0.30 + 0.50)[0] == "RUNNING"
    assert fast.status(make_task(), SEED_EPOCH + 0.30 + 0.53)[0] == "SUCCEEDED"


def test_failures_by_the_clock() -> None:
    status, info, changed = LIFE.status(make_task("resource.timeout"), SEED_EPOCH + 31)
    assert (status, info["failureReason"], info["dataRows"], changed) == (
        "FAILED",
        "resource.timeout",
        None,
        SEED_EPOCH + 30,
    )
    assert LIFE.status(make_task("train.unknown"), SEED_EPOCH + 30 + 2 * 12)[0] == "RUNNING"
    status, info, _ = LIFE.status(make_task("train.unknown"), SEED_EPOCH + 30 + 2 * 13)
    assert (status, info["failureReason"], info["currStep"], info["sendWeightSuccess"]) == (
        "FAILED",
        "train.unknown",
        13,
        False,
    )
    bad = make_task(failure_reason="file.format", message="Invalid dataset: column order", rows=0)
    status, info, _ = LIFE.status(bad, SEED_EPOCH + 31)
    assert (status, info["failureReason"], info["message"]) == (
        "FAILED",
        "file.format",
        "Invalid dataset: column order",
    )


def test_truncate_counts_tokens() -> None:
    text = "Hello world, 12345 done."
    assert count_text(text) == 9  # Hell o worl d , 123 45 done .
    assert truncate(text, 3) == ("Hello worl", True)
    assert truncate(text, 9) == (text, False)
    assert truncate(text, 0) == ("", True)


def test_accounts_file_shape() -> None:
    (account,) = parse_accounts(
        {
            "accounts": [
                {
                    "name": "team-a",
                    "access_keys": [{"access_key": "A1", "secret_key": "S1", "app_type": "service"}],
                    "api_keys": [{"key": "nv-1", "app_type": "service"}, {"key": "nv-2"}],
                    "legacy_keys": [{"clovastudio_api_key": "C", "apigw_api_key": "G"}],
                }
            ]
        }
    )
    assert account == Account(
        name="team-a",
        access_keys={"A1": ("S1", "service")},
        api_keys={"nv-1": "service", "nv-2": "test"},
        legacy_keys={("C", "G"): "test"},
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"accounts": [{"name": ""}]}, "name"),
        ({"accounts": [{"name": "x", "api_keys": [{"key": "k", "app_type": "prod"}]}]}, "app_type"),
        ({"accounts": "x"}, "expected"),
    ],
)
def test_bad_accounts_file(raw: object, message: str) -> None:
    with pytest.raises(EmulatorConfigError, match=message):
        parse_accounts(raw)


def test_config_checks() -> None:
    with pytest.raises(EmulatorConfigError, match="also belongs"):
        EmulatorConfig(accounts=(Account("a", api_keys={"K": "test"}), Account("b", api_keys={"K": "test"})))
    with pytest.raises(EmulatorConfigError, match="time-scale"):
        EmulatorConfig(time_scale=0)
    with pytest.raises(EmulatorConfigError, match="qpm"):
        EmulatorConfig(limits={"HCX-005": {"qpm": 0}})
    with pytest.raises(EmulatorConfigError, match="unknown field"):
        EmulatorConfig(limits={"HCX-005": {"rpm": 3}})


def test_flags(tmp_path: Path) -> None:
    limits = tmp_path / "limits.json"
    limits.write_text(json.dumps({"HCX-005": {"qpm": 120, "tpm": 90000}}))
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps({"accounts": [{"name": "b", "api_keys": [{"key": "K2"}]}]}))
    args = build_parser().parse_args(
        ["--limits", str(limits), "--accounts", str(accounts), "--time-scale", "0.5", "--api-key-app-type", "service"]
    )
    config = config_from_args(args)
    assert config.limits == {"HCX-005": {"qpm": 120, "tpm": 90000}}
    assert [a.name for a in config.accounts] == ["default", "b"]
    assert config.accounts[0].api_keys == {"KEY": "service"}
    assert config.time_scale == 0.5 and config.rate_window_seconds == 60
    inline = config_from_args(build_parser().parse_args(["--limits", '{"HCX-003": {"tpm": 5}}']))
    assert inline.limits == {"HCX-003": {"tpm": 5}}


async def test_dropped_connection_fallback_without_uvicorn() -> None:
    """Under a server that gives no way to close the socket, the answer is cut short instead."""
    from airflow_provider_clova.testing.emulator.faults import DroppedConnection

    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    with pytest.raises(ConnectionAbortedError):
        await DroppedConnection()({"type": "http"}, receive, send)  # type: ignore[arg-type]
    start, body = sent
    assert start["type"] == "http.response.start" and body["more_body"] is True
    assert len(body["body"]) < int(dict(start["headers"])[b"content-length"])  # type: ignore[arg-type, call-overload]
