"""Transactional outbox: events are stored in the document whose change caused them.

A producer writes its state change and the events it causes in *one* MongoDB update
(the ``outbox`` array plus the indexed ``outbox_pending`` flag), then asks the relay to
publish right away (fast path). The relay publishes with broker confirms and only then
removes the events; a periodic sweep re-publishes whatever a crash left behind, so an
event is published at least once and never lost. Consumers are idempotent, which makes
the rare duplicate harmless.

The flag, not the array, is what the sweep queries: a query on ``outbox.0`` scans the
whole collection, an indexed flag does not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import Counter, Gauge
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from caesar_common.bus import Bus
from caesar_common.events import Envelope, Message
from caesar_common.logging import get_logger
from caesar_common.telemetry import current_trace_carrier

log = get_logger(__name__)

OUTBOX_PENDING = Gauge(
    "caesar_outbox_pending_documents",
    "Documents whose outbox still holds unpublished events",
    ["collection"],
)

OUTBOX_FAILURES = Counter(
    "caesar_outbox_publish_failures_total",
    "Outbox documents the sweep could not publish while the broker was reachable",
    ["collection"],
)

OUTBOX_INDEX = IndexModel([("outbox_pending", ASCENDING)], sparse=True, name="outbox_pending")

Document = dict[str, Any]


def envelope_for(message: Message, source: str) -> Envelope:
    """Wrap a message, capturing the *current* trace context for later publishing."""
    return Envelope.wrap(message, source, current_trace_carrier())


def _stored(envelope: Envelope, to_queue: str | None) -> Document:
    doc = envelope.model_dump(mode="json")
    if to_queue is not None:
        doc["to_queue"] = to_queue
    return doc


def outbox_fields(envelopes: Sequence[Envelope], to_queue: str | None = None) -> Document:
    """Fields for a new document that is inserted together with its events."""
    return {"outbox": [_stored(e, to_queue) for e in envelopes], "outbox_pending": True}


def outbox_update(
    envelopes: Sequence[Envelope], *, commands: Sequence[tuple[Envelope, str]] = ()
) -> Document:
    """Update operators appending events (and commands to queues) to a document's outbox.

    Merge the result into the update that changes the document's state, so both are
    written atomically.
    """
    items = [_stored(e, None) for e in envelopes] + [_stored(e, q) for e, q in commands]
    return {"$push": {"outbox": {"$each": items}}, "$set": {"outbox_pending": True}}


def merge_updates(*updates: Document) -> Document:
    """Combine update documents operator by operator (``$set`` with ``$set`` ...).

    Two ``$push`` to the same field (e.g. two :func:`outbox_update` results) are
    concatenated, never overwritten: a later one must not silently drop earlier events.
    """
    merged: Document = {}
    for update in updates:
        for op, fields in update.items():
            target = merged.setdefault(op, {})
            for name, value in fields.items():
                if op == "$push" and name in target:
                    value = _concat_push(target[name], value)
                target[name] = value
    return merged


def _concat_push(first: Any, second: Any) -> Document:
    def each(value: Any) -> Document:
        return value if isinstance(value, dict) and "$each" in value else {"$each": [value]}

    a, b = each(first), each(second)
    if {k: v for k, v in a.items() if k != "$each"} != {k: v for k, v in b.items() if k != "$each"}:
        raise ValueError("cannot merge two $push of one field with different modifiers")
    return {**a, "$each": [*a["$each"], *b["$each"]]}


class OutboxRelay:
    """Publishes outbox events with confirms, then removes them from their documents."""

    def __init__(
        self,
        bus: Bus,
        collections: Iterable[AsyncCollection[Document]],
        *,
        sweep_interval_s: float = 2.0,
        duplicate_publish: bool = False,
    ) -> None:
        self._bus = bus
        self._collections = {c.name: c for c in collections}
        self._sweep_interval_s = sweep_interval_s
        self._duplicate = duplicate_publish
        self._running: dict[tuple[str, Any], asyncio.Task[None]] = {}
        self._dirty: set[tuple[str, Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def kick(self, collection: AsyncCollection[Document], doc_id: Any) -> None:
        """Fast path: publish a document's events now, in the background."""
        key = (collection.name, doc_id)
        if key in self._running:
            self._dirty.add(key)
            return
        task = asyncio.get_running_loop().create_task(self._drain(key))
        self._running[key] = task

    async def _drain(self, key: tuple[str, Any]) -> None:
        try:
            while True:
                self._dirty.discard(key)
                try:
                    await self.publish_document(self._collections[key[0]], key[1])
                except Exception as exc:  # noqa: BLE001 - the sweep retries
                    log.warning(
                        "outbox publish failed; the sweep will retry",
                        doc=str(key[1]),
                        error=repr(exc),
                    )
                    return
                if key not in self._dirty:
                    return
        finally:
            self._running.pop(key, None)

    async def publish_document(self, collection: AsyncCollection[Document], doc_id: Any) -> int:
        """Publish every pending event of one document, in order; return how many."""
        doc = await collection.find_one({"_id": doc_id}, {"outbox": 1})
        items: list[Document] = (doc or {}).get("outbox") or []
        published: list[str] = []
        for item in items:
            to_queue = item.pop("to_queue", None)
            envelope = Envelope.model_validate(item)
            await self._bus.publish(envelope, to_queue=to_queue)
            if self._duplicate:
                await self._bus.publish(envelope, to_queue=to_queue)
            published.append(envelope.id)
        if published:
            await collection.update_one({"_id": doc_id}, {"$pull": {"outbox": {"id": {"$in": published}}}})
        await collection.update_one(
            {"_id": doc_id, "outbox_pending": True, "outbox": {"$size": 0}},
            {"$unset": {"outbox_pending": ""}},
        )
        return len(published)

    async def sweep_once(self, *, limit: int = 500) -> int:
        """Publish what is left in every outbox; return the number of events published."""
        total = 0
        for collection in self._collections.values():
            ids = [d["_id"] async for d in collection.find({"outbox_pending": True}, {"_id": 1}).limit(limit)]
            OUTBOX_PENDING.labels(collection.name).set(len(ids))
            for doc_id in ids:
                if (collection.name, doc_id) in self._running:
                    continue
                try:
                    total += await self.publish_document(collection, doc_id)
                except Exception as exc:
                    if not self._bus.is_connected:
                        raise  # the broker is away: the whole sweep backs off
                    # One bad document (an event that no longer validates, a command the
                    # broker keeps returning) must not hold back every other outbox.
                    OUTBOX_FAILURES.labels(collection.name).inc()
                    log.error("outbox document not published; skipped", doc=str(doc_id), error=repr(exc))
        return total

    async def pending(self) -> int:
        """Documents with unpublished events (used by tests and shutdown)."""
        count = 0
        for collection in self._collections.values():
            count += await collection.count_documents({"outbox_pending": True})
        return count

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        """Sweep periodically; while the broker or database fails, back off up to 10 s."""
        delay = self._sweep_interval_s
        while True:
            await asyncio.sleep(delay)
            try:
                await self.sweep_once()
            except Exception as exc:  # noqa: BLE001 - keep sweeping whatever happens
                delay = min(max(delay, self._sweep_interval_s) * 2, 10.0)
                log.warning("outbox sweep failed", error=repr(exc), retry_in_s=delay)
            else:
                delay = self._sweep_interval_s

    async def flush(self, *, timeout_s: float = 10.0) -> None:
        """Stop sweeping and publish what remains (SIGTERM path)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._running:
            await asyncio.wait(list(self._running.values()), timeout=timeout_s)
        try:
            await asyncio.wait_for(self.sweep_once(), timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001 - what is left is published after restart
            log.warning("outbox not flushed at shutdown", error=repr(exc))
