"""MongoDB access through PyMongo's native async API.

Each service owns one database and declares the indexes behind every query it makes;
they are created at start-up so no query ever scans a collection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

Document = dict[str, Any]


def mongo_client(url: str, **kwargs: Any) -> AsyncMongoClient[Document]:
    """A client with timezone-aware datetimes and a short server selection timeout."""
    options: dict[str, Any] = {"tz_aware": True, "serverSelectionTimeoutMS": 5000}
    options.update(kwargs)
    return AsyncMongoClient(url, **options)


async def ensure_indexes(
    db: AsyncDatabase[Document], indexes: Mapping[str, Sequence[IndexModel]]
) -> None:
    for collection, models in indexes.items():
        if models:
            await db[collection].create_indexes(list(models))


async def ping(db: AsyncDatabase[Document]) -> bool:
    try:
        await db.command("ping")
    except Exception:  # noqa: BLE001 - readiness only reports
        return False
    return True
