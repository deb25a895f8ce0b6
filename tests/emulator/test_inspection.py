"""Rule 6: what ``GET /_emulator/stats`` shows and what ``POST /_emulator/reset`` clears."""

from __future__ import annotations

import pytest

from tests.emulator.conftest import Api, create_body

pytestmark = pytest.mark.integration

CHAT = {"messages": [{"role": "user", "content": "hello"}]}


def test_stats_report_requests_tasks_and_windows(api: Api) -> None:
    names = []
    for name in ("first", "second", "third"):
        result = api.post("/tuning/v2/tasks", create_body("bucket", "d.jsonl", name=name)).json()["result"]
        names.append((result["id"], name))
    api.post("/tuning/v2/tasks", {"model": "nope"})
    api.post("/v3/chat-completions/HCX-005", CHAT)
    api.post("/v3/chat-completions/HCX-005", CHAT, {"Authorization": "Bearer wrong"})
    api.get("/no/such/path")
    stats = api.stats()
    assert stats["requests"] == {
        "chat.v3": {"200": 1, "401": 1},
        "tuning.create": {"200": 3, "400": 1},
        "unknown": {"404": 1},
    }
    assert stats["requests_total"] == 7
    assert [(t["id"], t["name"]) for t in stats["tuning_tasks_created"]] == names
    assert {t["account"] for t in stats["tuning_tasks_created"]} == {"default"}
    (window,) = stats["windows"]
    assert (window["account"], window["model"], window["app_type"]) == ("default", "HCX-005", "test")
    assert window["max_requests_in_window"] == 1 and window["budget"] == stats["budgets"]["HCX-005"]["test"]
    assert stats["rate_window_seconds"] == 60.0 and stats["time_scale"] == 0.001
    assert stats["limit_overrides"] == {}
    assert set(stats["faults"]) == {"seed", "spec", "injected"}


def test_reset_clears_everything(api: Api) -> None:
    task_id = api.post("/tuning/v2/tasks", create_body("bucket", "d.jsonl")).json()["result"]["id"]
    api.post("/v3/chat-completions/HCX-005", CHAT)
    assert api.http.post("/_emulator/reset").json() == {"reset": True}
    stats = api.stats()
    assert (stats["requests"], stats["tuning_tasks_created"], stats["windows"]) == ({}, [], [])
    assert api.get(f"/tuning/v2/tasks/{task_id}").status_code == 404


def test_stats_never_show_secrets(api: Api) -> None:
    api.post("/tuning/v2/tasks", create_body("bucket", "d.jsonl", trainingDatasetSecretKey="s3cr3t-value"))
    text = api.http.get("/_emulator/stats").text
    assert "s3cr3t-value" not in text and "KEY" not in text.replace("KEY2", "")


def test_unknown_method_is_an_error_envelope(api: Api) -> None:
    response = api.http.put("/tuning/v2/tasks")
    assert response.status_code == 405 and response.json()["status"]["code"] == "40500"
