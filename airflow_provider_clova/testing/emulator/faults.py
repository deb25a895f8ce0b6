"""Fault injection: what a flaky CLOVA Studio does to a client, on demand and replayably.

A fault spec (``--faults FILE`` or ``POST /_emulator/faults``) names routes and, per route,
a scripted ``sequence`` (one entry per request, ``null`` = no fault) and/or a ``probability``
with a list of ``faults`` to pick from. Every route draws from its own RNG seeded from
``seed`` and the route name, so a run replays exactly whatever the interleaving of routes.

Each fault fires ``before`` the action (nothing happened: no task made, no budget spent) or
``after`` it (the action happened, then the answer is lost or replaced: the case a client
must reconcile, e.g. a create whose reply is a 504 or a dropped connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from airflow_provider_clova.testing.emulator.config import EmulatorConfigError
from airflow_provider_clova.testing.emulator.envelope import ApiError, error_response

#: Route names, fixed and documented (docs/readme-emulator.md).
ROUTES = (
    "tuning.create",
    "tuning.get",
    "tuning.list",
    "tuning.delete",
    "chat.v1",
    "chat.v3",
    "chat.tuned",
    "tokenize",
    "embedding",
    "openai.chat",
    "openai.embeddings",
    "openai.models",
    "tuning.run",
)
HTTP_KINDS = ("500", "503", "504", "429", "drop", "slow", "malformed")
#: training-run faults, drawn once per task when it is created (route ``tuning.run``)
RUN_KINDS = ("resource.timeout", "train.unknown", "clops.error")

Phase = Literal["before", "after"]

#: key in the ASGI scope where the app finds a way to close the client's socket
ABORT_SCOPE_KEY = "clova_emulator.abort"


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour."""

    kind: str
    when: Phase = "before"
    seconds: float = 0.0  # ``slow`` only: wall-clock delay, not scaled by --time-scale
    shape: Literal["clova", "gateway"] = "clova"  # error body: CLOVA envelope or legacy gateway

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "when": self.when}
        if self.kind == "slow":
            out["seconds"] = self.seconds
        if self.shape != "clova":
            out["shape"] = self.shape
        return out


@dataclass
class _Rule:
    sequence: list[Fault | None]
    repeat: bool
    probability: float
    faults: list[Fault]
    rng: random.Random
    cursor: int = 0


def _parse_fault(raw: object, route: str, where: str) -> Fault | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"kind": raw}
    if not isinstance(raw, Mapping):
        raise EmulatorConfigError(f"{where}: a fault is an object like {{'kind': '504', 'when': 'after'}}")
    kind = str(raw.get("kind", ""))
    allowed = RUN_KINDS if route == "tuning.run" else HTTP_KINDS
    if kind not in allowed:
        raise EmulatorConfigError(f"{where}: kind must be one of {', '.join(allowed)}; got {kind!r}")
    when = raw.get("when", "before")
    if when not in ("before", "after"):
        raise EmulatorConfigError(f"{where}: when must be 'before' or 'after'")
    seconds = raw.get("seconds", 0.0)
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        raise EmulatorConfigError(f"{where}: seconds must be a number >= 0")
    if kind == "slow" and seconds == 0:
        raise EmulatorConfigError(f"{where}: a 'slow' fault needs seconds > 0")
    shape = raw.get("shape", "clova")
    if shape not in ("clova", "gateway"):
        raise EmulatorConfigError(f"{where}: shape must be 'clova' or 'gateway'")
    return Fault(kind=kind, when=when, seconds=float(seconds), shape=shape)


def parse_spec(spec: Mapping[str, Any]) -> tuple[int | None, dict[str, dict[str, Any]]]:
    """Validate a fault spec; returns (seed or None, routes). Raises EmulatorConfigError."""
    if not isinstance(spec, Mapping):
        raise EmulatorConfigError("faults: expected an object with 'routes'")
    seed = spec.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise EmulatorConfigError("faults.seed must be an integer")
    routes = spec.get("routes", {})
    if not isinstance(routes, Mapping):
        raise EmulatorConfigError("faults.routes must be an object keyed by route name")
    unknown = sorted(set(spec) - {"seed", "routes"})
    if unknown:
        raise EmulatorConfigError(f"faults: unknown field(s) {', '.join(unknown)}")
    parsed: dict[str, dict[str, Any]] = {}
    for route, rule in routes.items():
        where = f"faults.routes[{route!r}]"
        if route not in ROUTES:
            raise EmulatorConfigError(f"{where}: unknown route; routes are {', '.join(ROUTES)}")
        if not isinstance(rule, Mapping):
            raise EmulatorConfigError(f"{where}: expected an object with 'sequence' and/or 'probability'")
        sequence = rule.get("sequence", [])
        if not isinstance(sequence, list):
            raise EmulatorConfigError(f"{where}.sequence must be a list")
        probability = rule.get("probability", 0.0)
        if not isinstance(probability, (int, float)) or not 0.0 <= probability <= 1.0:
            raise EmulatorConfigError(f"{where}.probability must be between 0 and 1")
        faults = rule.get("faults", [])
        if not isinstance(faults, list) or (probability > 0 and not faults):
            raise EmulatorConfigError(f"{where}.faults must list the faults to pick from")
        parsed[route] = {
            "sequence": [_parse_fault(f, route, f"{where}.sequence[{i}]") for i, f in enumerate(sequence)],
            "repeat": bool(rule.get("repeat", False)),
            "probability": float(probability),
            "faults": [_parse_fault(f, route, f"{where}.faults[{i}]") for i, f in enumerate(faults)],
        }
        if any(f is None for f in parsed[route]["faults"]):
            raise EmulatorConfigError(f"{where}.faults: entries cannot be null")
    return seed, parsed


