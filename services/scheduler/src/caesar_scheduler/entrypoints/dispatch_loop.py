"""When the dispatch round runs: as soon as something is woken, else every interval.

Events that may free a slot or add a waiting job wake the loop at once (low latency);
the interval is the safety net for what no event announces (a retry's backoff ending, a
runner timing out). Unlike :func:`caesar_common.periodic.run_every` it can be woken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from caesar_common.logging import get_logger

log = get_logger(__name__)


class DispatchTrigger:
    """Runs a dispatch round after each :meth:`wake`, and at least every ``interval_s`` seconds."""

    def __init__(self, *, interval_s: float = 1.0) -> None:
        self._interval_s = interval_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self, round_: Callable[[], Awaitable[Any]]) -> None:
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval_s)
            self._wake.clear()
            try:
                await round_()
            except Exception as exc:  # noqa: BLE001 - the next round retries
                log.warning("dispatch round failed", error=repr(exc))
