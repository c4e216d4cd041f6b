"""Measuring a user's usage for quotas from accounting's documents (pure).

CPU hours count every attempt that ended this calendar month (UTC, by the job's
submission day): a lost or superseded attempt used the CPU as much as the counted one.
Running jobs are those whose shown position is STARTED or RUNNING; stored bytes are
the user's uploads not deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from caesar_accounting.domain.usage import day_of, held_attempts
from caesar_common.quotas import Usage

Doc = Mapping[str, Any]


def month_start_day(now: datetime) -> str:
    """The first day of ``now``'s month (``YYYY-MM-01``), the lower bound of its usage."""
    return day_of(now)[:8] + "01"


def cpu_seconds(job: Doc) -> float:
    """Every ended attempt's CPU, or the counted figure for a document without attempts."""
    attempts = held_attempts(job)
    if attempts:
        return sum(a.cpu_s or 0.0 for a in attempts.values())
    return float(job.get("cpu_s") or 0.0)


def usage_of(running_jobs: int, month_jobs: Iterable[Doc], live_files: Iterable[Doc]) -> Usage:
    return Usage(
        running_jobs=running_jobs,
        cpu_hours_month=sum(cpu_seconds(j) for j in month_jobs) / 3600.0,
        stored_bytes=sum(int(f.get("size_bytes") or 0) for f in live_files),
    )
