"""``ClovaStudioChatCompletionOperator``: one chat completion, paced by the shared limiter.

The operator only adapts: it turns templated arguments into messages and parameters, checks
them against the documented ranges *before* anything is sent (a bad ``temperature`` fails
with the field named instead of costing a request and a 429-prone retry), picks the rate
share from the task's pool, and hands the call to the hook. v1 or v3 is chosen by the core
from the (base) model, so a tuned task chats through the API generation of its base model.

Also home of :func:`pool_rate_share`, shared with the batch operator: a task that runs in
the CLOVA pool of its model paces at ``budget x pool_slots / pool size`` so that the tasks
the scheduler runs at once never add up to more than the account's budget.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook

DEFAULT_CONN_ID = "clova_studio_default"


def prompt_messages(prompt: str, system_prompt: str | None = None) -> list[dict[str, str]]:
    """The messages of a single-turn chat: an optional system prompt, then the user prompt."""
    messages = [{"role": "system", "content": str(system_prompt)}] if system_prompt else []
    messages.append({"role": "user", "content": str(prompt)})
    return messages


def coerce_messages(value: Any, *, where: str) -> list[dict[str, Any]]:
    """Messages as a list of dicts; a JSON string (e.g. a rendered XCom) is parsed first."""
    from airflow_provider_clova.client.errors import ClovaStudioConfigError

    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ClovaStudioConfigError(
                f"{where}: messages is a string that is not JSON; give a list of {{role, content}} objects, "
                "or use prompt= for a single user message"
            ) from None
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise ClovaStudioConfigError(f"{where}: messages must be a list of {{role, content}} objects")
    return [dict(item) if isinstance(item, Mapping) else item for item in value]


def coerce_parameters(value: Any, *, where: str) -> dict[str, Any]:
    """Chat parameters as a dict; None is empty and a JSON object string is parsed."""
    from airflow_provider_clova.client.errors import ClovaStudioConfigError

    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = None
    if not isinstance(value, Mapping):
        raise ClovaStudioConfigError(f'{where}: parameters must be an object like {{"maxTokens": 256}}')
    return {str(key): item for key, item in value.items()}


def pool_rate_share(operator: Any, model: str, hook: ClovaStudioHook) -> float:
    """The budget share for ``operator`` calling ``model``: ``pool_slots / pool size`` inside
    the model's CLOVA pool, else 1.0 (the task is trusted to be the only caller).

    The pool size is recomputed from the connection (``extra.limits``, ``extra.pool_slots``)
    exactly as ``python -m airflow_provider_clova.pools sync`` created it.
    """
    from airflow_provider_clova.pools import pool_name, share_for_pool

    config = hook.config
    pool = getattr(operator, "pool", None)
    if not pool or pool != pool_name(model, config.app_type):
        return 1.0
    return share_for_pool(
        model,
        config.app_type,
        int(getattr(operator, "pool_slots", 1) or 1),
        config.limits,
        slots=config.pool_slots,
    )


def shared_hook(operator: Any, conn_id: str, model: str, hook: ClovaStudioHook | None = None) -> ClovaStudioHook:
    """A hook whose client paces at the operator's pool share of ``model``'s budget."""
    from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook

    probe = hook or ClovaStudioHook(conn_id)
    share = pool_rate_share(operator, model, probe)
    if share == probe.rate_share:
        return probe
    operator.log.info(
        "task runs in pool %r with %s slot(s): pacing at %.1f%% of the %s budget",
        operator.pool,
        operator.pool_slots,
        100 * share,
        model,
    )
    return probe.with_rate_share(share)


def resolve_base_model(hook: ClovaStudioHook, model: str | None, tuning_task_id: str | None) -> str:
    """The model whose API generation and budget a call uses; a tuned task is looked up once."""
    from airflow_provider_clova.client.errors import ClovaStudioConfigError

    if model:
        return str(model)
    if not tuning_task_id:
        raise ClovaStudioConfigError("chat: give model= (a base model) or tuning_task_id= (a tuned task)")
    task = hook.get_tuning_task(str(tuning_task_id))
    if not task.model:
        raise ClovaStudioConfigError(
            f"tuning task {tuning_task_id} reports no base model; pass model= naming the model it was tuned from"
        )
    return task.model


class ClovaStudioChatCompletionOperator(BaseOperator):
    """Ask a CLOVA Studio model (base or tuned) for one chat completion.

    :param messages: list of ``{"role": "system"|"user"|"assistant", "content": ...}`` (templated;
        a JSON string is parsed). Give this or ``prompt``.
    :param prompt: a single user message (templated), optionally with ``system_prompt``.
    :param system_prompt: system message placed before ``prompt``.
    :param model: base model (``HCX-005``, ``HCX-003`` ...). With ``tuning_task_id`` it names the
        tuned task's base model and saves a lookup.
    :param tuning_task_id: chat with this tuned task instead of a base model.
    :param parameters: chat parameters (``temperature``, ``maxTokens``/``max_tokens``, ``topP`` ...),
        checked against the documented ranges of the model's API before anything is sent.
    :param clova_conn_id: connection of type ``clova_studio``.
    :return: ``{"content", "finish_reason", "usage": {"prompt_tokens", "completion_tokens",
        "total_tokens"}, "model", "tuning_task_id"}``; ``model`` is the base model.

    Requests are paced by the process-wide QPM/TPM limiter; in the model's CLOVA pool
    (``pools.pool_name(model, app_type)``) the task paces at ``pool_slots / pool size`` of it.
    """

    template_fields: Sequence[str] = (
        "messages",
        "prompt",
        "system_prompt",
        "model",
        "tuning_task_id",
        "parameters",
        "clova_conn_id",
    )
    ui_color = "#03c75a"

    def __init__(
        self,
        *,
        messages: Sequence[Mapping[str, Any]] | str | None = None,
        prompt: str | None = None,
        system_prompt: str | None = None,
        model: str | None = None,
        tuning_task_id: str | None = None,
        parameters: Mapping[str, Any] | str | None = None,
        clova_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (messages is None) == (prompt is None):
            raise ValueError(f"{type(self).__name__}: give exactly one of messages= or prompt=")
        if system_prompt is not None and messages is not None:
            raise ValueError(f"{type(self).__name__}: system_prompt goes with prompt=; put it in messages instead")
        if not model and not tuning_task_id:
            raise ValueError(f"{type(self).__name__}: give model= (a base model) or tuning_task_id= (a tuned task)")
        self.messages = messages
        self.prompt = prompt
        self.system_prompt = system_prompt
        self.model = model
        self.tuning_task_id = tuning_task_id
        self.parameters = parameters
        self.clova_conn_id = clova_conn_id

    def _where(self) -> str:
        return f"{type(self).__name__}({self.task_id})"

    def request_messages(self) -> list[dict[str, Any]]:
        """The rendered messages (``prompt``/``system_prompt`` turned into messages)."""
        if self.messages is None:
            return prompt_messages(str(self.prompt), self.system_prompt)
        return coerce_messages(self.messages, where=self._where())

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_clova.client import calls
        from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook

        messages = self.request_messages()
        parameters = coerce_parameters(self.parameters, where=self._where())
        task_id = str(self.tuning_task_id) if self.tuning_task_id else None

        def check(model: str) -> calls.Call:
            # Pure: validates messages and every parameter for the model's API (v1 or v3).
            return calls.chat_completion(messages, model=model, task_id=task_id, params=parameters, prefix="")

        if self.model:
            check(str(self.model))  # fail before the connection is even read
        probe = hook = ClovaStudioHook(self.clova_conn_id)
        try:
            model = resolve_base_model(probe, self.model, task_id)
            call = check(model)
            hook = shared_hook(self, self.clova_conn_id, model, probe)
            self.log.info(
                "chat with %s%s via %s (%d message(s), up to %d output tokens)",
                model,
                f" (tuned task {task_id})" if task_id else "",
                call.route,
                len(messages),
                call.reserved_output_tokens,
            )
            result = hook.chat_completion(messages, model=model, task_id=task_id, **parameters)
        finally:
            probe.close()
            if hook is not probe:
                hook.close()
        usage = result.usage.to_dict()
        self.log.info(
            "finish_reason=%s, tokens: %d prompt + %d completion",
            result.finish_reason,
            usage["prompt_tokens"],
            usage["completion_tokens"],
        )
        return {
            "content": result.content,
            "finish_reason": result.finish_reason,
            "usage": usage,
            "model": model,
            "tuning_task_id": task_id,
        }
