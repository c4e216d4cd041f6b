"""``WAIT``: block a job request until its phase changes or the wait ends.

The job is re-read at a modest interval (``CAESAR_UWS_WAIT_POLL_S``) until a deadline,
never in a tight loop; a :class:`ChangeSignal` (an in-process notification of job state
events, when the api has one) wakes the wait early, so a change is usually seen at once
and the interval only bounds how late a missed one is seen. The rules of when to block
and how long to sleep are pure functions, tested without a clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from vo_models.uws.types import ExecutionPhase

from caesar_api.uws.params import WaitRequest
from caesar_api.uws.phases import ACTIVE_PHASES


class ChangeSignal(Protocol):
    """Something that returns when a job may have changed, or after ``timeout_s``."""

    async def changed(self, job_id: str, timeout_s: float) -> None: ...


def should_block(current: ExecutionPhase, wait: WaitRequest) -> bool:
    """Block only for a positive wait, in an active phase, and (given ``PHASE``) still in it.

    UWS 1.1 section 2.2.1.2: a job in a final phase (or HELD) answers at once, and a
    client that names the phase it last saw gets an answer at once if the job has left it.
    """
    if wait.seconds <= 0 or current not in ACTIVE_PHASES:
        return False
    return wait.phase is None or wait.phase is current


def next_pause(now: float, deadline: float, poll_s: float) -> float:
    """How long to sleep before the next look: the interval, cut at the deadline (>= 0)."""
    return max(0.0, min(poll_s, deadline - now))


async def wait_for_change(
    read_phase: Callable[[], Awaitable[ExecutionPhase]],
    initial: ExecutionPhase,
    seconds: float,
    *,
    poll_s: float,
    job_id: str = "",
    signal: ChangeSignal | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ExecutionPhase:
    """The phase once it differs from ``initial``, or the last one read when time is up."""
    deadline = clock() + seconds
    phase = initial
    while True:
        pause = next_pause(clock(), deadline, poll_s)
        if pause <= 0:
            return phase
        if signal is not None and job_id:
            await signal.changed(job_id, pause)
        else:
            await asyncio.sleep(pause)
        phase = await read_phase()
        if phase is not initial:
            return phase
