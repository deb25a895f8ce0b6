"""What each CLOVA Studio call sends and how its answer is read: pure data, no I/O.

The sync and async clients both execute these ``Call`` values, so a path, a body rule or a
result parser exists once, whichever transport runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_clova.client.catalog import Overrides, model_info, tunable_model_info
from airflow_provider_clova.client.embeddings import check_text, embedding_model, estimate_tokens
from airflow_provider_clova.client.errors import ClovaStudioConfigError
from airflow_provider_clova.client.models import ChatResult, EmbeddingResult, TuningTask, TuningTaskPage
from airflow_provider_clova.client.params import (
    TUNING_FIELDS,
    normalize,
    normalize_chat_params,
    reject_non_finite,
    requested_output_tokens,
)
from airflow_provider_clova.client.routing import Family, Scheme
from airflow_provider_clova.client.tokens import estimate_input_tokens

TUNING_TASKS_PATH = "/tuning/v2/tasks"
MAX_PAGE_SIZE = 100


def _identity(result: Any) -> Any:
    return result


@dataclass(frozen=True)
class Call:
    """One logical request: method, path, body, whether repeating it is harmless, and its parser.

    ``family`` decides which auth schemes may send it (``routing.py``); ``scheme`` forces one
    (the connection test checks each credential on its own).
    """

    method: str
    path: str
    route: str
    family: Family = "other"
    scheme: Scheme | None = None
    #: Hidden from repr: a create body carries the Object Storage secret key.
    json: Any = field(default=None, repr=False)
    params: Mapping[str, Any] | None = None
    idempotent: bool = True
    parse: Callable[[Any], Any] = field(default=_identity, repr=False)
    #: For chat: (model whose budget pays, estimated cost in tokens, output tokens reserved).
    budget_model: str | None = None
    estimated_cost: int = 0
    reserved_output_tokens: int = 0


@dataclass(frozen=True)
class TuningDataset:
    """Where a training dataset lives in Object Storage, with the credentials CLOVA uses to read it."""

    bucket: str
    key: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)

    def __post_init__(self) -> None:
        for name in ("bucket", "key", "access_key", "secret_key"):
            if not getattr(self, name):
                raise ClovaStudioConfigError(f"tuning dataset: {name} is empty")
        if self.key.startswith("/") or self.key.startswith(f"{self.bucket}/"):
            raise ClovaStudioConfigError(
                f"tuning dataset: key {self.key!r} must be the object key inside the bucket, "
                "without a leading '/' or the bucket name"
            )

    def to_api(self) -> dict[str, str]:
        return {
            "trainingDatasetBucket": self.bucket,
            "trainingDatasetFilePath": self.key,
            "trainingDatasetAccessKey": self.access_key,
            "trainingDatasetSecretKey": self.secret_key,
        }


def tuning_body(
    model: str, dataset: TuningDataset | None, fields: Mapping[str, Any], *, models: Overrides | None = None
) -> dict[str, Any]:
    """The create body: fields checked against the documented ranges, model checked tunable.

    Only fields the caller gives are sent (``taskType`` is no longer in the commercial create
    body, so it goes only when the user sets it); the service applies its own defaults.
    """
    tunable_model_info(model, models, where="create tuning task")
    body = normalize({"model": model, **fields}, TUNING_FIELDS, where="create tuning task")
    if dataset is not None:
        body.update(dataset.to_api())
    present = [
        k
        for k in (
            "trainingDatasetBucket",
            "trainingDatasetFilePath",
            "trainingDatasetAccessKey",
            "trainingDatasetSecretKey",
        )
        if k in body
    ]
    if present and len(present) != 4:
        raise ClovaStudioConfigError(
            "create tuning task: trainingDatasetBucket, trainingDatasetFilePath, trainingDatasetAccessKey "
            "and trainingDatasetSecretKey go together; give a TuningDataset"
        )
    return body


def create_tuning_task(body: Mapping[str, Any]) -> Call:
    return Call(
        "POST",
        TUNING_TASKS_PATH,
        "tuning.create",
        family="tuning",
        json=dict(body),
        idempotent=False,
        parse=TuningTask.from_api,
    )


def get_tuning_task(tuning_task_id: str) -> Call:
    path = f"{TUNING_TASKS_PATH}/{_checked_tuning_task_id(tuning_task_id)}"
    return Call("GET", path, "tuning.get", family="tuning", parse=TuningTask.from_api)


def list_tuning_tasks_page(page: int, size: int) -> Call:
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ClovaStudioConfigError(f"list tuning tasks: page size must be 1-{MAX_PAGE_SIZE}, got {size}")
    return Call(
        "GET",
        TUNING_TASKS_PATH,
        "tuning.list",
        family="tuning",
        params={"page": page, "size": size},
        parse=TuningTaskPage.from_api,
    )


def delete_tuning_task(tuning_task_id: str) -> Call:
    # Deleting twice is harmless (the second answers 404), so the call may be retried.
    path = f"{TUNING_TASKS_PATH}/{_checked_tuning_task_id(tuning_task_id)}"
    return Call("DELETE", path, "tuning.delete", family="tuning")


def chat_completion(
    messages: Sequence[Mapping[str, Any]],
    *,
    model: str,
    task_id: str | None,
    params: Mapping[str, Any],
    prefix: str = "",
    models: Overrides | None = None,
) -> Call:
    """A chat call for a base model or a tuned task; v1 or v3 chosen by the (base) model.

    ``prefix`` goes before the path; the client itself adds ``/testapp`` or ``/serviceapp``
    when it sends the call with legacy app keys, so callers leave it empty.
    """
    info = model_info(model, models)
    checked_messages = _messages(messages)
    body: dict[str, Any] = {"messages": checked_messages}
    body.update(
        normalize_chat_params(
            params,
            api=info.api,
            max_output_tokens=info.max_output_tokens,
            reasoning=info.reasoning,
            tuned=bool(task_id),
        )
    )
    if task_id:
        path = f"{prefix}/{info.api}/tasks/{_checked_tuning_task_id(task_id)}/chat-completions"
        route = "chat.tuned"
    else:
        path = f"{prefix}/{info.api}/chat-completions/{model}"
        route = f"chat.{info.api}"
    reserved = requested_output_tokens(body, reasoning=info.reasoning)
    return Call(
        "POST",
        path,
        route,
        family=_chat_family(info.api),
        json=body,
        # A repeated chat call creates nothing lasting; it only spends budget, which the limiter meters.
        idempotent=True,
        parse=lambda result: ChatResult.from_api(result or {}, api=info.api),
        budget_model=model,
        estimated_cost=estimate_input_tokens(checked_messages) + reserved,
        reserved_output_tokens=reserved,
    )


def count_tokens(
    messages: Sequence[Mapping[str, Any]], *, model: str, prefix: str = "", models: Overrides | None = None
) -> Call:
    """The token-count call; legacy app keys call the v1 one under ``/testapp`` or ``/serviceapp`` like chat."""
    info = model_info(model, models)
    return Call(
        "POST",
        f"{prefix}/{info.api}/api-tools/chat-tokenize/{model}",
        "tokenize",
        family=_chat_family(info.api),
        json={"messages": _messages(messages)},
        parse=_token_total,
    )


def embedding(text: str, *, model: str) -> Call:
    """An embedding call (v2, or v1's ``clir-emb-dolphin`` / ``clir-sts-dolphin``).

    Checked before sending: the model is known, the text is a non-empty string and not proven
    over the model's token limit. Paced by the limiter under the model's own budget; TPM
    counts input tokens only (an embedding has no ``maxTokens``), reserved with an upper-bound
    estimate and settled with the answer's ``inputTokens``.
    """
    info = embedding_model(model)
    checked = check_text(text, info)
    return Call(
        "POST",
        info.url_path,
        "embedding",
        family="other",  # Bearer only, like every API but tuning and chat v1
        json={"text": checked},
        # Repeating an embedding creates nothing; it only spends budget, which the limiter meters.
        idempotent=True,
        parse=lambda result: EmbeddingResult.from_api(result or {}),
        budget_model=info.name,
        estimated_cost=estimate_tokens(checked),
    )


def _chat_family(api: str) -> Family:
    return "chat_v1" if api == "v1" else "other"


def _token_total(result: Any) -> int:
    """Total tokens from the token-count answer (per-message counts are summed)."""
    if isinstance(result, Mapping):
        for key in ("totalTokens", "count", "numTokens"):
            if key in result:
                return int(result[key])
        items = result.get("messages")
    else:
        items = result
    if isinstance(items, list):
        return sum(int(item.get("count", 0)) for item in items if isinstance(item, Mapping))
    raise ValueError(f"unexpected token-count answer: {result!r}")


def _checked_tuning_task_id(tuning_task_id: str) -> str:
    tuning_task_id = str(tuning_task_id).strip()
    if not tuning_task_id or not tuning_task_id.isalnum():
        raise ClovaStudioConfigError(f"tuning task id {tuning_task_id!r} is not valid (expected letters and digits)")
    return tuning_task_id


def _messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise ClovaStudioConfigError("chat: messages must be a non-empty list of {role, content} objects")
    out = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise ClovaStudioConfigError(f"chat: messages[{index}] must be an object with role and content")
        role = message.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            raise ClovaStudioConfigError(
                f"chat: messages[{index}].role={role!r} is not valid; use system, user or assistant"
            )
        if "content" not in message:
            raise ClovaStudioConfigError(f"chat: messages[{index}] has no content")
        reject_non_finite(f"messages[{index}]", message, "chat")
        out.append(dict(message))
    return out
