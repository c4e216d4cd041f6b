"""Usage figures as clients see them: the v1 accounting shapes and the report as CSV (pure).

Accounting computes the figures (``caesar_accounting.domain.reports``); this module only
renames and renders them. The v1 names are the old service's and stay exactly as they
were: ``datasize`` (bytes of the stored uploads), ``jobsize`` (bytes of the job outputs),
``job_runtime`` and ``job_completed_runtime`` (seconds of wall time of all ended jobs,
of the completed ones) and the job counts, ``totsize`` = ``datasize`` + ``jobsize``.
Added beside them: ``njobs_timed_out``, ``njobs_canceled`` and ``nfiles``, so the counts
add up to ``njobs``, and ``totsize``/``avg_completed_job_runtime`` on ``/accounting``
too.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from caesar_api.domain.responses import v1_date

V1_COUNTS: Final = (
    "njobs",
    "njobs_completed",
    "njobs_failed",
    "njobs_aborted",
    "njobs_pending",
    "njobs_running",
    "njobs_timed_out",
    "njobs_canceled",
    "nfiles",
)
"""Counts that keep their name from accounting's report to v1."""


def _int(totals: Mapping[str, Any], name: str) -> int:
    """A count or a size from accounting; one it does not report (an older release) is 0."""
    return int(totals.get(name) or 0)


def _seconds(totals: Mapping[str, Any], name: str) -> float:
    return float(totals.get(name) or 0.0)


def _timestamp(report: Mapping[str, Any]) -> str:
    """When accounting computed the report, as the api's other v1 dates (UTC, no offset)."""
    raw = report.get("timestamp")
    try:
        when = datetime.fromisoformat(raw) if isinstance(raw, str) else datetime.now(UTC)
    except ValueError:
        when = datetime.now(UTC)
    return v1_date(when)


def v1_accounting(report: Mapping[str, Any]) -> dict[str, Any]:
    """``GET /accounting``: the v1 fields of a report's ``totals``, with its timestamp.

    The caller's report gives the caller's usage; the global one gives everyone's.
    """
    totals: Mapping[str, Any] = report.get("totals") or {}
    datasize = _int(totals, "bytes_stored")
    jobsize = _int(totals, "output_bytes")
    return {
        "datasize": datasize,
        "jobsize": jobsize,
        "totsize": datasize + jobsize,
        **{name: _int(totals, name) for name in V1_COUNTS},
        "job_runtime": _seconds(totals, "wall_s"),
        "job_completed_runtime": _seconds(totals, "wall_s_completed"),
        "avg_completed_job_runtime": _seconds(totals, "avg_completed_wall_s"),
        "timestamp": _timestamp(report),
    }


def v1_appstats(report: Mapping[str, Any]) -> dict[str, Any]:
    """``GET /appstats``: everyone's usage and the number of users, from the global report."""
    return {"nusers": _int(report, "nusers"), **v1_accounting(report)}


def report_csv(report: Mapping[str, Any]) -> str:
    """A usage report as CSV: a header row, then one row per group.

    The columns are the grouping's name (``user``, ``app`` or ``day``) and the report's
    figures in the order of its ``totals``, so CSV and JSON carry the same numbers and an
    empty report still has its header.
    """
    group_by = str(report["group_by"])
    columns = [group_by, *report["totals"]]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(report["rows"])
    return out.getvalue()
