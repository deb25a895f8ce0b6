"""Typed views of CLOVA Studio answers.

The service speaks camelCase JSON with ISO dates like ``2023-08-21T13:07:06+0900``; these
classes turn it into Python types once, so operators, the trigger and users never parse the
raw dicts themselves. ``raw`` keeps the original for anything we do not model.
"""

from __future__ import annotations

import datetime
import enum
import functools
import math
from dataclasses import dataclass, field
from typing import Any

import pendulum


class TuningStatus(str, enum.Enum):
    """A tuning task's state. There is no cancelled state: deleting a task stops it."""

    WAIT = "WAIT"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        return self in (TuningStatus.SUCCEEDED, TuningStatus.FAILED)


def parse_datetime(value: Any) -> pendulum.DateTime | None:
    """Parse the service's ISO 8601 dates (with ``+0900``-style offsets); None stays None."""
    if value in (None, ""):
        return None
    return _parse_datetime_text(str(value))


@functools.lru_cache(maxsize=4096)
def _parse_datetime_text(text: str) -> pendulum.DateTime | None:
    # Cached: a poll loop sees the same createdDate/updatedDate over and over, and
    # pendulum.DateTime is immutable, so one parsed value can be shared.
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:  # forms Python's parser does not take (e.g. "+0900" before 3.11)
        parsed = None
    if parsed is not None and parsed.tzinfo is not None:
        offset = parsed.utcoffset()
        assert offset is not None
        # "Z" is UTC itself, as pendulum.parse gives it; "+09:00" a fixed offset.
        tz = pendulum.UTC if text[-1:] in ("Z", "z") else _fixed_timezone(int(offset.total_seconds()))
        return pendulum.DateTime(
            parsed.year,
            parsed.month,
            parsed.day,
            parsed.hour,
            parsed.minute,
            parsed.second,
            parsed.microsecond,
            tzinfo=tz,
        )
    result = pendulum.parse(text)  # naive or unusual forms: pendulum's rules (naive means UTC)
    return result if isinstance(result, pendulum.DateTime) else None


@functools.lru_cache(maxsize=64)
def _fixed_timezone(offset_seconds: int) -> pendulum.FixedTimezone:
    return pendulum.FixedTimezone(offset_seconds)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class StatusInfo:
    """Progress of a training; every field is None while the task waits for a GPU."""

    label: Any = None
    data_rows: int | None = None
    num_of_tokens: int | None = None
    curr_step: int | None = None
    total_train_steps: int | None = None
    curr_epoch: int | None = None
    total_train_epochs: int | None = None
    estimated_time: int | None = None
    train_loss: float | None = None
    send_weight_success: bool | None = None
    failure_reason: str | None = None
    message: str | None = None
    end_datetime: pendulum.DateTime | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any] | None) -> StatusInfo:
        data = data or {}
        return cls(
            label=data.get("label"),
            data_rows=_int(data.get("dataRows")),
            num_of_tokens=_int(data.get("numOfTokens")),
            curr_step=_int(data.get("currStep")),
            total_train_steps=_int(data.get("totalTrainSteps")),
            curr_epoch=_int(data.get("currEpoch")),
            total_train_epochs=_int(data.get("totalTrainEpochs")),
            estimated_time=_int(data.get("estimatedTime")),
            train_loss=_float(data.get("trainLoss")),
            send_weight_success=data.get("sendWeightSuccess"),
            failure_reason=data.get("failureReason"),
            message=data.get("message"),
            end_datetime=parse_datetime(data.get("endDatetime")),
        )

    @property
    def progress(self) -> float | None:
        """Fraction of training steps done, 0.0 to 1.0, when the service reports steps."""
        if self.curr_step is None or not self.total_train_steps:
            return None
        return max(0.0, min(1.0, self.curr_step / self.total_train_steps))

    @property
    def eta_seconds(self) -> float | None:
        """Seconds the service expects the training still needs (its ``estimatedTime``)."""
        return None if self.estimated_time is None else float(max(self.estimated_time, 0))


