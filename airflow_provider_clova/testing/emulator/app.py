"""The emulator's HTTP surface: routes, the per-request pipeline, and the control endpoints.

Every API request goes through one pipeline, in the order the service applies things::

    read body -> authenticate -> fault (before) -> action -> fault (after) -> count in stats

Authentication comes first so an unauthenticated call never consumes a scripted fault; each
route accepts only the auth schemes documented for it (``auth.py``). The
action validates the request (400), checks the budget (429, not counted when refused) and
only then serves, so a refused request changes nothing. Control endpoints under
``/_emulator/`` need no auth and see no faults: they are for tests, not for clients.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
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
from airflow_provider_clova.testing.emulator import chat, openai_compat
from airflow_provider_clova.testing.emulator.auth import (
    BEARER_ONLY,
    LEGACY_SCHEMES,
    TUNING_SCHEMES,
    Authenticator,
    Principal,
    Scheme,
)
from airflow_provider_clova.testing.emulator.config import AppType, EmulatorConfig, EmulatorConfigError
from airflow_provider_clova.testing.emulator.embedding import embed_text
from airflow_provider_clova.testing.emulator.envelope import ApiError, bad_param, error_response, json_response, ok
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
from airflow_provider_clova.testing.emulator.tokenizer import count_text
from airflow_provider_clova.testing.emulator.tuning import (
    Lifecycle,
    TuningStore,
    TuningTask,
    parse_create,
    parse_page,
)

log = logging.getLogger("airflow_provider_clova.testing.emulator")

MAX_BODY_BYTES = 50 * 1024 * 1024  # the service's 413 limit

#: embedding model -> most input tokens it takes (v1 models 500, v2 8,192). Native v2
#: (``/v1/api-tools/embedding/v2``) is the model the OpenAI-compatible API calls ``bge-m3``;
#: both paths share its budget.
EMBEDDING_MODELS = {"clir-emb-dolphin": 500, "clir-sts-dolphin": 500, "bge-m3": 8192}
EMBEDDING_V2 = "bge-m3"


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

    def json_object(self) -> Mapping[str, Any]:
        """The body, which must be a JSON object (400 ``40000`` otherwise)."""
        body = self.json()
        if not isinstance(body, Mapping):
            raise ApiError(400, "40000", "Invalid request: the body must be a JSON object")
        return body

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

    async def handle(
        self,
        request: Request,
        route: str,
        action: Action,
        prefix: AppType | None,
        schemes: frozenset[Scheme] = BEARER_ONLY,
        *,
        openai_shape: bool = False,
    ) -> Response:
        render = _openai_error if openai_shape else error_response
        declared = request.headers.get("content-length", "0")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return self._finish(request, route, None, render(ApiError(413, "41300", "Payload too large")))
        body = await request.body()
        try:
            principal = self.auth.authenticate(
                request.headers, request.method, raw_target(request.scope), prefix, schemes
            )
        except ApiError as exc:
            return self._finish(request, route, None, render(exc))
        fault = self.faults.draw(route)
        if fault is not None and fault.when == "before":
            early = await self._inject(fault)
            if early is not None:
                return self._finish(request, route, principal, early)
        try:
            response = await action(Call(principal, request, body))
        except ApiError as exc:
            response = render(exc)
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
        request = parse_create(call.json(), self.config.tunable_models)
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
        request, answer, prompt = await self._generate(call, call.json(), api, info, target=target, answers=answers)
        result = chat.v1_result if api == "v1" else chat.v3_result
        return ok(result(request, answer, prompt))

    async def _generate(
        self,
        call: Call,
        body: object,
        api: chat.Api,
        info: ModelInfo,
        *,
        target: str,
        answers: Mapping[str, str] | None,
    ) -> tuple[chat.ChatRequest, chat.Reply, int]:
        """Check, charge and answer one chat request (native or OpenAI-compatible)."""
        tuned = answers is not None
        request = chat.parse_v1(body, info) if api == "v1" else chat.parse_v3(body, info, tuned=tuned)
        prompt = chat.input_tokens(request)
        chat.check_context(prompt, request.max_tokens, info)
        # A tuned task is charged as its base model: info is always the base model here.
        self.limiter.admit(call.principal.account, info.name, call.principal.app_type, prompt + request.max_tokens)
        answer = chat.reply(request, target=target, model=info.name, answers=answers)
        timings = self.config.timings
        await asyncio.sleep(
            self.config.scaled(timings.chat_base_seconds + timings.chat_token_seconds * answer.output_tokens)
        )
        return request, answer, prompt

    async def tokenize(self, call: Call, api: chat.Api) -> Response:
        self._model(call.param("model"), api)
        return ok(chat.tokenize_result(call.json(), api))

    # -- embeddings --------------------------------------------------------------------------

    def _embed(self, call: Call, model: str, text: str) -> tuple[list[float], int]:
        """Check the text against the model's limit, charge the budget, embed."""
        if not text.strip():
            raise ApiError(400, "40004", "Text empty: the text to embed is empty")
        tokens = count_text(text)
        limit = EMBEDDING_MODELS[model]
        if tokens > limit:
            raise ApiError(400, "40003", f"Text too long: {tokens} tokens exceed {model}'s limit of {limit}")
        # Embeddings have no maxTokens: TPM counts the input tokens alone.
        self.limiter.admit(call.principal.account, model, call.principal.app_type, tokens)
        return embed_text(text), tokens

    async def embedding(self, call: Call) -> Response:
        model = call.request.path_params.get("model", EMBEDDING_V2)
        if model not in EMBEDDING_MODELS or model == EMBEDDING_V2:
            raise ApiError(
                400, "40080", f"Model not found: {model!r}; embedding v1 models are clir-emb-dolphin, clir-sts-dolphin"
            )
        return await self._embedding(call, model)

    async def embedding_v2(self, call: Call) -> Response:
        return await self._embedding(call, EMBEDDING_V2)

    async def _embedding(self, call: Call, model: str) -> Response:
        text = call.json_object().get("text")
        if not isinstance(text, str):
            raise bad_param("text", "is required: the text to embed, as a string")
        vector, tokens = self._embed(call, model, text)
        return ok({"embedding": vector, "inputTokens": tokens})

    # -- OpenAI-compatible API -----------------------------------------------------------------

    async def openai_chat(self, call: Call) -> Response:
        body = call.json_object()
        name = body.get("model")
        if not isinstance(name, str):
            raise bad_param("model", "is required: a CLOVA Studio model name")
        try:
            info = model_info(name)
        except ClovaStudioConfigError:
            raise ApiError(
                400, "40080", f"Model not found: {name!r} (chat models: {', '.join(known_models())})"
            ) from None
        native = openai_compat.native_chat(body, info)
        _, answer, prompt = await self._generate(call, native, info.api, info, target=info.name, answers=None)
        result = openai_compat.chat_result(
            completion_id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(self.clock()),
            model=info.name,
            answer=answer,
            prompt_tokens=prompt,
        )
        return json_response(200, result)

    async def openai_embeddings(self, call: Call) -> Response:
        model, text = openai_compat.embedding_input(call.json_object(), EMBEDDING_MODELS)
        vector, tokens = self._embed(call, model, text)
        return json_response(200, openai_compat.embedding_result(model, vector, tokens))

    async def openai_models(self, call: Call) -> Response:
        return json_response(200, openai_compat.models_result([*known_models(), *EMBEDDING_MODELS]))

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
    """Every path of the emulated API, with the auth schemes each accepts, plus the control endpoints."""

    def api(
        path: str,
        method: str,
        route: str,
        action: Action,
        prefix: AppType | None = None,
        schemes: frozenset[Scheme] = BEARER_ONLY,
        *,
        openai_shape: bool = False,
    ) -> Route:
        async def endpoint(request: Request) -> Response:
            return await emulator.handle(request, route, action, prefix, schemes, openai_shape=openai_shape)

        return Route(path, endpoint, methods=[method], name=f"{route}:{method}:{path}")

    def v(api_version: chat.Api, fn: Callable[[Call, chat.Api], Awaitable[Response]]) -> Action:
        async def action(call: Call) -> Response:
            return await fn(call, api_version)

        return action

    tuning = TUNING_SCHEMES
    routes = [
        api("/tuning/v2/tasks", "POST", "tuning.create", emulator.tuning_create, None, tuning),
        api("/tuning/v2/tasks", "GET", "tuning.list", emulator.tuning_list, None, tuning),
        api("/tuning/v2/tasks/{task_id}", "GET", "tuning.get", emulator.tuning_get, None, tuning),
        api("/tuning/v2/tasks/{task_id}", "DELETE", "tuning.delete", emulator.tuning_delete, None, tuning),
        api("/v1/openai/chat/completions", "POST", "openai.chat", emulator.openai_chat, openai_shape=True),
        api("/v1/openai/embeddings", "POST", "openai.embeddings", emulator.openai_embeddings, openai_shape=True),
        api("/v1/openai/models", "GET", "openai.models", emulator.openai_models, openai_shape=True),
    ]
    tok_v1, tok_v3 = v("v1", emulator.tokenize), v("v3", emulator.tokenize)
    v1_tuned = v("v1", emulator.chat_tuned)
    for prefix, app_type in PREFIXES:
        # The legacy pair is documented for v1 chat and token count only (and only under an app
        # prefix, which the authenticator enforces); everything else is Bearer only.
        legacy = LEGACY_SCHEMES
        routes += [
            api(
                f"{prefix}/v1/chat-completions/{{model}}",
                "POST",
                "chat.v1",
                v("v1", emulator.chat_base),
                app_type,
                legacy,
            ),
            api(f"{prefix}/v3/chat-completions/{{model}}", "POST", "chat.v3", v("v3", emulator.chat_base), app_type),
            api(f"{prefix}/v1/tasks/{{task_id}}/chat-completions", "POST", "chat.tuned", v1_tuned, app_type, legacy),
            api(f"{prefix}/v2/tasks/{{task_id}}/chat-completions", "POST", "chat.tuned", v1_tuned, app_type, legacy),
            api(
                f"{prefix}/v3/tasks/{{task_id}}/chat-completions",
                "POST",
                "chat.tuned",
                v("v3", emulator.chat_tuned),
                app_type,
            ),
            api(f"{prefix}/v1/api-tools/chat-tokenize/{{model}}", "POST", "tokenize", tok_v1, app_type, legacy),
            api(f"{prefix}/v3/api-tools/chat-tokenize/{{model}}", "POST", "tokenize", tok_v3, app_type),
            api(f"{prefix}/v1/api-tools/embedding/v2", "POST", "embedding", emulator.embedding_v2, app_type),
            api(f"{prefix}/v1/api-tools/embedding/{{model}}", "POST", "embedding", emulator.embedding, app_type),
        ]
    routes += [
        Route("/_emulator/stats", emulator.control_stats, methods=["GET"]),
        Route("/_emulator/reset", emulator.control_reset, methods=["POST"]),
        Route("/_emulator/faults", emulator.control_faults, methods=["GET", "POST", "DELETE"]),
    ]
    return routes


def _openai_error(error: ApiError) -> Response:
    return json_response(error.http_status, openai_compat.error_body(error))


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
