"""Retrying the runner's own writes while the database is away.

A claim write that fails once must not lose what it records: a terminal state never
written leaves a finished job RUNNING until the monitor calls it TIMED-OUT an hour later,
and a RUNNING never written means a job nobody can see. So writes are retried with
capped exponential backoff; only RUNNING has a deadline, past which the job is killed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from caesar_common.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")

FIRST_DELAY_S = 0.25
MAX_DELAY_S = 10.0


async def retry_until_done(
    write: Callable[[], Awaitable[T]],
    *,
    what: str,
    job_id: str,
    give_up_after_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run ``write`` until it returns without raising; its result is returned.

    With ``give_up_after_s``, raise :class:`TimeoutError` once that much time has passed
    since the first try; without it, retry for as long as it takes (the task stays
    visible in the runner's heartbeats meanwhile, so the monitor does not give up on it).
    """
    started = clock()
    delay = FIRST_DELAY_S
    tries = 0
    while True:
        tries += 1
        try:
            return await write()
        except Exception as exc:
            if give_up_after_s is not None and clock() - started + delay > give_up_after_s:
                log.error(
                    "write not recorded; giving up", what=what, job_id=job_id, tries=tries, error=repr(exc)
                )
                raise TimeoutError(f"{what} not recorded after {tries} tries") from exc
            log.warning(
                "write failed; retrying",
                what=what,
                job_id=job_id,
                tries=tries,
                retry_in_s=delay,
                error=repr(exc),
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY_S)
