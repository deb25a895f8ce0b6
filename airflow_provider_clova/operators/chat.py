"""``ClovaStudioChatCompletionOperator``: one chat completion, paced by the shared limiter.

The operator only adapts: it turns templated arguments into messages and parameters, checks
them against the documented ranges *before* anything is sent (a bad ``temperature`` fails
with the field named instead of costing a request and a 429-prone retry), picks the rate
share from the task's pool, and hands the call to the hook. v1 or v3 is chosen by the core
from the (base) model, so a tuned task chats through the API generation of its base model.

A task that runs in the CLOVA pool of its model paces at ``budget x pool_slots / pool size``
(``ClovaStudioHook.with_pool_share``), so that the tasks the scheduler runs at once never add
up to more than the account's budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_clova.client import calls
from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook
from airflow_provider_clova.operators._arguments import coerce_messages, coerce_parameters

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

DEFAULT_CONN_ID = "clova_studio_default"


def prompt_messages(prompt: str, system_prompt: str | None = None) -> list[dict[str, str]]:
    """The messages of a single-turn chat: an optional system prompt, then the user prompt."""
    messages = [{"role": "system", "content": str(system_prompt)}] if system_prompt else []
    messages.append({"role": "user", "content": str(prompt)})
    return messages


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
        "total_tokens"}, "model", "tuning_task_id", "thinking_content"}``; ``model`` is the base model,
        ``thinking_content`` a reasoning model's (HCX-007) reasoning text, else None.

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
        messages = self.request_messages()
        parameters = coerce_parameters(self.parameters, where=self._where())
        tuning_task_id = str(self.tuning_task_id) if self.tuning_task_id else None

        probe = hook = ClovaStudioHook(self.clova_conn_id)

        def check(model: str) -> calls.Call:
            # Pure: validates messages and every parameter for the model's API (v1 or v3).
            return calls.chat_completion(
                messages, model=model, task_id=tuning_task_id, params=parameters, models=probe.config.models
            )

        try:
            model = probe.base_model(self.model, tuning_task_id)
            call = check(model)
            hook = probe.with_pool_share(self, model)
            self.log.info(
                "chat with %s%s via %s (%d message(s), up to %d output tokens)",
                model,
                f" (tuned task {tuning_task_id})" if tuning_task_id else "",
                call.route,
                len(messages),
                call.reserved_output_tokens,
            )
            result = hook.chat_completion(messages, model=model, task_id=tuning_task_id, **parameters)
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
            "tuning_task_id": tuning_task_id,
            "thinking_content": result.thinking_content,
        }
