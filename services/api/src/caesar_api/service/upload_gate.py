"""Uploads in progress per user, in this api process.

Each upload holds a disk file, a worker thread and a connection while it streams; one
user must not be able to take them all. A user over the limit gets 429 with
``Retry-After`` at once, before any byte of the file is stored.

The slot also carries the user's lock for the last step of an upload (quota check,
rename, record): two uploads of one user that pass the quota check together cannot both
be kept beyond it. Both are per process: with several api replicas a user may have
this many uploads in each, and a quota may be overshot by what the other replicas
accept at the same instant.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from caesar_api.domain.errors import ApiError

RETRY_AFTER_S = 10


@dataclass
class _Owner:
    active: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def too_many_uploads(active: int, limit: int) -> ApiError:
    return ApiError(
        429,
        f"Too many uploads in progress: {active} of yours are streaming, the limit is {limit}; "
        "retry when one has finished",
        details={"uploads_in_progress": active, "limit_uploads": limit},
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


class UploadGate:
    """Counts each user's uploads in progress; entries go away with the last upload."""

    def __init__(self, max_per_user: int) -> None:
        self.max_per_user = max_per_user
        self._owners: dict[str, _Owner] = {}

    def active(self, owner: str) -> int:
        entry = self._owners.get(owner)
        return entry.active if entry is not None else 0

    @asynccontextmanager
    async def slot(self, owner: str) -> AsyncIterator[asyncio.Lock]:
        """Hold one of ``owner``'s upload slots; yields the owner's lock for the final step.

        Raises the 429 :class:`ApiError` when the owner already has ``max_per_user``.
        """
        entry = self._owners.setdefault(owner, _Owner())
        if entry.active >= self.max_per_user:
            raise too_many_uploads(entry.active, self.max_per_user)
        entry.active += 1
        try:
            yield entry.lock
        finally:
            entry.active -= 1
            if entry.active == 0:
                del self._owners[owner]
