"""The watchdog's write on the real database: state change and event in one guarded update."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from caesar_common.ids import new_job_id
from caesar_common.jobstate import JobState
from caesar_monitor.adapters.runners import RunnerRepository
from caesar_monitor.adapters.timelines import TIMELINES, TimelineRepository
from caesar_monitor.domain.liveness import RUNNER_LOST, ActiveJob, Verdict
from caesar_monitor.service.deps import MonitorDeps
from caesar_monitor.service.watchdog import end_job, sweep
from caesar_monitor.settings import MonitorSettings

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def deps_and_kicks(async_mongo: Any, db_prefix: str) -> tuple[MonitorDeps, list[str]]:
    db = async_mongo[f"{db_prefix}_monitor"]
    kicks: list[str] = []
    deps = MonitorDeps(
        timelines=TimelineRepository(db[TIMELINES]),
        runners=RunnerRepository(db["runners"]),
        settings=MonitorSettings(runner_timeout_s=30, wall_time_grace_s=60),
        kick=kicks.append,
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
    await running_job(deps, new_job_id())
    await runners_of(deps).insert_one({"_id": "r1", "last_seen": NOW - timedelta(seconds=5)})
    assert await sweep(deps) == []
