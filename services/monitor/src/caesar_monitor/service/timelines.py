"""Recording a job event: add it to the timeline and move the job forward, in one write.

The timeline is read once, the entry and the transition it causes are decided from it,
and both are written by one update guarded on the position read and on the entry being
absent. A redelivered event finds its entry there and writes nothing (or only facts a
late entry completed); a lost race re-reads and decides again.
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
    """Add ``entry`` (with ``facts``) and apply ``step``, if any; return the transition made.

    ``None`` when the step did not move the job (the facts of the held attempt are still
    brought up to date from the entries).
    """
    for _ in range(MAX_RACES):
        doc = await timelines.load(job_id)
        held = Progress.of(doc)
        entries = list((doc or {}).get("events") or [])
        fresh = all(e.get("event_id") != entry["event_id"] for e in entries)
        if fresh:
            entries.append(entry)
        change = advance(held, step, entries) if step is not None else None
        fields: dict[str, Any] = dict(facts) if fresh else {}
        if change is not None:
            fields.update(change.fields)
        else:
            # Not a move, but a late entry may still complete the held attempt's facts.
            fields.update(refresh(held, entries) or {})
        if not fresh and not fields:
            return None  # a duplicate with nothing left to do
        if await timelines.move(job_id, held.position, fields, entry=entry if fresh else None):
            if change is not None:
                metrics.observe_advance(app or (doc or {}).get("app") or "", change)
            return change
    raise RuntimeError(f"timeline of job {job_id} kept changing under the monitor")