@dataclass(frozen=True)
class TuningTask:
    """One tuning task as the service describes it."""

    id: str
    name: str | None
    model: str | None
    status: TuningStatus
    status_info: StatusInfo
    method: str | None = None
    task_type: str | None = None
    train_epochs: int | None = None
    learning_rate: float | None = None
    created_client_type: str | None = None
    created_date: pendulum.DateTime | None = None
    updated_date: pendulum.DateTime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> TuningTask:
        return cls(
            id=str(data["id"]),
            name=data.get("name"),
            model=data.get("model"),
            status=TuningStatus(data.get("status", "WAIT")),
            status_info=StatusInfo.from_api(data.get("statusInfo")),
            method=data.get("method"),
            task_type=data.get("taskType"),
            train_epochs=_int(data.get("trainEpochs")),
            learning_rate=_float(data.get("learningRate")),
            created_client_type=data.get("createdClientType"),
            created_date=parse_datetime(data.get("createdDate")),
            updated_date=parse_datetime(data.get("updatedDate")),
            raw=dict(data),
        )

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    def summary(self) -> str:
        """One progress line a person can read in the task log."""
        info = self.status_info
        parts = [f"task {self.id} {self.status.value}"]
        if info.curr_step is not None and info.total_train_steps:
            parts.append(f"step {info.curr_step}/{info.total_train_steps} ({100 * (info.progress or 0):.0f}%)")
        if info.curr_epoch is not None and info.total_train_epochs:
            parts.append(f"epoch {info.curr_epoch}/{info.total_train_epochs}")
        if info.train_loss is not None:
            parts.append(f"loss {info.train_loss:.4f}")
        if info.eta_seconds is not None and not self.is_terminal:
            parts.append(f"ETA {human_duration(info.eta_seconds)}")
        if info.failure_reason:
            parts.append(f"failureReason {info.failure_reason}: {info.message or ''}".rstrip(": "))
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe snapshot (for trigger events and XCom): the service's own fields."""
        return dict(self.raw)


def human_duration(seconds: float) -> str:
    """``3725`` -> ``1h02m``: durations in log lines people read."""
    if not math.isfinite(seconds):
        return "unknown"
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


@dataclass(frozen=True)
class TuningTaskPage:
    """One page of the task list."""

    tasks: list[TuningTask]
    number: int
    size: int
    total_pages: int
    total_elements: int

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> TuningTaskPage:
        return cls(
            tasks=[TuningTask.from_api(item) for item in data.get("content") or []],
            number=int(data.get("number", 0)),
            size=int(data.get("size", 0)),
            total_pages=int(data.get("totalPages", 0)),
            total_elements=int(data.get("totalElements", 0)),
        )


@dataclass(frozen=True)
class TokenUsage:
    """Token usage in one shape for v1 (inputLength/outputLength) and v3 (usage{})."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class ChatResult:
    """A chat completion, whichever API generation answered it."""

    content: str
    role: str
    finish_reason: str | None
    usage: TokenUsage
    api: str
    seed: int | None = None
    #: A reasoning model's (HCX-007) reasoning text, ``result.message.thinkingContent``.
    thinking_content: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any], *, api: str) -> ChatResult:
        message = data.get("message") or {}
        if api == "v1":
            usage = TokenUsage(int(data.get("inputLength") or 0), int(data.get("outputLength") or 0))
            finish = data.get("stopReason")
        else:
            raw_usage = data.get("usage") or {}
            usage = TokenUsage(int(raw_usage.get("promptTokens") or 0), int(raw_usage.get("completionTokens") or 0))
            finish = data.get("finishReason")
        return cls(
            content=str(message.get("content") or ""),
            role=str(message.get("role") or "assistant"),
            finish_reason=finish,
            usage=usage,
            api=api,
            seed=_int(data.get("seed")),
            thinking_content=message.get("thinkingContent"),
            raw=dict(data),
        )

    def to_dict(self) -> dict[str, Any]:
        out = {
            "content": self.content,
            "role": self.role,
            "finish_reason": self.finish_reason,
            "usage": self.usage.to_dict(),
            "api": self.api,
            "seed": self.seed,
        }
        if self.thinking_content is not None:
            out["thinking_content"] = self.thinking_content
        return out
