"""The two SSE streams as sequences of frames: replay first, then live events and heartbeats.

The caller subscribes to the hub *before* reading what it replays, so an event that
arrives during the read waits in the subscriber's queue; the :class:`Sequencer` then
drops whatever the replay already covered. No event falls between the two.

The frames are produced here and written by the route; the stream ends when the
subscriber is closed (slow client, server stopping), when the stream's time is up, or,
per job, after a final state.

A live event usually arrives before this api's projection (another queue, maybe another
replica) has written it. A client that hears SUCCESS fetches the results next, and they
are served from the read model, so a final state goes out only once the read model shows
it (:func:`read_model_settles`, bounded); earlier states go out at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from caesar_api.domain.projection import position_of
from caesar_api.push.adapters.history import JobHistory
from caesar_api.push.domain.resume import (
    Sequencer,
    StateEvent,
    job_frame,
    job_replay,
    user_frame,
    user_replay,
)
from caesar_api.push.domain.sse import KEEP_ALIVE
from caesar_api.push.service.hub import Subscriber
from caesar_common.jobstate import JobPosition, supersedes
from caesar_common.logging import get_logger

log = get_logger(__name__)

Settle = Callable[[StateEvent], Awaitable[None]]
"""Waits until a live event is visible in the read model (see :func:`read_model_settles`)."""


async def _settled_at_once(event: StateEvent) -> None:
    return None


def read_model_settles(
    history: JobHistory, wait_s: float, *, poll_s: float = 0.05, clock: Callable[[], float] = time.monotonic
) -> Settle:
    """A :data:`Settle` that re-reads the job until the event no longer moves it forward.

    Bounded by ``wait_s``: a read model that lags longer (its consumer is down) must not
    stop the stream, so the event is sent then anyway, and logged.
    """

    async def settle(event: StateEvent) -> None:
        deadline = clock() + wait_s
        while True:
            record = await history.job(event.job_id)
            if record is None or not supersedes(event.position, position_of(record)):
                return
            if clock() >= deadline:
                log.info("read model behind a pushed final state", job_id=event.job_id, state=event.state)
                return
            await asyncio.sleep(poll_s)

    return settle


@dataclass(frozen=True)
class StreamLimits:
    heartbeat_s: float
    duration_s: float


async def live(
    subscriber: Subscriber, limits: StreamLimits, clock: Callable[[], float] = time.monotonic
) -> AsyncIterator[StateEvent | None]:
    """Events from the hub, and ``None`` for each quiet ``heartbeat_s``; ends when the
    subscriber closes or the stream's time is up."""
    deadline = clock() + limits.duration_s
    while not subscriber.closed:
        left = deadline - clock()
        if left <= 0:
            return
        event = await subscriber.next(min(limits.heartbeat_s, left))
        if event is not None:
            yield event
        elif not subscriber.closed and clock() < deadline:
            yield None


async def job_frames(
    subscriber: Subscriber,
    job: Mapping[str, Any],
    after: JobPosition | None,
    limits: StreamLimits,
    clock: Callable[[], float] = time.monotonic,
    settle: Settle = _settled_at_once,
) -> AsyncIterator[bytes]:
    """The per-job stream: the current state (or the history after ``after``), then live
    states until a final one."""
    sequencer = Sequencer()
    if after is not None:
        sequencer.seed(str(job["_id"]), after)
    for event in job_replay(job, after):
        if sequencer.admit(event):
            yield job_frame(event)
            if event.is_final:
                return
    async for item in live(subscriber, limits, clock):
        if item is None:
            yield KEEP_ALIVE
        elif sequencer.admit(item):
            if item.is_final:
                await settle(item)
            yield job_frame(item)
            if item.is_final:
                return


async def user_frames(
    subscriber: Subscriber,
    replay: AsyncIterator[Mapping[str, Any]] | None,
    cutoff: datetime | None,
    limits: StreamLimits,
    clock: Callable[[], float] = time.monotonic,
    settle: Settle = _settled_at_once,
) -> AsyncIterator[bytes]:
    """The per-user stream: the states applied since ``cutoff`` (when resuming), then live ones."""
    sequencer = Sequencer()
    if replay is not None and cutoff is not None:
        async for job in replay:
            for event in user_replay([job], cutoff):
                if sequencer.admit(event):
                    yield user_frame(event)
            if subscriber.closed:
                return
    async for item in live(subscriber, limits, clock):
        if item is None:
            yield KEEP_ALIVE
        elif sequencer.admit(item):
            if item.is_final:
                await settle(item)
            yield user_frame(item)
