"""Deliveries from the projection's batches: the competing consumer, so one replica per event.

Runs right after the projection wrote a batch: events whose owners have no hook cost one
indexed read of the ``webhooks`` collection and nothing else; the others one read of
their jobs and one unordered insert whose duplicates are ignored. If it fails, the
batch fails and the bus hands its events one by one to the same handlers again: the
projection changes nothing the second time, and the deliveries are made then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from caesar_api.push.domain.hooks import ShownState, hook_matches, plan_deliveries
from caesar_api.push.domain.resume import is_shown
from caesar_common.events import JobStateChanged
from caesar_common.store import Document


class HookFinder(Protocol):
    async def of_owners(self, owners: Iterable[str]) -> list[Document]: ...


class DeliveryWriter(Protocol):
    async def add_many(self, records: Sequence[Document]) -> int: ...


class JobReader(Protocol):
    async def jobs(self, job_ids: Iterable[str]) -> dict[str, Document]: ...


async def create_deliveries(
    events: Sequence[JobStateChanged],
    *,
    hooks: HookFinder,
    deliveries: DeliveryWriter,
    jobs: JobReader,
    now: datetime,
    render: Callable[[Mapping[str, Any]], Mapping[str, Any]],
) -> int:
    """Create the deliveries the (already projected) ``events`` call for; how many were new."""
    shown = [
        ShownState(e.job_id, e.owner, e.attempt, e.state.value, e.changed_at) for e in events if is_shown(e)
    ]
    if not shown:
        return 0
    found = await hooks.of_owners(e.owner for e in shown)
    wanted = [
        e for e in shown if any(h["owner"] == e.owner and hook_matches(h, e.job_id, e.state) for h in found)
    ]
    if not wanted:
        return 0
    records = await jobs.jobs(e.job_id for e in wanted)
    return await deliveries.add_many(plan_deliveries(wanted, found, records, now, render))
