"""The watchdog's write on the real database: state change and event in one guarded update."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from caesar_common.events import Envelope, RunnerHeartbeat, RunningJobRef
from caesar_common.ids import new_job_id
from caesar_common.jobstate import JobState
from caesar_common.outbox import Kick
from caesar_monitor.adapters.runners import RunnerRepository
from caesar_monitor.adapters.timelines import TIMELINES, TimelineRepository
from caesar_monitor.domain.liveness import ATTEMPT_NOT_REPORTED, RUNNER_LOST, ActiveJob, Verdict
from caesar_monitor.service.deps import MonitorDeps
from caesar_monitor.service.heartbeats import record_heartbeat
from caesar_monitor.service.watchdog import end_job, sweep
from caesar_monitor.settings import MonitorSettings

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


def recorder(kicks: list[str]) -> Kick:
    """A relay kick that remembers which timelines were handed over."""

    def kick(
        doc_id: Any, envelopes: Sequence[Envelope] = (), commands: Sequence[tuple[Envelope, str]] = ()
    ) -> None:
        kicks.append(doc_id)

    return kick


@pytest.fixture
def deps_and_kicks(async_mongo: Any, db_prefix: str) -> tuple[MonitorDeps, list[str]]:
    db = async_mongo[f"{db_prefix}_monitor"]
    kicks: list[str] = []
    deps = MonitorDeps(
        timelines=TimelineRepository(db[TIMELINES]),
        runners=RunnerRepository(db["runners"]),
        settings=MonitorSettings(runner_timeout_s=30, wall_time_grace_s=60),
        kick=recorder(kicks),
        clock=lambda: NOW,
        watching_since=NOW - timedelta(hours=1),
    )
    return deps, kicks


def timelines_of(deps: MonitorDeps) -> Any:
    """The real collection behind the deps' timeline store (typed as its port)."""
    assert isinstance(deps.timelines, TimelineRepository)
    return deps.timelines.collection


def runners_of(deps: MonitorDeps) -> Any:
    assert isinstance(deps.runners, RunnerRepository)
    return deps.runners.collection


async def running_job(deps: MonitorDeps, job_id: str, state: str = "RUNNING") -> dict[str, Any]:
    doc = {
        "_id": job_id,
        "owner": "alice",
        "app": "caesar",
        "state": state,
        "attempt": 1,
        "retryable": False,
        "runner_id": "r1",
        "pool": "local",
        "started_at": NOW - timedelta(minutes=5),
        "wall_time_s": 3600,
        "events": [],
    }
    await timelines_of(deps).insert_one(doc)
    return doc


async def test_verdict_sets_state_entry_and_outbox_in_one_write(
    deps_and_kicks: tuple[MonitorDeps, list[str]],
) -> None:
    deps, kicks = deps_and_kicks
    job_id = new_job_id()
    await running_job(deps, job_id)
    [applied] = await sweep(deps)  # runner r1 never heartbeated: silent for 5 minutes
    assert applied.reason == RUNNER_LOST
    assert kicks == [job_id]
    doc = await timelines_of(deps).find_one({"_id": job_id})
    assert doc is not None
    assert (doc["state"], doc["attempt"], doc["retryable"]) == ("FAILURE", 1, True)
    assert doc["outbox_pending"] is True
    [event] = doc["outbox"]
    assert event["routing_key"] == "job.state.failure"
    assert event["data"]["reason"] == RUNNER_LOST
    assert [e["event_id"] for e in doc["events"]] == [event["id"]]
    assert await sweep(deps) == []  # nothing executing any more


async def test_stale_verdict_changes_nothing(deps_and_kicks: tuple[MonitorDeps, list[str]]) -> None:
    deps, kicks = deps_and_kicks
    job_id = new_job_id()
    doc = await running_job(deps, job_id, state="STARTED")
    stale = ActiveJob.of(doc)
    # The runner reported after the sweep read the job: it is RUNNING now.
    await timelines_of(deps).update_one({"_id": job_id}, {"$set": {"state": "RUNNING"}})
    verdict = Verdict(stale, JobState.FAILURE, RUNNER_LOST, retryable=True)
    assert await end_job(deps, verdict) is False
    after = await timelines_of(deps).find_one({"_id": job_id})
    assert after is not None
    assert after["state"] == "RUNNING"
    assert "outbox" not in after
    assert kicks == []


