"""MongoDB access through PyMongo's native async API.

Each service owns one database and declares the indexes behind every query it makes;
they are created at start-up so no query ever scans a collection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import Counter
from pymongo import AsyncMongoClient, IndexModel, UpdateOne, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

Document = dict[str, Any]

DUPLICATE_KEY = 11000

BY_ID = "_id_"
"""Hint for a write guarded on ``_id`` plus other fields: look the document up by ``_id``.

Without it the development database may answer ``{_id, state, ...}`` through an index on
``state`` (or ``owner``) and scan every job in that state (16 ms per update at 3,000
jobs, growing with the collection, instead of 3 ms). Real MongoDB plans these by ``_id``
anyway; the hint costs it nothing.
"""

DB_COMMANDS = Counter(
    "caesar_db_commands_total",
    "Commands this process sent to the database, by command name",
    ["command"],
)


DB_COMMAND_SECONDS = Counter(
    "caesar_db_command_seconds",
    "Time spent waiting for the database, by command and collection (round trip as the driver sees it)",
    ["command", "collection"],
)


class CommandCounter(monitoring.CommandListener):
    """Counts every command a client sends, by name (``insert``, ``update``, ``find`` ...),
    and the time its answer took, by name and collection.

    Registered on every client :func:`mongo_client` makes, so each service exports its own
    ``caesar_db_commands_total{command}`` and ``caesar_db_command_seconds_total{command,
    collection}`` (``bench/bench_pipeline.py`` reads them per job: which commands cost the
    database its time). The cost is a few dict operations and counter increments per
    command: PyMongo builds the command events anyway, because the OpenTelemetry
    instrumentation registers a global command listener. Command and collection names are
    small fixed sets, so the labels stay bounded.
    """

    def __init__(self, counter: Counter = DB_COMMANDS, seconds: Counter = DB_COMMAND_SECONDS) -> None:
        self._counter = counter
        self._seconds = seconds
        self._children: dict[str, Counter] = {}
        self._timers: dict[tuple[str, str], Counter] = {}
        self._in_flight: dict[int, tuple[str, str]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        child = self._children.get(name)
        if child is None:
            child = self._children[name] = self._counter.labels(name)
        child.inc()
        target = event.command.get(name)
        self._in_flight[event.request_id] = (name, target if isinstance(target, str) else "")

    def _finished(self, request_id: int, duration_micros: int) -> None:
        key = self._in_flight.pop(request_id, None)
        if key is None:
            return
        timer = self._timers.get(key)
        if timer is None:
            timer = self._timers[key] = self._seconds.labels(*key)
        timer.inc(duration_micros / 1e6)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._finished(event.request_id, event.duration_micros)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._finished(event.request_id, event.duration_micros)


COMMAND_COUNTER = CommandCounter()


def mongo_client(url: str, **kwargs: Any) -> AsyncMongoClient[Document]:
    """A client with journaled writes, timezone-aware datetimes and a short selection timeout.

    ``journal=True``: a write is acknowledged only once it is in the journal. An
    acknowledged state change (a job accepted, an attempt finished) must survive a
    database crash, or its event would be lost with it; the chaos test that kills the
    database mid-burst found exactly that without it.

    Every client counts its commands (:class:`CommandCounter`); listeners passed in
    ``event_listeners`` are added to it.
    """
    options: dict[str, Any] = {"tz_aware": True, "serverSelectionTimeoutMS": 5000, "journal": True}
    options.update(kwargs)
    options["event_listeners"] = [COMMAND_COUNTER, *options.get("event_listeners", ())]
    return AsyncMongoClient(url, **options)


async def ensure_indexes(db: AsyncDatabase[Document], indexes: Mapping[str, Sequence[IndexModel]]) -> None:
    for collection, models in indexes.items():
        if models:
            await db[collection].create_indexes(list(models))


async def ping(db: AsyncDatabase[Document]) -> bool:
    try:
        await db.command("ping")
    except Exception:  # noqa: BLE001 - readiness only reports
        return False
    return True


async def guarded_upsert(collection: AsyncCollection[Document], query: Document, update: Document) -> bool:
    """Apply ``update`` to the document ``query`` matches, creating it if missing.

    ``query`` is ``{"_id": ...}`` plus a guard. When the document exists but the guard
    does not match, the upsert's insert collides on ``_id``; that collision means "the
    guard said no", so it is reported as ``False``. A collision can also come from a
    concurrent first insert of the same document, so the update is retried once without
    upsert to give the guard its say on the document that now exists.
    """
    try:
        result = await collection.update_one(query, update, upsert=True, hint=BY_ID)
    except DuplicateKeyError:
        update = {op: fields for op, fields in update.items() if op != "$setOnInsert"}
        result = await collection.update_one(query, update, hint=BY_ID)
        return result.modified_count == 1
    return _changed(result.modified_count, result.upserted_id)


async def guarded_bulk_upserts(
    collection: AsyncCollection[Document], operations: list[UpdateOne]
) -> set[int]:
    """Run guarded upserts as one unordered ``bulk_write``; the indexes whose guard did not hold.

    As in :func:`guarded_upsert`, a guard that no longer holds on an existing document makes
    its upsert collide on ``_id``, so the bulk's duplicate-key write errors name exactly the
    operations that lost, with no read afterwards. Any other error is raised.
    """
    try:
        await collection.bulk_write(operations, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors) or exc.details.get("writeConcernErrors"):
            raise
        return {int(e["index"]) for e in errors}
    return set()


def _changed(modified: int, upserted_id: Any) -> bool:
    return modified == 1 or upserted_id is not None
