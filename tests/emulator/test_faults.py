"""Rule 5: injected faults, before or after the action, scripted or random but replayable."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.emulator.conftest import Api, create_body

pytestmark = pytest.mark.integration

CHAT = {"messages": [{"role": "user", "content": "hello"}]}


def set_faults(api: Api, spec: dict[str, Any]) -> httpx.Response:
    return api.http.post("/_emulator/faults", json=spec)


def create(api: Api) -> httpx.Response:
    return api.post("/tuning/v2/tasks", create_body("bucket", "data.jsonl"))


def tasks_made(api: Api) -> int:
    assert api.get("/tuning/v2/tasks").json()["result"]["totalElements"] == len(api.stats()["tuning_tasks_created"])
    return len(api.stats()["tuning_tasks_created"])


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [("500", 500, "50000"), ("503", 503, "50300"), ("504", 504, "50400"), ("429", 429, "42902")],
)
@pytest.mark.parametrize("when", ["before", "after"])
def test_status_faults_on_create(api: Api, kind: str, status: int, code: str, when: str) -> None:
    set_faults(api, {"routes": {"tuning.create": {"sequence": [{"kind": kind, "when": when}]}}})
    response = create(api)
    assert response.status_code == status
    assert response.json() == {"status": {"code": code, "message": response.json()["status"]["message"]}}
    # before: nothing happened; after: the task exists although the client saw an error
    assert tasks_made(api) == (1 if when == "after" else 0)
    assert create(api).status_code == 200  # the sequence is used up
    assert api.stats()["requests"]["tuning.create"] == {str(status): 1, "200": 1}


@pytest.mark.parametrize("when", ["before", "after"])
def test_dropped_connection_is_a_transport_error(api: Api, when: str) -> None:
    set_faults(api, {"routes": {"tuning.create": {"sequence": [{"kind": "drop", "when": when}]}}})
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        create(api)
    assert tasks_made(api) == (1 if when == "after" else 0)
    assert api.stats()["requests"]["tuning.create"] == {"dropped": 1}
    assert create(api).status_code == 200  # the server is fine afterwards


@pytest.mark.parametrize("when", ["before", "after"])
def test_malformed_body(api: Api, when: str) -> None:
    set_faults(api, {"routes": {"chat.v3": {"sequence": [{"kind": "malformed", "when": when}]}}})
    response = api.post("/v3/chat-completions/HCX-005", CHAT)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)
    windows = api.stats()["windows"]
    assert sum(w["served"] for w in windows) == (1 if when == "after" else 0)  # budget spent only after


@pytest.mark.parametrize("when", ["before", "after"])
def test_slow_answer(api: Api, when: str) -> None:
    set_faults(api, {"routes": {"tuning.list": {"sequence": [{"kind": "slow", "seconds": 0.3, "when": when}]}}})
    started = time.monotonic()
    response = api.get("/tuning/v2/tasks")
    assert response.status_code == 200 and time.monotonic() - started >= 0.3
    with pytest.raises(httpx.ReadTimeout):
        set_faults(api, {"routes": {"tuning.list": {"sequence": [{"kind": "slow", "seconds": 1, "when": when}]}}})
        api.http.get("/tuning/v2/tasks", headers={"Authorization": "Bearer KEY"}, timeout=0.2)


def test_gateway_shape(api: Api) -> None:
    set_faults(
        api,
        {
            "routes": {
                "chat.v1": {"sequence": [{"kind": "503", "shape": "gateway"}, {"kind": "504", "shape": "gateway"}]}
            }
        },
    )
    first = api.post("/v1/chat-completions/HCX-003", CHAT)
    assert (first.status_code, first.json()) == (503, {"error": {"errorCode": "500", "message": "Endpoint Error"}})
    second = api.post("/v1/chat-completions/HCX-003", CHAT)
    assert (second.status_code, second.json()["error"]["errorCode"]) == (504, "510")


@pytest.mark.parametrize("route", ["tuning.get", "tuning.delete", "chat.tuned", "tokenize", "chat.v1"])
def test_every_route_name_injects(api: Api, route: str) -> None:
    set_faults(api, {"routes": {route: {"sequence": ["500"]}}})
    calls = {
        "tuning.get": lambda: api.get("/tuning/v2/tasks/abcdefgh"),
        "tuning.delete": lambda: api.delete("/tuning/v2/tasks/abcdefgh"),
        "chat.tuned": lambda: api.post("/v2/tasks/abcdefgh/chat-completions", CHAT),
        "tokenize": lambda: api.post("/v1/api-tools/chat-tokenize/HCX-003", CHAT),
        "chat.v1": lambda: api.post("/testapp/v1/chat-completions/HCX-003", CHAT),
    }
    assert calls[route]().status_code == 500
    assert calls[route]().status_code != 500
    assert api.stats()["faults"]["injected"] == [{"route": route, "kind": "500", "when": "before"}]


def test_repeat_sequence(api: Api) -> None:
    set_faults(api, {"routes": {"tuning.list": {"sequence": ["500", None], "repeat": True}}})
    codes = [api.get("/tuning/v2/tasks").status_code for _ in range(6)]
    assert codes == [500, 200] * 3


SPEC = {"seed": 11, "routes": {"tuning.get": {"probability": 0.5, "faults": ["500", "503"]}}}


def outcomes(api: Api, n: int = 30, interleave: bool = False) -> list[int]:
    seen = []
    for _ in range(n):
        seen.append(api.get("/tuning/v2/tasks/abcdefgh").status_code)
        if interleave:
            api.get("/tuning/v2/tasks")
    return seen


def test_seeded_probability_replays(api: Api, make_api: Callable[..., Api]) -> None:
    set_faults(api, SPEC)
    first = outcomes(api)
    assert set(first) == {404, 500, 503}  # 404: no such task, when no fault fires
    set_faults(api, SPEC)  # configuring again starts the sequence afresh
    assert outcomes(api) == first
    other_process = make_api(faults=SPEC)
    assert outcomes(other_process) == first
    # other routes' traffic does not shift this route's draws
    noisy = {"seed": 11, "routes": {**SPEC["routes"], "tuning.list": {"probability": 0.5, "faults": ["500"]}}}
    set_faults(api, noisy)
    assert outcomes(api, interleave=True) == first
    set_faults(api, {**SPEC, "seed": 12})
    assert outcomes(api) != first
    # --seed is used when the spec has none
    assert outcomes(make_api(faults={"routes": SPEC["routes"]}, seed=11)) == first


def test_reset_restores_the_startup_faults(make_api: Callable[..., Api]) -> None:
    api = make_api(faults={"routes": {"tuning.list": {"sequence": ["500"]}}})
    assert api.get("/tuning/v2/tasks").status_code == 500
    assert api.get("/tuning/v2/tasks").status_code == 200
    api.http.post("/_emulator/reset")
    assert api.get("/tuning/v2/tasks").status_code == 500
    api.http.delete("/_emulator/faults")
    assert api.get("/tuning/v2/tasks").status_code == 200


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"routes": {"tuning.nope": {"sequence": ["500"]}}}, "unknown route"),
        ({"routes": {"tuning.get": {"sequence": ["418"]}}}, "kind must be one of"),
        ({"routes": {"tuning.get": {"sequence": ["resource.timeout"]}}}, "kind must be one of"),
        ({"routes": {"tuning.run": {"sequence": ["500"]}}}, "resource.timeout"),
        ({"routes": {"tuning.get": {"sequence": [{"kind": "500", "when": "during"}]}}}, "when"),
        ({"routes": {"tuning.get": {"probability": 2, "faults": ["500"]}}}, "probability"),
        ({"routes": {"tuning.get": {"probability": 0.5}}}, "faults"),
        ({"routes": {"tuning.get": {"sequence": [{"kind": "slow"}]}}}, "seconds"),
        ({"seed": "x"}, "seed"),
        ({"rotues": {}}, "unknown field"),
    ],
)
def test_invalid_specs_are_refused(api: Api, spec: dict[str, Any], message: str) -> None:
    response = set_faults(api, spec)
    assert response.status_code == 400 and message in response.json()["error"]


def test_control_endpoints_need_no_auth_and_see_no_faults(api: Api) -> None:
    set_faults(api, {"routes": {"tuning.list": {"probability": 1.0, "faults": ["drop"]}}})
    assert api.http.get("/_emulator/faults").json()["spec"]["routes"]["tuning.list"]["probability"] == 1.0
    assert api.http.get("/_emulator/stats").status_code == 200
    assert api.http.delete("/_emulator/faults").json()["spec"] == {}
