"""Wait on a condition, never on the clock: poll it until it holds or a deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout: float = 15.0, *, interval: float = 0.01, what: str = "the condition"
) -> T:
    """Call ``condition`` until it returns something truthy and return that value.

    Raises ``AssertionError`` naming ``what`` and the last value seen after ``timeout`` seconds,
    so a test fails with a message instead of hanging. ``interval`` is the pause between tries.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last value {value!r})")
        time.sleep(interval)
