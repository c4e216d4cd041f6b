"""Periodic background work (watchdogs, gauge refreshes, sweeps), robust to transient errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from caesar_common.logging import get_logger

log = get_logger(__name__)


async def run_every(
    interval_s: float, action: Callable[[], Awaitable[Any]], name: str, *, first_after_s: float | None = None
) -> None:
    """Run ``action`` every ``interval_s`` seconds until cancelled.

    A failing pass (database or broker briefly away) is logged and the next one tries
    again: the loop must outlive any single error, or stranded jobs would silently stay
    stranded. ``first_after_s`` (default: one interval) delays the first pass; 0 runs it
    at once (a heartbeat should not wait a whole interval after start-up).
    """
    delay = interval_s if first_after_s is None else first_after_s
    task = asyncio.current_task()
    while True:
        await asyncio.sleep(delay)
        delay = interval_s
        try:
            await action()
        except Exception as exc:  # noqa: BLE001 - logged; the next pass retries
            log.warning("periodic task failed", task=name, error=repr(exc))
        if task is not None and task.cancelling():
            # A cancel arrived during the pass and a client library turned it into an
            # error (or swallowed it): stop anyway, or shutdown would wait forever.
            raise asyncio.CancelledError
