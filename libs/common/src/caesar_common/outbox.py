"""Transactional outbox: events are stored in the document whose change caused them.

A producer writes its state change and the events it causes in *one* MongoDB update
(the ``outbox`` array plus the indexed ``outbox_pending`` flag), then hands those events
to the relay (fast path). The relay publishes with broker confirms and only then removes
the events; a periodic sweep re-publishes whatever a crash left behind, so an event is
published at least once and never lost. Consumers are idempotent, which makes
the rare duplicate harmless.

The flag, not the array, is what the sweep queries: a query on ``outbox.0`` scans the
whole collection, an indexed flag does not.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from prometheus_client import Counter, Gauge
from pymongo import ASCENDING, IndexModel, UpdateOne
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


OutboxItem = tuple[Envelope, str | None]
"""An event (``None``) or a command and its queue, as a producer appended it to an outbox."""


class Kick(Protocol):
    """Hands a document's freshly written events to the relay (see :meth:`OutboxRelay.kick`)."""

    def __call__(
        self,
        doc_id: Any,
        envelopes: Sequence[Envelope] = (),
        commands: Sequence[tuple[Envelope, str]] = (),
    ) -> None: ...


def clear_published(ids: Sequence[str]) -> list[Document]:
    """Pipeline update removing published events, and the flag once the outbox is empty.

    One write instead of a ``$pull`` and a guarded ``$unset``: events appended after the
    ones published stay, and so does the flag that lets the sweep find them.
    """
    return [
        {
            "$set": {
                "outbox": {
                    "$filter": {
                        "input": {"$ifNull": ["$outbox", []]},
                        "cond": {"$not": [{"$in": ["$$this.id", list(ids)]}]},
                    }
                }
            }
        },
        {"$set": {"outbox_pending": {"$cond": [{"$gt": [{"$size": "$outbox"}, 0]}, True, "$$REMOVE"]}}},
    ]


_Key = tuple[str, Any]


class OutboxRelay:
    """Publishes outbox events with confirms, then removes them from their documents.

    The fast path publishes the events a producer hands over in :meth:`kick` (already in
    memory: no read back), many documents at once with their confirms outstanding
    together, then clears them all with one ``bulk_write`` per collection. Kicks that
    arrive while a batch is out form the next batch, so the batch grows with the load
    and a lone event waits for nothing. Events of one document are published in order,
    and a document is never in two batches at once. The periodic sweep stays the safety
    net for whatever a crash or a broker outage left behind.
    """

    def __init__(
        self,
        bus: Bus,
        collections: Iterable[AsyncCollection[Document]],
        *,
        sweep_interval_s: float = 2.0,
        duplicate_publish: bool = False,
        batch_max: int = 256,
    ) -> None:
        self._bus = bus
        self._collections = {c.name: c for c in collections}
        self._sweep_interval_s = sweep_interval_s
        self._duplicate = duplicate_publish
        self._batch_max = batch_max
        # Waiting kicks in arrival order; ``None``: the events are not known, read them.
        self._waiting: dict[_Key, list[OutboxItem] | None] = {}
        self._in_flight: set[_Key] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def kick(
        self,
        collection: AsyncCollection[Document],
        doc_id: Any,
        envelopes: Sequence[Envelope] = (),
        commands: Sequence[tuple[Envelope, str]] = (),
    ) -> None:
        """Fast path: publish the events just written to a document, in the background.

        ``envelopes`` and ``commands`` are what the producer's write appended, in the order
        it appended them; without them the relay reads the document's outbox.
        """
        items: list[OutboxItem] | None = [(e, None) for e in envelopes] + [(e, q) for e, q in commands]
        key = (collection.name, doc_id)
        if not items:
            items = None
        if key in self._waiting:
            earlier = self._waiting[key]
            items = None if earlier is None or items is None else earlier + items
        self._waiting[key] = items
        self._idle.clear()
        if self._worker is None or self._worker.done():
            # An empty context: the worker serves every later kick, so it must not keep
            # the trace of the first one (each publish span is parented on its event).
            self._worker = asyncio.get_running_loop().create_task(
                self._publish_batches(), context=contextvars.Context()
            )
        self._wake.set()

    async def _publish_batches(self) -> None:
        while True:
            if not self._waiting:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            batch: list[tuple[_Key, list[OutboxItem] | None]] = []
            for key in list(self._waiting)[: self._batch_max]:
                batch.append((key, self._waiting.pop(key)))
            self._in_flight = {key for key, _ in batch}
            try:
                await self._publish_batch(batch)
            except Exception as exc:  # noqa: BLE001 - the sweep retries whatever is left
                log.warning("outbox batch not cleared; the sweep will retry", error=repr(exc))
            finally:
                self._in_flight = set()

    async def _publish_batch(self, batch: Sequence[tuple[_Key, list[OutboxItem] | None]]) -> None:
        results = await asyncio.gather(
            *(self._publish_kicked(key, items) for key, items in batch), return_exceptions=True
        )
        clears: dict[str, list[UpdateOne]] = {}
        for (key, items), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                log.warning(
                    "outbox publish failed; the sweep will retry", doc=str(key[1]), error=repr(result)
                )
            elif items is not None:
                ids = [envelope.id for envelope, _ in items]
                clears.setdefault(key[0], []).append(UpdateOne({"_id": key[1]}, clear_published(ids)))
        for name, operations in clears.items():
            await self._collections[name].bulk_write(operations, ordered=False)

    async def _publish_kicked(self, key: _Key, items: list[OutboxItem] | None) -> None:
        if items is None:
            await self.publish_document(self._collections[key[0]], key[1])
            return
        for envelope, to_queue in items:
            await self._publish(envelope, to_queue)

    async def _publish(self, envelope: Envelope, to_queue: str | None) -> None:
        await self._bus.publish(envelope, to_queue=to_queue)
        if self._duplicate:
            await self._bus.publish(envelope, to_queue=to_queue)

    async def publish_document(self, collection: AsyncCollection[Document], doc_id: Any) -> int:
        """Publish every pending event of one document, in order; return how many."""
        doc = await collection.find_one({"_id": doc_id}, {"outbox": 1})
        items: list[Document] = (doc or {}).get("outbox") or []
        if doc is None:
            return 0
        published: list[str] = []
        for item in items:
            to_queue = item.pop("to_queue", None)
            envelope = Envelope.model_validate(item)
            await self._publish(envelope, to_queue)
            published.append(envelope.id)
        await collection.update_one({"_id": doc_id}, clear_published(published))
        return len(published)

    async def sweep_once(self, *, limit: int = 500) -> int:
        """Publish what is left in every outbox; return the number of events published."""
        total = 0
        for collection in self._collections.values():
            ids = [d["_id"] async for d in collection.find({"outbox_pending": True}, {"_id": 1}).limit(limit)]
            OUTBOX_PENDING.labels(collection.name).set(len(ids))
            for doc_id in ids:
                key = (collection.name, doc_id)
                if key in self._in_flight or key in self._waiting:
                    continue  # the fast path has it
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
        """Stop sweeping, finish the fast path's batches and publish what remains (SIGTERM path)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=timeout_s)
        except TimeoutError:
            log.warning("outbox fast path still busy at shutdown")
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
        self._waiting.clear()
        try:
            await asyncio.wait_for(self.sweep_once(), timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001 - what is left is published after restart
            log.warning("outbox not flushed at shutdown", error=repr(exc))
