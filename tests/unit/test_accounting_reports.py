"""Usage reports summarised from usage documents."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from caesar_accounting.domain.reports import global_report, owner_report, summarise

WHEN = datetime(2026, 5, 4, tzinfo=UTC)


def job(job_id: str, outcome: str | None, **kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": job_id,
        "owner": "alice",
        "app": "caesar",
        "day": "2026-05-04",
        "outcome": outcome,
    }
    if outcome is not None:
        doc.update(attempt=1, wall_s=10.0, cpu_s=5.0, peak_rss_bytes=100, output_bytes=7)
    doc.update(kw)
    return doc


def file(file_id: str, size: int, *, deleted: bool = False, **kw: Any) -> dict[str, Any]:
    doc = {"_id": file_id, "owner": "alice", "day": "2026-05-04", "size_bytes": size}
    doc["deleted_at"] = WHEN if deleted else None
    doc.update(kw)
    return doc


JOBS = [
    job("j1", "SUCCESS"),
    job("j2", "SUCCESS", attempt=3, wall_s=30.0, cpu_s=20.0, peak_rss_bytes=900),  # retried
    job("j3", "FAILURE"),
    job("j4", "TIMED-OUT"),
    job("j5", "CANCELED", wall_s=None, cpu_s=None, peak_rss_bytes=None, output_bytes=0),
    job("j6", "ABORTED", app="aegean", day="2026-05-05"),
    job("j7", None, app="aegean"),
]
FILES = [file("f1", 1000), file("f2", 500, deleted=True), file("f3", 20, day="2026-05-05")]


def test_summary_counts_outcomes_and_resources() -> None:
    s = summarise(JOBS, FILES).as_dict()
    assert s == {
        "njobs": 7,
        "njobs_completed": 2,
        "njobs_failed": 1,
        "njobs_timed_out": 1,
        "njobs_canceled": 1,
        "njobs_aborted": 1,
        "njobs_active": 1,
        "wall_s": 70.0,
        "wall_s_completed": 40.0,
        "cpu_s": 40.0,
        "peak_rss_bytes": 900,
        "output_bytes": 35,
        "nfiles": 2,
        "bytes_stored": 1020,
        "attempts": 6,  # documents without an attempts map: the outcome's attempt only
        "lost_attempts": 0,
        "cpu_s_lost_attempts": 0.0,
        "wall_s_lost_attempts": 0.0,
        "avg_completed_wall_s": 20.0,
    }


def attempt(state: str, cpu: float | None, wall: float | None, *, retryable: bool = False) -> dict[str, Any]:
    return {"state": state, "retryable": retryable, "cpu_s": cpu, "wall_s": wall}


def test_other_attempts_are_reported_beside_the_counted_one_never_in_it() -> None:
    retried = job(
        "r1",
        "SUCCESS",
        attempt=2,
        cpu_s=3.0,
        wall_s=10.0,
        attempts={
            "1": attempt("SUCCESS", 4.0, 20.0),  # its true outcome came too late: lost
            "2": attempt("SUCCESS", 3.0, 10.0),
        },
    )
    handed_back = job(
        "r2",
        None,
        attempts={"1": attempt("FAILURE", 7.0, None, retryable=True)},  # a retry is under way
    )
    closed = job(
        "r3",
        "ABORTED",
        attempt=1,
        cpu_s=None,
        wall_s=None,
        attempts={"1": attempt("ABORTED", 5.0, 6.0)},  # the abort measured nothing; the verdict did
    )
    s = summarise([retried, handed_back, closed])
    assert (s.njobs, s.njobs_completed, s.njobs_aborted, s.njobs_active) == (3, 1, 1, 1)
    assert (s.cpu_s, s.wall_s, s.wall_s_completed) == (8.0, 16.0, 10.0)
    assert (s.attempts, s.lost_attempts) == (4, 2)
    assert (s.cpu_s_lost_attempts, s.wall_s_lost_attempts) == (11.0, 20.0)
    by_app = owner_report("alice", [retried, handed_back, closed], [])["by_app"]["caesar"]
    assert by_app["cpu_s_lost_attempts"] == 11.0


def test_duplicate_documents_never_double_count() -> None:
    assert summarise(JOBS + JOBS[:3], FILES + FILES) == summarise(JOBS, FILES)


def test_empty_summary_has_no_division_by_zero() -> None:
    s = summarise([], []).as_dict()
    assert s["njobs"] == 0
    assert s["avg_completed_wall_s"] == 0.0


def test_owner_report_breaks_down_by_app_and_day() -> None:
    report = owner_report("alice", JOBS, FILES)
    assert report["owner"] == "alice"
    assert set(report["by_app"]) == {"caesar", "aegean"}
    assert report["by_app"]["caesar"]["njobs"] == 5
    assert report["by_app"]["aegean"]["njobs_active"] == 1
    assert report["by_app"]["caesar"]["bytes_stored"] == 0  # files are not per app
    assert list(report["by_day"]) == ["2026-05-04", "2026-05-05"]
    assert report["by_day"]["2026-05-04"]["njobs"] == 6
    assert report["by_day"]["2026-05-04"]["bytes_stored"] == 1000
    assert report["by_day"]["2026-05-05"]["njobs_aborted"] == 1
    assert report["by_day"]["2026-05-05"]["bytes_stored"] == 20


def test_job_without_submission_day_falls_back_to_finish_day() -> None:
    report = owner_report("alice", [job("j1", "SUCCESS", day=None, finished_at=WHEN)], [])
    assert list(report["by_day"]) == ["2026-05-04"]


@pytest.mark.parametrize("extra_owner_files", [0, 2])
def test_global_report_counts_users_from_jobs_and_files(extra_owner_files: int) -> None:
    files = FILES + [file(f"b{i}", 1, owner="bob") for i in range(extra_owner_files)]
    jobs = [*JOBS, job("c1", "SUCCESS", owner="carol")]
    report = global_report(jobs, files)
    assert report["nusers"] == (3 if extra_owner_files else 2)
    assert report["totals"]["njobs"] == 8
    assert report["totals"]["bytes_stored"] == 1020 + extra_owner_files
    assert report["by_app"]["caesar"]["njobs_completed"] == 3
