"""Group commit: concurrent inserts into one collection go out as one ``insert_many``.

Each insert on the development database is a journaled commit, and a commit costs about
the same for one document as for a hundred, so concurrent writers (the api's request
handlers, a consumer's parallel deliveries) share one. There is no fixed window: while
one batch is being written the next one gathers, so a lone insert goes out at once and a
burst is written in a handful of round trips. Every caller still returns only once its
own document is durable, and learns its own outcome: a duplicate ``_id`` raises
:class:`~pymongo.errors.DuplicateKeyError` for that caller alone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

from caesar_common.store import DUPLICATE_KEY, Document


@dataclass
class _Pending:
    documents: list[Document] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class GroupInserter:
    """Inserts documents into ``collection``, many concurrent callers per command."""

    def __init__(self, collection: AsyncCollection[Document], *, batch_max: int = 500) -> None:
        self.collection = collection
        self._batch_max = batch_max
        self._pending = _Pending()
        self._writer: asyncio.Task[None] | None = None

    async def insert(self, document: Document) -> None:
        """Insert ``document``; returns once it is written, raises what its insert raised."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.documents.append(document)
        self._pending.waiters.append(done)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_batches())
        await done

    async def _write_batches(self) -> None:
        batch = _Pending()
        try:
            while self._pending.documents:
                batch, self._pending = self._pending, _Pending()
                for start in range(0, len(batch.documents), self._batch_max):
                    end = start + self._batch_max
                    await self._write(batch.documents[start:end], batch.waiters[start:end])
        except asyncio.CancelledError:
            # Shutting down: whoever still waits hears it instead of waiting forever.
            for waiter in [*batch.waiters, *self._pending.waiters]:
                waiter.cancel()
            raise

    async def _write(self, documents: list[Document], waiters: list[asyncio.Future[None]]) -> None:
        failures: dict[int, BaseException] = {}
        try:
            # Unordered: one caller's duplicate must not stop the others' documents.
            await self.collection.insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                index, code = int(error["index"]), int(error.get("code", 0))
                failure_type = DuplicateKeyError if code == DUPLICATE_KEY else WriteError
                failures[index] = failure_type(str(error.get("errmsg", "write error")), code, error)
            if exc.details.get("writeConcernErrors"):
                # Durability of the whole batch is in doubt: nobody may report success.
                failures = {i: exc for i in range(len(documents))}
        except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
            failures = {i: exc for i in range(len(documents))}
        for index, waiter in enumerate(waiters):
            if waiter.done():
                continue  # the caller was cancelled; its document was written or not, as above
            if index in failures:
                waiter.set_exception(failures[index])
            else:
                waiter.set_result(None)