async def test_live_runner_keeps_its_job(deps_and_kicks: tuple[MonitorDeps, list[str]]) -> None:
    deps, _ = deps_and_kicks
    job_id = new_job_id()
    await running_job(deps, job_id)
    await runners_of(deps).insert_one(
        {
            "_id": "r1",
            "last_seen": NOW - timedelta(seconds=5),
            "sent_at": NOW - timedelta(seconds=5),
            "running": [{"job_id": job_id, "attempt": 1}],
        }
    )
    assert await sweep(deps) == []


def beat(sent_at: datetime, *jobs: str, runner_id: str = "r1") -> RunnerHeartbeat:
    return RunnerHeartbeat(
        runner_id=runner_id,
        pool="local",
        slots_total=4,
        slots_free=4 - len(jobs),
        running=[RunningJobRef(job_id=j, attempt=1) for j in jobs],
        sent_at=sent_at,
    )


async def test_runner_report_round_trip_and_guard(deps_and_kicks: tuple[MonitorDeps, list[str]]) -> None:
    """The report survives the database, and an older heartbeat never replaces a newer one."""
    deps, _ = deps_and_kicks
    a, b = new_job_id(), new_job_id()
    t0 = NOW - timedelta(seconds=60)
    assert await record_heartbeat(deps.runners, beat(t0, a, b), NOW, 30) is not None
    assert await record_heartbeat(deps.runners, beat(t0 + timedelta(seconds=5), b), NOW, 30) is not None
    assert await record_heartbeat(deps.runners, beat(t0 + timedelta(seconds=1), a, b), NOW, 30) is None
    assert await record_heartbeat(deps.runners, beat(t0 + timedelta(seconds=5), b), NOW, 30) is None
    report = await deps.runners.report("r1")
    assert report is not None
    assert (report.sent_at, report.last_seen) == (t0 + timedelta(seconds=5), NOW)
    assert report.running == {(b, 1)}
    assert dict(report.missing) == {(a, 1): t0 + timedelta(seconds=5)}
    assert await deps.runners.reports(["r1", "nobody"]) == {"r1": report}


async def test_attempt_its_live_runner_does_not_report_is_failed(
    deps_and_kicks: tuple[MonitorDeps, list[str]],
) -> None:
    deps, kicks = deps_and_kicks
    job_id = new_job_id()
    await running_job(deps, job_id)  # started five minutes ago
    await record_heartbeat(deps.runners, beat(NOW - timedelta(seconds=2)), NOW, 30)
    [applied] = await sweep(deps)
    assert (applied.reason, applied.retryable) == (ATTEMPT_NOT_REPORTED, True)
    doc = await timelines_of(deps).find_one({"_id": job_id})
    assert doc is not None
    assert (doc["state"], doc["retryable"], doc["outbox"][0]["data"]["reason"]) == (
        "FAILURE",
        True,
        ATTEMPT_NOT_REPORTED,
    )
    assert kicks == [job_id]


async def test_two_replicas_sweeping_at_once_emit_one_verdict(
    deps_and_kicks: tuple[MonitorDeps, list[str]],
) -> None:
    """Two monitors judge the same attempt lost at once: one guarded write wins."""
    deps, kicks = deps_and_kicks
    jobs = [new_job_id() for _ in range(5)]
    for job_id in jobs:
        await running_job(deps, job_id)
    await record_heartbeat(deps.runners, beat(NOW - timedelta(seconds=2)), NOW, 30)
    replicas = [
        MonitorDeps(
            timelines=deps.timelines,
            runners=deps.runners,
            settings=deps.settings,
            kick=recorder(kicks),
            clock=deps.clock,
            watching_since=deps.watching_since,
        )
        for _ in range(2)
    ]
    first, second = await asyncio.gather(*(sweep(r) for r in replicas))
    assert sorted(v.job.job_id for v in [*first, *second]) == sorted(jobs)
    assert sorted(kicks) == sorted(jobs)
    for job_id in jobs:
        doc = await timelines_of(deps).find_one({"_id": job_id})
        assert doc is not None
        assert len(doc["outbox"]) == 1
        assert len(doc["events"]) == 1
