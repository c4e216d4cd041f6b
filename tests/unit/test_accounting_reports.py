"""Usage reports summarised from usage documents."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given, settings
from hypothesis import strategies as st

from caesar_accounting.domain.reports import (
    OUTCOME_COUNTERS,
    UsageSummary,
    global_report,
    owner_report,
    summarise,
    usage_report,
)
from caesar_accounting.entrypoints.http import get_usage_report
from caesar_accounting.handlers import AccountingDeps
from caesar_accounting.service.usage import record_state
from caesar_api.service.projection import apply_job_state
from caesar_common.events import JobStateChanged
from caesar_common.jobstate import ACTIVE_STATES, TERMINAL_STATES
from caesar_common.usage_query import UsageQuery
from tests.unit.fakes.accounting import FakeFileUsageStore, FakeJobUsageStore
from tests.unit.fakes_api import FakeJobs
from tests.unit.test_accounting_usage import job_histories

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
        "njobs_pending": 1,  # j7: submitted only
        "njobs_running": 0,
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


def at(attempt: int, state: str) -> dict[str, Any]:
    return {"attempt": attempt, "state": state}


def test_active_jobs_are_pending_until_a_runner_starts_them_as_the_api_shows() -> None:
    active = [
        job("p1", None),  # only the submission so far
        job("p2", None, position=at(1, "QUEUED")),
        job("p3", None, position=at(1, "HELD")),
        job("r1", None, position=at(1, "STARTED")),
        job("r2", None, position=at(1, "RUNNING")),
        # Attempt 1 lost (a retryable failure the api never shows), attempt 2 waits.
        job(
            "q2", None, position=at(2, "QUEUED"), attempts={"1": attempt("FAILURE", 1.0, 2.0, retryable=True)}
        ),
    ]
    s = summarise([*active, job("done", "SUCCESS", position=at(1, "SUCCESS"))])
    assert (s.njobs, s.njobs_active, s.njobs_pending, s.njobs_running) == (7, 6, 4, 2)
    assert s.njobs_active == s.njobs_pending + s.njobs_running


REPORT_JOBS = [
    job("a1", "SUCCESS", owner="alice", app="sfind", day="2026-05-03"),
    job("a2", "FAILURE", owner="alice", app="aegean", day="2026-05-04"),
    job("a3", None, owner="alice", app="sfind", day="2026-05-05", position=at(1, "RUNNING")),
    job("b1", "SUCCESS", owner="bob", app="sfind", day="2026-05-04", attempt=2),
    job("b2", "ABORTED", owner="bob", app="bdsf", day="2026-05-06"),
    job("u1", None, owner="bob", app="sfind", day=None),  # its submission not seen yet
]
REPORT_FILES = [
    file("fa", 100, owner="alice", day="2026-05-04"),
    file("fb", 10, owner="bob", day="2026-05-05"),
    file("fgone", 7, owner="bob", day="2026-05-05", deleted=True),
]


def report(group_by: str, first: str | None = None, last: str | None = None, owner: str | None = None) -> Any:
    params = {"group_by": group_by, "from": first, "to": last, "owner": owner}
    query = UsageQuery.parse({k: v for k, v in params.items() if v is not None}, owner_key="owner")
    return usage_report(REPORT_JOBS + REPORT_JOBS[:2], REPORT_FILES, query)


def test_report_groups_by_user_app_or_day_over_a_range() -> None:
    by_user = report("user", "2026-05-04", "2026-05-05")
    assert (by_user["group_by"], by_user["from"], by_user["to"], by_user["user"]) == (
        "user",
        "2026-05-04",
        "2026-05-05",
        None,
    )
    assert [r["user"] for r in by_user["rows"]] == ["alice", "bob"]
    alice, bob = by_user["rows"]
    assert (alice["njobs"], alice["njobs_failed"], alice["njobs_running"], alice["bytes_stored"]) == (
        2,
        1,
        1,
        100,
    )
    assert (bob["njobs"], bob["njobs_completed"], bob["nfiles"], bob["bytes_stored"]) == (1, 1, 1, 10)
    assert by_user["totals"]["njobs"] == 3
    assert by_user["totals"]["bytes_stored"] == 110

    by_app = report("app")  # no range: everything, the job whose day is unknown too
    assert [r["app"] for r in by_app["rows"]] == ["aegean", "bdsf", "sfind"]
    assert by_app["rows"][2]["njobs"] == 4
    assert all(r["nfiles"] == 0 for r in by_app["rows"])  # uploads belong to no app
    assert by_app["totals"]["njobs"] == 6
    assert by_app["totals"]["nfiles"] == 2

    by_day = report("day", first="2026-05-05")
    assert [r["day"] for r in by_day["rows"]] == ["2026-05-05", "2026-05-06"]
    assert by_day["rows"][0]["njobs_running"] == 1
    assert by_day["rows"][0]["bytes_stored"] == 10
    assert by_day["rows"][1]["njobs_aborted"] == 1


def test_report_of_one_user_and_rows_add_up_to_totals() -> None:
    bobs = report("day", owner="bob")
    assert bobs["user"] == "bob"
    assert {r["day"] for r in bobs["rows"]} == {"2026-05-04", "2026-05-05", "2026-05-06", "unknown"}
    for name in ("njobs", "njobs_completed", "njobs_aborted", "njobs_pending", "bytes_stored", "nfiles"):
        assert sum(r[name] for r in bobs["rows"]) == bobs["totals"][name], name
    assert bobs["totals"]["njobs"] == 3


def test_report_columns_are_the_summary_and_an_empty_report_keeps_them() -> None:
    empty = report("user", "2030-01-01", "2030-01-31")
    assert empty["rows"] == []
    assert list(empty["totals"]) == list(UsageSummary().as_dict())
    row = report("app")["rows"][0]
    assert list(row) == ["app", *UsageSummary().as_dict()]


@settings(max_examples=150, deadline=None)
@given(history=job_histories(), data=st.data())
def test_a_job_counts_as_the_api_shows_it_pending_running_or_ended(
    history: list[JobStateChanged], data: st.DataObject
) -> None:
    """The api's projection and accounting fed the same shuffled duplicates: the report
    puts the job in the column of the state the api shows."""
    extra = data.draw(st.lists(st.sampled_from(history), max_size=len(history)), label="duplicates")
    delivered = data.draw(st.permutations(history + extra), label="delivered")

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        api = FakeJobs()
        api.records["j1"] = {"_id": "j1", "owner": "alice", "app": "x", "state": "PENDING", "attempt": 0}
        accounting = FakeJobUsageStore()
        for message in delivered:
            await apply_job_state(api, message)
            await record_state(message, accounting)
        return api.records["j1"], accounting.docs.get("j1") or {"_id": "j1"}

    shown, counted = asyncio.run(run())
    figures = summarise([counted]).as_dict()
    column = {
        **{state.value: OUTCOME_COUNTERS[state] for state in TERMINAL_STATES},
        **{state.value: "njobs_running" for state in ACTIVE_STATES},
    }.get(shown["state"], "njobs_pending")
    assert figures[column] == 1, (shown["state"], figures)
    assert figures["njobs"] == 1


async def test_report_route_reads_one_user_or_everyone_and_refuses_bad_parameters() -> None:
    jobs, files = FakeJobUsageStore(), FakeFileUsageStore()
    jobs.docs = {d["_id"]: d for d in REPORT_JOBS}
    files.docs = {d["_id"]: d for d in REPORT_FILES}
    deps = AccountingDeps(jobs=jobs, files=files)

    async def ask(query: str) -> tuple[int, Any]:
        resp = await get_usage_report(make_mocked_request("GET", f"/usage/report?{query}"), deps)
        assert resp.text is not None
        return resp.status, json.loads(resp.text)

    status, body = await ask("group_by=app&owner=bob&from=2026-05-01&to=2026-05-31")
    assert status == 200
    assert (body["user"], [r["app"] for r in body["rows"]]) == ("bob", ["bdsf", "sfind"])
    assert "timestamp" in body
    status, body = await ask("group_by=user")
    assert [r["user"] for r in body["rows"]] == ["alice", "bob"]
    status, body = await ask("group_by=user&from=2026-05-09&to=2026-05-01")
    assert (status, body) == (400, {"error": "from (2026-05-09) is after to (2026-05-01)"})
