"""The emulator's HTTP surface: routes, the per-request pipeline, and the control endpoints.

Every API request goes through one pipeline, in the order the service applies things::

    read body -> authenticate -> fault (before) -> action -> fault (after) -> count in stats

Authentication comes first so an unauthenticated call never consumes a scripted fault. The
action validates the request (400), checks the budget (429, not counted when refused) and
only then serves, so a refused request changes nothing. Control endpoints under
``/_emulator/`` need no auth and see no faults: they are for tests, not for clients.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from airflow_provider_clova.client.catalog import ModelInfo, known_models, model_info
from airflow_provider_clova.client.errors import ClovaStudioConfigError
from airflow_provider_clova.testing.emulator import chat
from airflow_provider_clova.testing.emulator.auth import Authenticator, Principal
from airflow_provider_clova.testing.emulator.config import AppType, EmulatorConfig, EmulatorConfigError
from airflow_provider_clova.testing.emulator.envelope import ApiError, error_response, json_response, ok
from airflow_provider_clova.testing.emulator.faults import (
    ABORT_SCOPE_KEY,
    DroppedConnection,
    Fault,
    FaultInjector,
    fault_response,
)
from airflow_provider_clova.testing.emulator.ratelimit import RateLimiter, core_budget_lookup
from airflow_provider_clova.testing.emulator.stats import Stats
from airflow_provider_clova.testing.emulator.storage import DatasetOutcome, load_dataset
from airflow_provider_clova.testing.emulator.tuning import (
    Lifecycle,
    TuningStore,
    TuningTask,
    parse_create,
    parse_page,
)

log = logging.getLogger("airflow_provider_clova.testing.emulator")

MAX_BODY_BYTES = 50 * 1024 * 1024  # the service's 413 limit


@dataclass(frozen=True)
class Call:
    """What an action needs from one authenticated request."""

    principal: Principal
    request: Request
    body: bytes

    def json(self) -> Any:
        content_type = self.request.headers.get("content-type", "application/json")
        if "json" not in content_type.lower():
            raise ApiError(415, "41500", "Unsupported media type: send Content-Type: application/json")
        try:
            return json.loads(self.body or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ApiError(400, "40000", "Invalid request: the body is not valid JSON") from None

    def param(self, name: str) -> str:
        return str(self.request.path_params[name])


Action = Callable[[Call], Awaitable[Response]]


def raw_target(scope: Scope) -> str:
    """The path and query exactly as the client sent them: what signature v2 signs."""
    raw = scope.get("raw_path") or str(scope.get("path", "")).encode("utf-8")
    query = scope.get("query_string") or b""
    target = raw.decode("utf-8", "surrogateescape")
    return f"{target}?{query.decode('utf-8', 'surrogateescape')}" if query else target


class Emulator:
    """One emulated CLOVA Studio: its accounts, tasks, budgets, faults and counters."""

    def __init__(self, config: EmulatorConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.auth = Authenticator(config.accounts, clock)
        self.limiter = RateLimiter(config.rate_window_seconds, core_budget_lookup(config.limits))
        self.faults = FaultInjector(config.faults, config.seed)
        self.stats = Stats()
        self.store = TuningStore(Lifecycle(config.timings, config.time_scale), self._load, clock, config.seed)

    def _load(self, task: TuningTask) -> DatasetOutcome:
        return load_dataset(
            self.config.object_storage_endpoint,
            self.config.object_storage_region,
            task.dataset,
            max_bytes=self.config.max_dataset_bytes,
            classification=task.task_type == "CLASSIFICATION",
        )

    def reset(self) -> None:
        """Forget tasks, counters and windows; faults go back to the startup spec, rewound."""
        self.store.reset()
        self.stats.reset()
        self.limiter.reset()
        self.faults.configure(self.config.faults or {})

    # -- the pipeline ------------------------------------------------------------------------

    async def handle(self, request: Request, route: str, action: Action, prefix: AppType | None) -> Response:
        declared = request.headers.get("content-length", "0")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return self._finish(request, route, None, error_response(ApiError(413, "41300", "Payload too large")))
        body = await request.body()
        try:
            principal = self.auth.authenticate(request.headers, request.method, raw_target(request.scope), prefix)
        except ApiError as exc:
            return self._finish(request, route, None, error_response(exc))
        fault = self.faults.draw(route)
        if fault is not None and fault.when == "before":
            early = await self._inject(fault)
            if early is not None:
                return self._finish(request, route, principal, early)
        try:
            response = await action(Call(principal, request, body))
        except ApiError as exc:
            response = error_response(exc)
        if fault is not None and fault.when == "after":
            late = await self._inject(fault)
            if late is not None:
                response = late
        return self._finish(request, route, principal, response)

    @staticmethod
    async def _inject(fault: Fault) -> Response | None:
        if fault.kind == "slow":
            await asyncio.sleep(fault.seconds)
            return None
        return fault_response(fault)

    def _finish(self, request: Request, route: str, who: Principal | None, response: Response) -> Response:
        outcome: int | str = "dropped" if isinstance(response, DroppedConnection) else response.status_code
        self.stats.record(route, outcome)
        # Paths, account names and the caller's request id only: never a key, a body or a signature.
        request_id = request.headers.get("x-ncp-clovastudio-request-id")
        log.info(
            "%s %s -> %s [%s, account=%s%s]",
            request.method,
            request.url.path,
            outcome,
            route,
            who.account if who else "-",
            f", request-id={request_id[:64]!r}" if request_id else "",
        )
        return response

    # -- tuning ------------------------------------------------------------------------------

    async def tuning_create(self, call: Call) -> Response:
        request = parse_create(call.json())
        run_fault = self.faults.draw("tuning.run")
        task = self.store.create(call.principal.account, request, run_fault.kind if run_fault else None)
        self.stats.task_created(task.id, task.name, task.account, task.model)
        return ok(await self.store.view(task))

    async def tuning_get(self, call: Call) -> Response:
        task = self.store.owned(call.principal.account, call.param("task_id"))
        return ok(await self.store.view(task))

    async def tuning_list(self, call: Call) -> Response:
        page, size = parse_page(call.request.query_params)
        return ok(await self.store.page(call.principal.account, page, size))

    async def tuning_delete(self, call: Call) -> Response:
        self.store.delete(call.principal.account, call.param("task_id"))
        return ok(with_result=False)

    # -- chat --------------------------------------------------------------------------------

    @staticmethod
    def _model(name: str, api: chat.Api) -> ModelInfo:
        try:
            info = model_info(name)
        except ClovaStudioConfigError:
            raise ApiError(
                400, "40080", f"Model not found: {name!r} (known models: {', '.join(known_models())})"
            ) from None
        if info.api != api:
            raise ApiError(
                400, "40080", f"Model not found: {name} is not served by the {api} API; use /{info.api}/ paths"
            )
        return info

    async def chat_base(self, call: Call, api: chat.Api) -> Response:
        info = self._model(call.param("model"), api)
        return await self._serve(call, api, info, target=info.name, answers=None)

    async def chat_tuned(self, call: Call, api: chat.Api) -> Response:
        task = self.store.owned(call.principal.account, call.param("task_id"))
        status = await self.store.status(task)
        info = model_info(task.model)
        if info.api != api:
            raise ApiError(
                400,
                "40080",
                f"Model not found: task {task.id} is tuned from {info.name}; call /{info.api}/tasks/{task.id}/...",
            )
        if status != "SUCCEEDED" or task.outcome is None:
            raise ApiError(
                400,
                "40080",
                f"Model not found: tuned task {task.id} is {status}; a tuned model can be called only after "
                "its training SUCCEEDED",
            )
        return await self._serve(call, api, info, target=task.id, answers=task.outcome.answers)

    async def _serve(
        self, call: Call, api: chat.Api, info: ModelInfo, *, target: str, answers: Mapping[str, str] | None
    ) -> Response:
        body = call.json()
        request = chat.parse_v1(body, info) if api == "v1" else chat.parse_v3(body, info)
        prompt = chat.input_tokens(request)
        chat.check_context(prompt, request.max_tokens, info)
        # A tuned task is charged as its base model: info is always the base model here.
        self.limiter.admit(call.principal.account, info.name, call.principal.app_type, prompt + request.max_tokens)
        answer = chat.reply(request, target=target, model=info.name, answers=answers)
        timings = self.config.timings
        await asyncio.sleep(
            self.config.scaled(timings.chat_base_seconds + timings.chat_token_seconds * answer.output_tokens)
        )
        result = chat.v1_result if api == "v1" else chat.v3_result
        return ok(result(request, answer, prompt))

    async def tokenize(self, call: Call, api: chat.Api) -> Response:
        self._model(call.param("model"), api)
        return ok(chat.tokenize_result(call.json(), api))

    # -- control -----------------------------------------------------------------------------

    async def control_stats(self, request: Request) -> Response:
        body = {
            **self.stats.snapshot(),
            "windows": self.limiter.snapshot(),
            "budgets": self.limiter.budgets(known_models()),
            "limit_overrides": {m: dict(v) for m, v in self.config.limits.items()},
            "rate_window_seconds": self.config.rate_window_seconds,
            "time_scale": self.config.time_scale,
            "faults": self.faults.describe(),
        }
        return json_response(200, body)

    async def control_reset(self, request: Request) -> Response:
        self.reset()
        return json_response(200, {"reset": True})

    async def control_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.clear()
        elif request.method == "POST":
            try:
                self.faults.configure(json.loads(await request.body() or b"{}"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                return json_response(400, {"error": "the body must be a JSON fault spec"})
            except EmulatorConfigError as exc:
                return json_response(400, {"error": str(exc)})
        return json_response(200, self.faults.describe())


class TransportAccess:
    """Outer ASGI layer giving handlers a way to cut the client's connection (``drop`` faults).

    ASGI has no message for "close without answering"; under uvicorn the ``send`` callable is
    bound to the connection's request cycle, which holds the transport. When that is not the
    case (another server), no hook is set and ``DroppedConnection`` falls back to a truncated
    answer.
    """

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is not None and callable(getattr(transport, "close", None)):

                def abort() -> bool:
                    transport.close()
                    return True

                scope = {**scope, ABORT_SCOPE_KEY: abort}
        await self.app(scope, receive, send)


PREFIXES: tuple[tuple[str, AppType | None], ...] = (("", None), ("/testapp", "test"), ("/serviceapp", "service"))


def build_routes(emulator: Emulator) -> list[Route]:
    """Every path of the emulated API, plus the control endpoints."""

    def api(path: str, method: str, route: str, action: Action, prefix: AppType | None = None) -> Route:
        async def endpoint(request: Request) -> Response:
            return await emulator.handle(request, route, action, prefix)

        return Route(path, endpoint, methods=[method], name=f"{route}:{method}:{path}")

    def v(api_version: chat.Api, fn: Callable[[Call, chat.Api], Awaitable[Response]]) -> Action:
        async def action(call: Call) -> Response:
            return await fn(call, api_version)

        return action

    routes = [
        api("/tuning/v2/tasks", "POST", "tuning.create", emulator.tuning_create),
        api("/tuning/v2/tasks", "GET", "tuning.list", emulator.tuning_list),
        api("/tuning/v2/tasks/{task_id}", "GET", "tuning.get", emulator.tuning_get),
        api("/tuning/v2/tasks/{task_id}", "DELETE", "tuning.delete", emulator.tuning_delete),
    ]
    tok_v1, tok_v3 = v("v1", emulator.tokenize), v("v3", emulator.tokenize)
    for prefix, app_type in PREFIXES:
        routes += [
            api(f"{prefix}/v1/chat-completions/{{model}}", "POST", "chat.v1", v("v1", emulator.chat_base), app_type),
            api(f"{prefix}/v3/chat-completions/{{model}}", "POST", "chat.v3", v("v3", emulator.chat_base), app_type),
            api(
                f"{prefix}/v1/tasks/{{task_id}}/chat-completions",
                "POST",
                "chat.tuned",
                v("v1", emulator.chat_tuned),
                app_type,
            ),
            api(
                f"{prefix}/v2/tasks/{{task_id}}/chat-completions",
                "POST",
                "chat.tuned",
                v("v1", emulator.chat_tuned),
                app_type,
            ),
            api(
                f"{prefix}/v3/tasks/{{task_id}}/chat-completions",
                "POST",
                "chat.tuned",
                v("v3", emulator.chat_tuned),
                app_type,
            ),
            api(f"{prefix}/v1/api-tools/chat-tokenize/{{model}}", "POST", "tokenize", tok_v1, app_type),
            api(f"{prefix}/v3/api-tools/chat-tokenize/{{model}}", "POST", "tokenize", tok_v3, app_type),
        ]
    routes += [
        Route("/_emulator/stats", emulator.control_stats, methods=["GET"]),
        Route("/_emulator/reset", emulator.control_reset, methods=["POST"]),
        Route("/_emulator/faults", emulator.control_faults, methods=["GET", "POST", "DELETE"]),
    ]
    return routes


def create_app(config: EmulatorConfig, clock: Callable[[], float] = time.time) -> TransportAccess:
    """The ASGI app for ``config``; its state (:class:`Emulator`) is ``app.emulator``."""
    emulator = Emulator(config, clock)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        emulator.stats.record("unknown", status)
        code = "40400" if status == 404 else f"{status}00"
        return error_response(ApiError(status, code, "Not found" if status == 404 else "Method not allowed"))

    app = Starlette(routes=build_routes(emulator), exception_handlers={404: not_found, 405: not_found})
    return TransportAccess(app, emulator)
