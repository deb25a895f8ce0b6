"""Test doubles for the batch engine and the batch operator: an async client that echoes,
fails or dies on cue, and helpers to write inputs and read outputs."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from upath import UPath

from airflow_provider_clova.client.models import ChatResult, TokenUsage


class Killed(Exception):
    """Stands for the worker dying mid-batch (not a CLOVA error, so it is not a row failure)."""


class FakeClient:
    """An async client double: answers ``echo <text>``; ``fail`` maps a prompt to an exception."""

    def __init__(
        self,
        *,
        fail: Callable[[str], BaseException | None] | None = None,
        kill_after: int | None = None,
        delay: float = 0.0,
    ) -> None:
        self.fail = fail or (lambda text: None)
        self.kill_after = kill_after
        self.delay = delay
        self.sent: list[str] = []
        self.answered: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def __aenter__(self) -> FakeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def chat_completion(self, messages: list[dict[str, Any]], model: str | None = None, **kw: Any) -> ChatResult:
        text = messages[-1]["content"]
        if self.kill_after is not None and len(self.sent) >= self.kill_after:
            raise Killed(f"worker died before sending {text!r}")
        self.sent.append(text)
        self.calls.append({"model": model, **kw})
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            error = self.fail(text)
            if error is not None:
                raise error
            self.answered.append(text)
            return ChatResult(
                content=f"echo {text}",
                role="assistant",
                finish_reason="stop",
                usage=TokenUsage(prompt_tokens=len(text), completion_tokens=2),
                api="v3",
            )
        finally:
            self.in_flight -= 1


def write_input(path: Path, rows: Iterable[Any]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def request(text: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **extra}


def read_output(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def remote(name: str = "out.jsonl") -> UPath:
    """A fresh object-store path on fsspec's in-memory file system (what ObjectStoragePath wraps)."""
    return UPath(f"memory://bucket-{uuid.uuid4().hex[:8]}/results/{name}")
