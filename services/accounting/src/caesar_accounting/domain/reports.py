"""Usage reports, summarised from per-job and per-file usage documents.

Reports are computed when read, from documents keyed by job and file id, so a fact can
only be counted once however many times its event was delivered. Jobs without a final
outcome are *active*: ``njobs_running`` once the api's position says a runner started
them (STARTED or RUNNING), ``njobs_pending`` before (accepted, queued or held). Jobs
belong to the day they were submitted, files to the day they were uploaded; a file counts
towards storage until it is deleted, and belongs to a user and a day but to no app.

The job figures that existed before accounting kept attempts (``wall_s``, ``cpu_s``
...) keep their meaning: the counted outcome's attempt. What the other attempts used
(lost with their runner, superseded by a retry, handed back) is real usage too, so it
is reported beside them, never mixed in: ``attempts`` counts every attempt that ended,
``lost_attempts`` those that are not the counted outcome's (for an active job, every
attempt that ended so far), and ``cpu_s_lost_attempts``/``wall_s_lost_attempts`` their
seconds. Documents written before attempts were kept count their outcome's attempt only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from caesar_accounting.domain.usage import day_of, held_attempts, held_position
from caesar_common.jobstate import ACTIVE_STATES, JobState
from caesar_common.usage_query import UsageQuery

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
    njobs_pending: int = 0
    njobs_running: int = 0
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
            if _has_started(doc):
                self.njobs_running += 1
            else:
                self.njobs_pending += 1
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


def _has_started(doc: Doc) -> bool:
    """Whether an active job is where the api shows it running (STARTED or RUNNING).

    A retry waiting for its turn is back to QUEUED, as the api shows it; a job whose
    only event so far is its submission has no position and has not started.
    """
    position = held_position(doc)
    return position is not None and position.state in ACTIVE_STATES


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


def file_day(doc: Doc) -> str:
    return str(doc.get("day") or UNKNOWN_DAY)


def _owner(doc: Doc) -> str:
    return str(doc.get("owner") or "")


def _app(doc: Doc) -> str:
    return str(doc.get("app") or "")


JOB_GROUPS: dict[str, Callable[[Doc], str]] = {"user": _owner, "app": _app, "day": job_day}
"""The group a job belongs to, per grouping (``caesar_common.usage_query.GROUP_BY``)."""
FILE_GROUPS: dict[str, Callable[[Doc], str]] = {"user": _owner, "day": file_day}
"""The same for files, which belong to no app: per app, rows count jobs only."""


def summarise(jobs: Iterable[Doc], files: Iterable[Doc] = ()) -> UsageSummary:
    summary = UsageSummary()
    for job in unique(jobs):
        summary.add_job(job)
    for file in unique(files):
        summary.add_file(file)
    return summary


def grouped(jobs: Iterable[Doc], files: Iterable[Doc], group_by: str) -> dict[str, UsageSummary]:
    """One summary per group of ``group_by``, in the order of the group keys."""
    groups: dict[str, UsageSummary] = {}
    job_key = JOB_GROUPS[group_by]
    for job in unique(jobs):
        groups.setdefault(job_key(job), UsageSummary()).add_job(job)
    file_key = FILE_GROUPS.get(group_by)
    if file_key is not None:
        for file in unique(files):
            groups.setdefault(file_key(file), UsageSummary()).add_file(file)
    return {key: groups[key] for key in sorted(groups)}


def _breakdown(jobs: list[Doc], files: list[Doc], group_by: str) -> dict[str, dict[str, Any]]:
    return {key: summary.as_dict() for key, summary in grouped(jobs, files, group_by).items()}


def owner_report(owner: str, jobs: Iterable[Doc], files: Iterable[Doc]) -> dict[str, Any]:
    """One user's usage: totals, and the same figures per app and per day."""
    job_docs, file_docs = unique(jobs), unique(files)
    return {
        "owner": owner,
        "totals": summarise(job_docs, file_docs).as_dict(),
        "by_app": _breakdown(job_docs, file_docs, "app"),
        "by_day": _breakdown(job_docs, file_docs, "day"),
    }


def global_report(jobs: Iterable[Doc], files: Iterable[Doc]) -> dict[str, Any]:
    """Everyone's usage: number of users, totals and per-app figures."""
    job_docs, file_docs = unique(jobs), unique(files)
    owners = {d.get("owner") for d in job_docs} | {d.get("owner") for d in file_docs}
    owners.discard(None)
    return {
        "nusers": len(owners),
        "totals": summarise(job_docs, file_docs).as_dict(),
        "by_app": _breakdown(job_docs, file_docs, "app"),
    }


def _within(day: str, query: UsageQuery) -> bool:
    """Whether a job's or file's day lies in the query's range (bounds included).

    ISO days compare as strings. A day that is not known (a job whose submission
    accounting has not seen and that has not ended) belongs to no range, only to the
    unbounded report.
    """
    if day == UNKNOWN_DAY:
        return query.first is None and query.last is None
    if query.first is not None and day < query.first.isoformat():
        return False
    return query.last is None or day <= query.last.isoformat()


def _selected(doc: Doc, day: str, query: UsageQuery) -> bool:
    return (query.owner is None or doc.get("owner") == query.owner) and _within(day, query)


def usage_report(jobs: Iterable[Doc], files: Iterable[Doc], query: UsageQuery) -> dict[str, Any]:
    """The usage of the jobs submitted and files uploaded in the query's range, by group.

    ``rows`` has one entry per group (the group's key under the grouping's name, then
    the figures of :class:`UsageSummary`), ``totals`` the same figures over everything
    selected. Each job counts once, with the outcome the api shows, so a user's totals
    equal their job list. The documents may be a superset: owner and days are checked
    here.
    """
    job_docs = [d for d in unique(jobs) if _selected(d, job_day(d), query)]
    file_docs = [d for d in unique(files) if _selected(d, file_day(d), query)]
    groups = grouped(job_docs, file_docs, query.group_by)
    return {
        "group_by": query.group_by,
        "from": query.first.isoformat() if query.first else None,
        "to": query.last.isoformat() if query.last else None,
        "user": query.owner,
        "rows": [{query.group_by: key, **summary.as_dict()} for key, summary in groups.items()],
        "totals": summarise(job_docs, file_docs).as_dict(),
    }
