"""Fakes of the monitor's timeline and runner stores (guarded writes, like the real ones)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from caesar_common.events import Envelope, RunnerHeartbeat
from caesar_common.jobstate import ACTIVE_STATES, JobPosition, JobState
from caesar_common.store import Document
from caesar_monitor.domain.liveness import RunnerReport
from caesar_monitor.domain.timeline import Entry, entry_sort_key
from caesar_monitor.service.ports import TimelineMove


class FakeTimelineStore:
    """Timelines in a dict; ``move`` is guarded on the held position like the real one."""

    def __init__(self) -> None:
        self.docs: dict[str, Document] = {}
        self.outbox: list[Envelope] = []
        """Events the watchdog put in an outbox (what the relay would publish)."""

    async def append(self, job_id: str, entry: Entry, fields: Mapping[str, Any]) -> bool:
        doc = self.docs.setdefault(job_id, {"_id": job_id, "events": [], "state": None})
        if any(e["event_id"] == entry["event_id"] for e in doc["events"]):
            return False
        doc["events"] = sorted([*doc["events"], dict(entry)], key=entry_sort_key)
        doc.update(fields)
        return True

    async def load(self, job_id: str) -> Document | None:
        doc = self.docs.get(job_id)
        found = copy.deepcopy(doc) if doc is not None else None
        # A real read yields with its answer on the way: a concurrent writer can change
        # the document before the reader acts on what it read.
        await asyncio.sleep(0)
        return found

    async def load_many(self, job_ids: Collection[str]) -> dict[str, Document]:
        return {j: copy.deepcopy(self.docs[j]) for j in job_ids if j in self.docs}

    async def move_many(self, moves: Sequence[TimelineMove]) -> set[str]:
        lost = set()
        for move in moves:
            doc = self.docs.get(move.job_id)
            if doc is None and move.held is None:
                doc = {"_id": move.job_id, "events": [], "state": None}
            present = {e["event_id"] for e in (doc or {}).get("events", [])}
            if not self._holds(doc, move.held) or present & {e["event_id"] for e in move.entries}:
                lost.add(move.job_id)
                continue
            assert doc is not None
            doc.update(copy.deepcopy(move.fields))
            doc["events"] = sorted([*doc["events"], *map(dict, move.entries)], key=entry_sort_key)
            self.docs[move.job_id] = doc
        return lost

    def _holds(self, doc: Document | None, held: JobPosition | None) -> bool:
        if doc is None:
            return False
        if held is None:
            return doc.get("state") is None
        return (doc.get("state"), doc.get("attempt"), doc.get("retryable")) == (
            held.state.value,
            held.attempt,
            held.retryable,
        )

    async def move(
        self,
        job_id: str,
        held: JobPosition | None,
        fields: Mapping[str, Any],
        *,
        entry: Entry | None = None,
        also: Document | None = None,
    ) -> bool:
        doc = self.docs.get(job_id)
        if doc is None and held is None:
            doc = self.docs.setdefault(job_id, {"_id": job_id, "events": [], "state": None})
        if not self._holds(doc, held):
            return False
        assert doc is not None
        if entry is not None and any(e["event_id"] == entry["event_id"] for e in doc["events"]):
            return False
        doc.update(copy.deepcopy(dict(fields)))
        if entry is not None:
            doc["events"] = sorted([*doc["events"], dict(entry)], key=entry_sort_key)
        for item in ((also or {}).get("$push", {}).get("outbox", {}) or {}).get("$each", []):
            self.outbox.append(Envelope.model_validate(item))
        return True

    async def executing(self) -> list[Document]:
        states = {s.value for s in ACTIVE_STATES}
        found = [copy.deepcopy(d) for d in self.docs.values() if d.get("state") in states]
        await asyncio.sleep(0)
        return found

    async def count_by_state(self) -> dict[JobState, int]:
        return {s: sum(1 for d in self.docs.values() if d.get("state") == s.value) for s in JobState}

    async def oldest_change_by_state(self, states: Collection[JobState]) -> dict[JobState, datetime]:
        oldest: dict[JobState, datetime] = {}
        for doc in self.docs.values():
            if doc.get("state") is None or doc.get("last_change") is None:
                continue
            state = JobState(doc["state"])
            if state in states and (state not in oldest or doc["last_change"] < oldest[state]):
                oldest[state] = doc["last_change"]
        return oldest

    async def entries(self, job_id: str) -> Sequence[Entry] | None:
        doc = self.docs.get(job_id)
        return None if doc is None else list(doc["events"])


class FakeRunnerStore:
    """The latest heartbeat per runner; ``record`` is guarded like the real one."""

    def __init__(self) -> None:
        self.docs: dict[str, Document] = {}

    async def report(self, runner_id: str) -> RunnerReport | None:
        doc = self.docs.get(runner_id)
        return None if doc is None else doc["report"]

    async def record(
        self, heartbeat: RunnerHeartbeat, report: RunnerReport, *, replaces: datetime | None
    ) -> bool:
        current = self.docs.get(heartbeat.runner_id)
        if (current["sent_at"] if current is not None else None) != replaces:
            return False
        self.docs[heartbeat.runner_id] = {
            "pool": heartbeat.pool,
            "sent_at": report.sent_at,
            "last_seen": report.last_seen,
            "slots_total": heartbeat.slots_total,
            "slots_free": heartbeat.slots_free,
            "report": report,
        }
        return True

    async def reports(self, runner_ids: Iterable[str]) -> dict[str, RunnerReport]:
        return {r: self.docs[r]["report"] for r in set(runner_ids) if r in self.docs}

    async def forget_silent(self, silent_since: datetime) -> int:
        gone = [key for key, doc in self.docs.items() if doc["last_seen"] < silent_since]
        for key in gone:
            del self.docs[key]
        return len(gone)

    async def slots_by_pool(self, alive_since: datetime) -> dict[str, tuple[int, int]]:
        slots: dict[str, tuple[int, int]] = {}
        for doc in self.docs.values():
            if doc["last_seen"] >= alive_since:
                total, free = slots.get(doc["pool"], (0, 0))
                slots[doc["pool"]] = (total + doc["slots_total"], free + doc["slots_free"])
        return slots

    async def heard_since(self, since: datetime) -> dict[str, tuple[str, datetime]]:
        return {k: (d["pool"], d["last_seen"]) for k, d in self.docs.items() if d["last_seen"] >= since}
