"""Helpers shared by the integration (and end-to-end) tests: the one polling wait, metrics.

``eventually`` is the only polling loop the tests use: it waits *until* a condition holds
(with a deadline). It never orders events and never proves that something did not happen:
for that a test waits for a later marker (a message handled after the one that must be
ignored, an outbox drained, a counter of handled messages) and then asserts.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from prometheus_client import REGISTRY

POLL_S = 0.05


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], timeout_s: float = 15.0, what: str = "condition"
) -> None:
    """Poll ``check`` (sync or async) until it holds; fail after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(POLL_S)


def sample(name: str, **labels: str) -> float:
    """A Prometheus sample of this process's registry (0 when the series does not exist)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def handled(queue: str) -> float:
    """Messages of ``queue`` that a bus in this process handled and acked (a service's progress)."""
    return sample("caesar_messages_consumed_total", queue=queue, outcome="ok")
