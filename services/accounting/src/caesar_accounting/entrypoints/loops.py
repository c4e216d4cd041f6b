"""Periodic background work, robust to transient errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from caesar_common.logging import get_logger

log = get_logger(__name__)


async def every(interval_s: float, action: Callable[[], Awaitable[Any]], name: str) -> None:
    """Run ``action`` every ``interval_s`` seconds until cancelled; one failure is logged."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await action()
        except Exception as exc:  # noqa: BLE001 - logged; the next pass retries
            log.warning("periodic task failed", task=name, error=repr(exc))
