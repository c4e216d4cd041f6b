"""Recording a job event: add it to the timeline and move the job forward, in one write.

The timeline is read once, the entry and the transition it causes are decided from it,
and both are written by one update guarded on the position read and on the entry being
absent. A redelivered event finds its entry there and writes nothing (or only facts a
late entry completed); a lost race re-reads and decides again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from caesar_monitor import metrics
from caesar_monitor.domain.timeline import Advance, Entry, Progress, Step, advance, refresh
from caesar_monitor.service.ports import TimelineMove, TimelineStore

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
                metrics.observe_advance(app or (doc or {}).get("app") or "", change, entry)
            return change
    raise RuntimeError(f"timeline of job {job_id} kept changing under the monitor")


@dataclass(frozen=True)
class EventToRecord:
    """One job event as the monitor records it: its entry, facts and the step it makes."""

    job_id: str
    entry: Entry
    facts: Mapping[str, Any]
    step: Step | None
    app: str = ""


@dataclass
class _Planned:
    move: TimelineMove
    doc: dict[str, Any]
    entries: list[Mapping[str, Any]]
    events: list[EventToRecord] = field(default_factory=list)
    advances: list[tuple[str, Advance, Entry]] = field(default_factory=list)


def plan_timeline_moves(
    docs: Mapping[str, Mapping[str, Any]], events: Sequence[EventToRecord]
) -> list[_Planned]:
    """One move per timeline for a batch of events, each event decided on the timeline as
    the previous ones left it (as :func:`record_event` would, one at a time)."""
    planned: dict[str, _Planned] = {}
    for event in events:
        plan = planned.get(event.job_id)
        if plan is None:
            read = dict(docs.get(event.job_id) or {})
            plan = _Planned(
                TimelineMove(event.job_id, Progress.of(read or None).position),
                read,
                list(read.get("events") or []),
            )
            planned[event.job_id] = plan
        plan.events.append(event)
        held = Progress.of(plan.doc or None)
        fresh = all(e.get("event_id") != event.entry["event_id"] for e in plan.entries)
        changed: dict[str, Any] = {}
        if fresh:
            plan.entries.append(event.entry)
            plan.move.entries.append(event.entry)
            changed.update(event.facts)
        change = advance(held, event.step, plan.entries) if event.step is not None else None
        if change is not None:
            changed.update(change.fields)
            plan.advances.append((event.app or str(plan.doc.get("app") or ""), change, event.entry))
        else:
            changed.update(refresh(held, plan.entries) or {})
        plan.move.fields.update(changed)
        plan.doc.update(changed)
    return [p for p in planned.values() if p.move.fields or p.move.entries]


async def record_events_together(timelines: TimelineStore, events: Sequence[EventToRecord]) -> None:
    """Record a batch of events with one read and one write, however many timelines.

    A timeline that moved between the read and the write (another replica) gets its
    events recorded again one at a time from a fresh read.
    """
    if not events:
        return
    docs = await timelines.load_many({e.job_id for e in events})
    plans = plan_timeline_moves(docs, events)
    lost = await timelines.move_many([p.move for p in plans]) if plans else set()
    for plan in plans:
        if plan.move.job_id in lost:
            for event in plan.events:
                await record_event(
                    timelines, event.job_id, event.entry, event.facts, event.step, app=event.app
                )
        else:
            for app, change, entry in plan.advances:
                metrics.observe_advance(app, change, entry)
