"""Recording a job event: append it to the timeline, then move the job forward.

Both steps are idempotent and run again on redelivery, so a crash between them loses
nothing: the entry is a no-op the second time, and the move decides again from the
entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from caesar_monitor import metrics
from caesar_monitor.domain.timeline import Advance, Entry, Progress, Step, advance, refresh
from caesar_monitor.service.ports import TimelineStore

# Concurrent writers to one timeline are rare (two events of one job in one prefetch
# window); a handful of re-reads settles any race, and failing loudly beats looping.
MAX_RACES = 8


async def record_event(
    timelines: TimelineStore,
    job_id: str,
    entry: Entry,
    facts: Mapping[str, Any],
    step: Step | None,
    *,
    app: str = "",
) -> Advance | None:
    """Append ``entry`` (with ``facts``), then apply ``step`` if there is one."""
    await timelines.append(job_id, entry, facts)
    if step is None:
        return None
    return await apply_step(timelines, job_id, step, app=app)


async def apply_step(timelines: TimelineStore, job_id: str, step: Step, *, app: str = "") -> Advance | None:
    """Move the job to ``step`` if it supersedes what the timeline holds.

    Returns the applied transition, or ``None`` when the step did not move the job (the
    facts of the held attempt are still brought up to date from the entries).

    find_one + an update guarded on the position read (never find_one_and_update,
    which secantusdb runs as a scan); a lost race re-reads and decides again.
    """
    for _ in range(MAX_RACES):
        doc = await timelines.load(job_id)
        held = Progress.of(doc)
        entries = (doc or {}).get("events") or []
        change = advance(held, step, entries)
        if change is None:
            # Not a move, but a late entry may still complete the held attempt's facts.
            facts = refresh(held, entries)
            if facts is None or await timelines.move(job_id, held.position, facts):
                return None
            continue
        if await timelines.move(job_id, held.position, change.fields):
            metrics.observe_advance(app or (doc or {}).get("app") or "", change)
            return change
    raise RuntimeError(f"timeline of job {job_id} kept changing under the monitor")
