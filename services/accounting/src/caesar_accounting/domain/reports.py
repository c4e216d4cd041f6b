"""Usage reports, summarised from per-job and per-file usage documents.

Reports are computed when read, from documents keyed by job and file id, so a fact can
only be counted once however many times its event was delivered. Jobs without a final
outcome are *active* (pending, queued or running). Jobs belong to the day they were
submitted, files to the day they were uploaded; a file counts towards storage until it
is deleted.

The job figures that existed before accounting kept attempts (``wall_s``, ``cpu_s``
...) keep their meaning: the counted outcome's attempt. What the other attempts used
(lost with their runner, superseded by a retry, handed back) is real usage too, so it
is reported beside them, never mixed in: ``attempts`` counts every attempt that ended,
``lost_attempts`` those that are not the counted outcome's (for an active job, every
attempt that ended so far), and ``cpu_s_lost_attempts``/``wall_s_lost_attempts`` their
seconds. Documents written before attempts were kept count their outcome's attempt only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from caesar_accounting.domain.usage import day_of, held_attempts
from caesar_common.jobstate import JobState

Doc = Mapping[str, Any]

OUTCOME_COUNTERS: dict[JobState, str] = {
    JobState.SUCCESS: "njobs_completed",
    JobState.FAILURE: "njobs_failed",
    JobState.TIMED_OUT: "njobs_timed_out",
    JobState.CANCELED: "njobs_canceled",
    JobState.ABORTED: "njobs_aborted",
}
UNKNOWN_DAY = "unknown"


@dataclass
class UsageSummary:
    """Totals over a set of jobs and files (one user, app, day, or everyone)."""

    njobs: int = 0
    njobs_completed: int = 0
    njobs_failed: int = 0
    njobs_timed_out: int = 0
    njobs_canceled: int = 0
    njobs_aborted: int = 0
    njobs_active: int = 0
    wall_s: float = 0.0
    wall_s_completed: float = 0.0
    cpu_s: float = 0.0
    peak_rss_bytes: int = 0
    output_bytes: int = 0
    nfiles: int = 0
    bytes_stored: int = 0
    attempts: int = 0
    lost_attempts: int = 0
    cpu_s_lost_attempts: float = 0.0
    wall_s_lost_attempts: float = 0.0

    def add_job(self, doc: Doc) -> None:
        self.njobs += 1
        outcome = doc.get("outcome")
        counted = int(doc.get("attempt") or 1) if outcome is not None else None
        attempts = held_attempts(doc)
        for number, usage in attempts.items():
            self.attempts += 1
            if number != counted:
                self.lost_attempts += 1
                self.cpu_s_lost_attempts += usage.cpu_s or 0.0
                self.wall_s_lost_attempts += usage.wall_s or 0.0
        if outcome is None or counted is None:
            self.njobs_active += 1
            return
        if counted not in attempts:
            self.attempts += 1  # a document from before attempts were kept
        counter = OUTCOME_COUNTERS[JobState(outcome)]
        setattr(self, counter, getattr(self, counter) + 1)
        # The outcome event's figures, as before; when it measured nothing (an ABORTED
        # closing a provisional failure), its attempt's earlier verdict did.
        own = attempts.get(counted)
        wall = _first_known(doc.get("wall_s"), own.wall_s if own else None)
        self.wall_s += wall
        if outcome == JobState.SUCCESS.value:
            self.wall_s_completed += wall
        self.cpu_s += _first_known(doc.get("cpu_s"), own.cpu_s if own else None)
        self.peak_rss_bytes = max(self.peak_rss_bytes, int(doc.get("peak_rss_bytes") or 0))
        self.output_bytes += int(doc.get("output_bytes") or 0)

    def add_file(self, doc: Doc) -> None:
        if doc.get("deleted_at") is None:
            self.nfiles += 1
            self.bytes_stored += int(doc.get("size_bytes") or 0)

    @property
    def avg_completed_wall_s(self) -> float:
        return self.wall_s_completed / self.njobs_completed if self.njobs_completed else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "avg_completed_wall_s": self.avg_completed_wall_s}


def _first_known(*values: Any) -> float:
    """The first value that is not ``None``, as seconds (0 when none is)."""
    return next((float(v) for v in values if v is not None), 0.0)


def unique(docs: Iterable[Doc]) -> list[Doc]:
    """One document per ``_id`` (the last seen wins): a fact never counts twice."""
    return list({doc["_id"]: doc for doc in docs}.values())


def job_day(doc: Doc) -> str:
    if doc.get("day"):
        return str(doc["day"])
    finished = doc.get("finished_at")
    return day_of(finished) if finished is not None else UNKNOWN_DAY


def summarise(jobs: Iterable[Doc], files: Iterable[Doc] = ()) -> UsageSummary:
    summary = UsageSummary()
    for job in unique(jobs):
        summary.add_job(job)
    for file in unique(files):
        summary.add_file(file)
    return summary


def _breakdown(jobs: list[Doc], files: list[Doc], *, by_day: bool) -> dict[str, dict[str, Any]]:
    groups: dict[str, UsageSummary] = {}
    for job in jobs:
        key = job_day(job) if by_day else str(job.get("app") or "")
        groups.setdefault(key, UsageSummary()).add_job(job)
    if by_day:
        for file in files:
            groups.setdefault(str(file.get("day") or UNKNOWN_DAY), UsageSummary()).add_file(file)
    return {key: groups[key].as_dict() for key in sorted(groups)}


def owner_report(owner: str, jobs: Iterable[Doc], files: Iterable[Doc]) -> dict[str, Any]:
    """One user's usage: totals, and the same figures per app and per day."""
    job_docs, file_docs = unique(jobs), unique(files)
    return {
        "owner": owner,
        "totals": summarise(job_docs, file_docs).as_dict(),
        "by_app": _breakdown(job_docs, file_docs, by_day=False),
        "by_day": _breakdown(job_docs, file_docs, by_day=True),
    }


def global_report(jobs: Iterable[Doc], files: Iterable[Doc]) -> dict[str, Any]:
    """Everyone's usage: number of users, totals and per-app figures."""
    job_docs, file_docs = unique(jobs), unique(files)
    owners = {d.get("owner") for d in job_docs} | {d.get("owner") for d in file_docs}
    owners.discard(None)
    return {
        "nusers": len(owners),
        "totals": summarise(job_docs, file_docs).as_dict(),
        "by_app": _breakdown(job_docs, file_docs, by_day=False),
    }
