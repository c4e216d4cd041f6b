"""The in-process fan-out of job states to the SSE streams open in this api process.

Every api process receives every ``job.state.*`` event (its own push queue) and hands it
to :meth:`PushHub.publish`, which offers it to each subscriber of the event's owner (and,
for a per-job stream, of that job). Offering never waits: each subscriber has a bounded
queue, and a subscriber whose queue is full (its client reads too slowly) is evicted at
once: closed, logged, counted, and its connection aborted, so one slow client can
neither hold the api's memory nor delay anyone else's events.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from caesar_api.push.domain.resume import StateEvent
from caesar_api.push.metrics import SSE_EVICTED, SSE_STREAMS
from caesar_common.logging import get_logger

log = get_logger(__name__)

SLOW_CLIENT = "slow client"
SERVER_STOPPING = "server stopping"


class TooManyStreams(Exception):
    """The owner already has the most streams open in this process."""


class HubClosed(Exception):
    """The process is stopping: no new streams."""


@dataclass(eq=False)
class Subscriber:
    """One open stream: its filter, its bounded queue, and why it was closed (if it was)."""

    owner: str
    job_id: str | None
    max_queued: int
    caller: str = ""
    """Whose stream it is, for the per-user cap (an admin may follow another owner's job)."""
    closed_reason: str | None = None
    on_close: Callable[[str], None] | None = None
    """Called once when the hub closes the stream (the route aborts a blocked write)."""
    _queue: deque[StateEvent] = field(default_factory=deque)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def wants(self, event: StateEvent) -> bool:
        return event.owner == self.owner and (self.job_id is None or event.job_id == self.job_id)

    def offer(self, event: StateEvent) -> bool:
        """Queue ``event``; ``False`` when the queue is full (the caller evicts)."""
        if len(self._queue) >= self.max_queued:
            return False
        self._queue.append(event)
        self._wake.set()
        return True

    def close(self, reason: str) -> None:
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        self._queue.clear()
        self._wake.set()
        if self.on_close is not None:
            self.on_close(reason)

    @property
    def closed(self) -> bool:
        return self.closed_reason is not None

    async def next(self, timeout_s: float) -> StateEvent | None:
        """The next queued event; ``None`` after ``timeout_s`` of quiet or once closed."""
        if not self._queue and not self.closed:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), max(timeout_s, 0.0))
            except TimeoutError:
                return None
        if self.closed or not self._queue:
            return None
        return self._queue.popleft()


class PushHub:
    """Subscribers of this process, by owner; one instance per api process."""

    def __init__(self, *, max_streams_per_owner: int, queue_size: int) -> None:
        self._max_streams = max_streams_per_owner
        self._queue_size = queue_size
        self._by_owner: dict[str, set[Subscriber]] = {}
        self._per_caller: dict[str, int] = {}
        self._closed = False

    def subscribe(self, owner: str, job_id: str | None = None, *, caller: str | None = None) -> Subscriber:
        """A new subscriber to ``owner``'s events (of one job, or all); :class:`TooManyStreams`
        when ``caller`` (default: the owner) has the most streams open, :class:`HubClosed`
        once the process is stopping."""
        if self._closed:
            raise HubClosed()
        caller = owner if caller is None else caller
        if self._per_caller.get(caller, 0) >= self._max_streams:
            raise TooManyStreams()
        subscriber = Subscriber(owner, job_id, self._queue_size, caller)
        self._by_owner.setdefault(owner, set()).add(subscriber)
        self._per_caller[caller] = self._per_caller.get(caller, 0) + 1
        SSE_STREAMS.inc()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscribers = self._by_owner.get(subscriber.owner)
        if subscribers is None or subscriber not in subscribers:
            return
        subscribers.discard(subscriber)
        if not subscribers:
            del self._by_owner[subscriber.owner]
        left = self._per_caller[subscriber.caller] - 1
        if left:
            self._per_caller[subscriber.caller] = left
        else:
            del self._per_caller[subscriber.caller]
        SSE_STREAMS.dec()

    def streams_of(self, caller: str) -> int:
        """Streams ``caller`` has open in this process."""
        return self._per_caller.get(caller, 0)

    def publish(self, event: StateEvent) -> int:
        """Offer ``event`` to its owner's subscribers; evict those that are full. How many took it."""
        taken = 0
        for subscriber in list(self._by_owner.get(event.owner, ())):
            if not subscriber.wants(event):
                continue
            if subscriber.offer(event):
                taken += 1
                continue
            log.warning(
                "SSE client too slow; stream closed", owner=subscriber.owner, job_id=subscriber.job_id
            )
            SSE_EVICTED.inc()
            self.unsubscribe(subscriber)
            subscriber.close(SLOW_CLIENT)
        return taken

    def close_all(self, reason: str = SERVER_STOPPING) -> None:
        """End every stream (the process stops, or its feed was interrupted); refuse new ones
        once stopping."""
        if reason == SERVER_STOPPING:
            self._closed = True
        for subscribers in list(self._by_owner.values()):
            for subscriber in list(subscribers):
                self.unsubscribe(subscriber)
                subscriber.close(reason)