class FaultInjector:
    """Decides, per request, whether and how to misbehave. Thread-safe; replayable by seed."""

    def __init__(self, spec: Mapping[str, Any] | None = None, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._default_seed = seed
        self._spec: Mapping[str, Any] = {}
        self._seed = seed
        self._rules: dict[str, _Rule] = {}
        self._injected: list[dict[str, Any]] = []
        self.configure(spec or {})

    def configure(self, spec: Mapping[str, Any]) -> None:
        """Replace the faults in force (validated first) and start their sequences afresh."""
        seed, routes = parse_spec(spec)
        with self._lock:
            self._spec = dict(spec)
            self._seed = self._default_seed if seed is None else seed
            self._rules = {
                route: _Rule(
                    sequence=rule["sequence"],
                    repeat=rule["repeat"],
                    probability=rule["probability"],
                    faults=rule["faults"],
                    rng=random.Random(f"{self._seed}:{route}"),
                )
                for route, rule in routes.items()
            }
            self._injected.clear()

    def clear(self) -> None:
        self.configure({})

    def rewind(self) -> None:
        """Start every sequence and RNG again from the seed (same spec)."""
        self.configure(self._spec)

    def draw(self, route: str) -> Fault | None:
        """The fault for this request on ``route`` (advances that route's sequence/RNG)."""
        with self._lock:
            rule = self._rules.get(route)
            if rule is None:
                return None
            fault: Fault | None = None
            if rule.cursor < len(rule.sequence) or (rule.repeat and rule.sequence):
                fault = rule.sequence[rule.cursor % len(rule.sequence)]
                rule.cursor += 1
            elif rule.probability > 0 and rule.rng.random() < rule.probability:
                fault = rule.rng.choice(rule.faults)
            if fault is not None:
                self._injected.append({"route": route, **fault.describe()})
            return fault

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {"seed": self._seed, "spec": dict(self._spec), "injected": list(self._injected)}


_STATUS_BODIES: dict[str, tuple[int, ApiError]] = {
    "500": (500, ApiError(500, "50000", "Internal server error")),
    "503": (503, ApiError(503, "50300", "Service unavailable")),
    "504": (504, ApiError(504, "50400", "Gateway timeout")),
    "429": (429, ApiError(429, "42902", "Too many requests - server overloaded")),
}
_GATEWAY_BODIES: dict[str, ApiError] = {
    "500": ApiError(500, "500", "Endpoint Error", legacy=True),
    "503": ApiError(503, "500", "Endpoint Error", legacy=True),
    "504": ApiError(504, "510", "Endpoint Timeout", legacy=True),
    "429": ApiError(429, "420", "Rate Limited", legacy=True),
}


def fault_response(fault: Fault) -> Response | None:
    """The answer that replaces the real one, or None for ``slow`` (answer normally, late)."""
    if fault.kind in _STATUS_BODIES:
        error = _GATEWAY_BODIES[fault.kind] if fault.shape == "gateway" else _STATUS_BODIES[fault.kind][1]
        return error_response(error)
    if fault.kind == "malformed":
        # 2xx with a body that is not JSON, as a broken proxy would send.
        return Response(b"<html><body>upstream hiccup</body></html>", 200, media_type="application/json")
    if fault.kind == "drop":
        return DroppedConnection()
    return None


class DroppedConnection(Response):
    """Close the client's socket without sending a single byte of the answer.

    Under uvicorn the app closes the connection's transport (reached through the ASGI scope, see
    ``app.TransportAccess``) and waits for uvicorn to notice, so uvicorn sends nothing either; an
    httpx client then sees ``RemoteProtocolError: Server disconnected without sending a
    response``. Under a server without that hook it starts a response, sends part of the body
    and fails, which a client also sees as a transport error, never as a clean 500.
    """

    def __init__(self) -> None:
        super().__init__(content=b"", status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        abort = scope.get(ABORT_SCOPE_KEY)
        if abort is not None and abort():

            async def disconnected() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass

            # so uvicorn has marked the connection closed before this app returns
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(disconnected(), 2.0)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps({"status": {}}).encode()[:5], "more_body": True})
        raise ConnectionAbortedError("emulated dropped connection")
