"""What the runner's use cases need from the outside world, as interfaces.

The MongoDB repository (:class:`caesar_runner.adapters.claims.Claims`) implements
:class:`ClaimStore`; unit tests pass an in-memory fake. ``Kick`` hands the outbox
relay the events a write appended, to
publish a claim's pending events now; ``Publish`` sends a message straight to the bus
(heartbeats: liveness, not state, so no outbox).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

from caesar_common.events import Envelope
from caesar_common.outbox import Kick as Kick
from caesar_common.store import Document
from caesar_runner.domain.claim import Fence

Publish = Callable[[Envelope], Awaitable[None]]


class PausableConsumer(Protocol):
    """The command queue's consumer: paused while every slot is taken."""

    async def set_prefetch(self, prefetch: int) -> None: ...

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...


class ClaimStore(Protocol):
    """One claim per attempt; every change is guarded by the claim's state and carries its events."""

    async def claim(self, doc: Document, events: Sequence[Envelope]) -> bool:
        """Insert the claim with its events; ``False`` if the attempt is claimed already."""
        ...

    async def update(
        self, cid: str, expect_state: str, changes: dict[str, Any], events: Sequence[Envelope]
    ) -> bool:
        """Apply ``changes`` with ``events`` only if the claim is still in ``expect_state``."""
        ...

    async def open_claims(self, runner_id: str, pool: str | None = None) -> list[Document]: ...

    async def take_fence(self, job_id: str, attempt: int) -> Fence:
        """A retry takes the job's fence unless an earlier attempt closed it; the fence after."""
        ...

    async def close_fence(
        self, job_id: str, attempt: int, runner_id: str, events: Sequence[Envelope]
    ) -> Fence:
        """A final outcome closes the fence, its events in the fence's outbox in the same
        write, unless a later attempt took it; the fence after."""
        ...

    async def record_cancel(self, job_id: str) -> None: ...

    async def unpublished(self, runner_id: str) -> list[tuple[str, int]]:
        """``(job_id, attempt)`` of this runner's claims whose events are not published yet."""
        ...

    async def is_canceled(self, job_id: str) -> bool: ...

    async def canceled_among(self, job_ids: Iterable[str]) -> set[str]: ...
