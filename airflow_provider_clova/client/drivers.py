"""One loop, two drivers: a coroutine written once, run by ``await`` or by a blocking call.

Why: a wait that exists for both clients (the tuning poll, the budget store's booking) is a
loop of "do I/O, decide, sleep". Writing it twice, once blocking and once async, lets the two
copies drift. So the loop is an ``async def`` whose I/O and sleep are parameters: the async
driver passes awaitables that really suspend (``asyncio.sleep``, an async client), the
blocking driver passes plain functions wrapped by :func:`as_async` and runs the coroutine with
:func:`run_blocking`, which never needs an event loop because nothing in it ever suspends.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def as_async(func: Callable[..., T]) -> Callable[..., Coroutine[Any, Any, T]]:
    """``func`` as a coroutine function that runs it at once (no await inside)."""

    async def run(*args: Any) -> T:
        return func(*args)

    return run


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine whose awaits are all on :func:`as_async` functions.

    Such a coroutine never suspends, so its first step runs it to the end, with no event loop
    (and harmlessly inside one). This is how the blocking driver shares the async loop.
    """
    try:
        coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coro.close()
    raise RuntimeError("a blocking driver awaited something asynchronous")
