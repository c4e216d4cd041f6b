"""The metrics added for the dashboards and alert rules (issue 13, item 4).

Each moves exactly once for what it counts (a redelivered event counts nothing), keeps its
labels bounded, and exists before anything happened where a panel or an alert needs a
zero rather than nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from caesar_accounting import metrics as accounting_metrics
from caesar_accounting.domain.usage import FinalOutcome
from caesar_api import metrics as api_metrics
from caesar_api.domain.jobs import parse_job_request
from caesar_api.service import jobs as job_cases
from caesar_common.apps import app_names
from caesar_common.events import Envelope, RunnerHeartbeat
from caesar_common.jobstate import JobState
from caesar_monitor import metrics as monitor_metrics
from caesar_monitor.domain.liveness import ATTEMPT_NOT_REPORTED, RUNNER_LOST
from caesar_monitor.metrics import FAILURE_REASONS, HeartbeatAges, failure_reason
from caesar_monitor.service.gauges import HEARTBEAT_AGE_WINDOW, refresh_gauges
from caesar_monitor.service.watchdog import sweep
from caesar_scheduler import metrics as scheduler_metrics
from tests.unit import test_monitor_handlers as monitor_cases
from tests.unit import test_scheduler_handlers as scheduler_cases
from tests.unit.fakes.monitor import FakeRunnerStore, FakeTimelineStore
from tests.unit.fakes_api import FakeFiles, FakeJobs
from tests.unit.test_api_service import RUNNABLE, stored_file


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("state", "retryable", "reason", "exit_code", "expected"),
    [
        ("FAILURE", False, "", 3, "app_error"),
        ("FAILURE", False, "could not stage the input", None, "other"),
        ("FAILURE", False, "", 0, "other"),
        ("TIMED-OUT", False, "wall time exceeded (monitor)", None, "timeout"),
        ("FAILURE", True, RUNNER_LOST, None, "runner_lost"),
        ("FAILURE", True, ATTEMPT_NOT_REPORTED, None, "runner_lost"),
        ("FAILURE", True, "runner restarted; the attempt's processes died with it", None, "runner_lost"),
        ("FAILURE", True, "never started: no runner reported STARTED within 120 s", None, "never_started"),
        (
            "FAILURE",
            True,
            "Slurm job 12 ended NODE_FAIL (node down): a system failure",
            None,
            "infrastructure",
        ),
        ("ABORTED", False, "gave up after 3 attempts: runner lost", None, "gave_up"),
        ("ABORTED", False, "no live runner in pool 'slurm' since 2026-01-01; waited 60 s", None, "no_runner"),
        ("ABORTED", False, "no runner pool of this deployment can run app x", None, "no_pool"),
        ("ABORTED", False, "something new", None, "other"),
        ("SUCCESS", False, "", 0, None),
        ("CANCELED", False, "canceled by the user", None, None),
        ("RUNNING", False, "", None, None),
    ],
)
def test_failure_reasons_are_a_fixed_set(
    state: str, retryable: bool, reason: str, exit_code: int | None, expected: str | None
) -> None:
    got = failure_reason(state, retryable=retryable, reason=reason, exit_code=exit_code)
    assert got == expected
    assert got is None or got in FAILURE_REASONS


async def test_a_failed_job_counts_once_with_its_reason_whatever_the_deliveries() -> None:
    monitor = monitor_cases.Monitor()
    r1: dict[str, Any] = {"runner_id": "r1", "pool": "local"}
    history = [
        monitor_cases.submitted(),
        monitor_cases.state(JobState.QUEUED, 1),
        monitor_cases.state(JobState.STARTED, 2, **r1),
        monitor_cases.state(JobState.RUNNING, 3, **r1),
        monitor_cases.state(JobState.FAILURE, 9, exit_code=3, **r1),
    ]
    before = sample("caesar_job_failures_total", app="sfind", reason="app_error")
    envelopes = [Envelope.wrap(m, "test") for m in history]
    for envelope in [*envelopes, *envelopes]:  # every event delivered twice
        await monitor.send(envelope)
    assert sample("caesar_job_failures_total", app="sfind", reason="app_error") == before + 1


async def test_the_watchdog_counts_a_lost_runner() -> None:
    monitor = monitor_cases.Monitor()
    r1: dict[str, Any] = {"runner_id": "r1", "pool": "local"}
    for message in [
        monitor_cases.submitted(),
        monitor_cases.state(JobState.QUEUED, 1),
        monitor_cases.state(JobState.STARTED, 2, **r1),
    ]:
        await monitor.send(Envelope.wrap(message, "test"))
    before = sample("caesar_job_failures_total", app="sfind", reason="runner_lost")
    monitor.now = monitor_cases.at(3600)
    await sweep(monitor.deps)
    assert monitor.timelines.docs[monitor_cases.JOB]["state"] == "FAILURE"
    assert sample("caesar_job_failures_total", app="sfind", reason="runner_lost") == before + 1


# --------------------------------------------------------------------------- gauges


async def test_recount_sets_the_oldest_job_per_state_and_heartbeat_ages() -> None:
    now = datetime.now(UTC)  # the heartbeat ages are computed with the real clock
    timelines, runners = FakeTimelineStore(), FakeRunnerStore()
    timelines.docs = {
        "a": {"_id": "a", "state": "PENDING", "last_change": now - timedelta(seconds=700), "events": []},
        "b": {"_id": "b", "state": "PENDING", "last_change": now - timedelta(seconds=5), "events": []},
        "c": {"_id": "c", "state": "SUCCESS", "last_change": now - timedelta(days=3), "events": []},
    }
    for runner, seen in (("fresh", 2), ("silent", 600), ("gone", 2 * 3600)):
        heartbeat = RunnerHeartbeat(
            runner_id=runner,
            pool="dash-pool",
            slots_total=1,
            slots_free=1,
            sent_at=now - timedelta(seconds=seen),
        )
        runners.docs[runner] = {
            "pool": heartbeat.pool,
            "sent_at": heartbeat.sent_at,
            "last_seen": heartbeat.sent_at,
            "slots_total": 1,
            "slots_free": 1,
            "report": None,
        }
    await refresh_gauges(timelines, runners, now, 30.0)
    assert sample("caesar_job_oldest_in_state_seconds", state="PENDING") == 700
    assert sample("caesar_job_oldest_in_state_seconds", state="RUNNING") == 0  # no job there: 0, not absent
    assert REGISTRY.get_sample_value("caesar_job_oldest_in_state_seconds", {"state": "SUCCESS"}) is None
    ages = {
        runner: REGISTRY.get_sample_value(
            "caesar_runner_heartbeat_age_seconds", {"pool": "dash-pool", "runner": runner}
        )
        for runner in ("fresh", "silent", "gone")
    }
    assert ages["fresh"] is not None
    assert ages["silent"] is not None
    assert 2 <= ages["fresh"] < 60  # measured at scrape time, from the real clock
    assert ages["silent"] >= 600
    assert ages["gone"] is None, f"silent for longer than {HEARTBEAT_AGE_WINDOW}: dropped"


def test_heartbeat_ages_grow_until_the_next_heartbeat() -> None:
    t0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    clock = [t0]
    ages = HeartbeatAges(clock=lambda: clock[0])

    def collected() -> dict[tuple[str, str], float]:
        (family,) = ages.collect()
        return {(s.labels["pool"], s.labels["runner"]): s.value for s in family.samples}

    ages.replace({"r1": ("local", t0 - timedelta(seconds=4))})
    assert collected() == {("local", "r1"): 4.0}
    clock[0] = t0 + timedelta(seconds=10)
    assert collected() == {("local", "r1"): 14.0}
    ages.heard("r1", "local", t0 + timedelta(seconds=9))
    ages.heard("r1", "local", t0)  # an older heartbeat changes nothing
    ages.heard("r2", "slurm", t0 + timedelta(seconds=10))
    assert collected() == {("local", "r1"): 1.0, ("slurm", "r2"): 0.0}
    ages.replace({})
    assert collected() == {}


async def test_a_consumed_heartbeat_resets_its_runner_s_age() -> None:
    monitor = monitor_cases.Monitor()
    monitor.now = datetime.now(UTC)
    beat = RunnerHeartbeat(runner_id="hb-1", pool="hb-pool", slots_total=2, slots_free=2, sent_at=monitor.now)
    await monitor.send(Envelope.wrap(beat, "test"))
    age = sample("caesar_runner_heartbeat_age_seconds", pool="hb-pool", runner="hb-1")
    assert 0 <= age < 60


# --------------------------------------------------------------------------- scheduler


async def test_pools_show_zero_counters_and_retries_count_once() -> None:
    scheduler_metrics.watched_pool("fresh-pool", 0)
    for name in (
        "caesar_scheduler_retries_total",
        "caesar_scheduler_start_resends_total",
        "caesar_scheduler_never_started_total",
        "caesar_scheduler_dispatches_total",
        "caesar_scheduler_aborted_without_runner_total",
    ):
        assert REGISTRY.get_sample_value(name, {"pool": "fresh-pool"}) == 0, name
    assert sample("caesar_scheduler_live_runners", pool="fresh-pool") == 0

    s = scheduler_cases.Scheduler()
    await s.send(scheduler_cases.submitted())
    await s.send(scheduler_cases.heartbeat(4))
    await s.dispatch()
    before = sample("caesar_scheduler_retries_total", pool="local")
    lost = scheduler_cases.reported(JobState.FAILURE, retryable=True)
    await s.send(lost)
    await s.send(lost)  # a duplicate opens no second attempt, and counts nothing
    assert s.jobs.docs[scheduler_cases.JOB]["attempt"] == 2
    assert sample("caesar_scheduler_retries_total", pool="local") == before + 1


# --------------------------------------------------------------------------- accounting and api


def test_usage_per_user_and_app() -> None:
    before = sample("caesar_accounting_user_jobs_total", owner="dora", app="aegean")
    cpu_before = sample("caesar_accounting_user_cpu_seconds_total", owner="dora", app="aegean")
    for cpu in (12.5, None):
        accounting_metrics.count_outcome(
            FinalOutcome(
                job_id="j",
                owner="dora",
                app="aegean",
                attempt=1,
                outcome=JobState.SUCCESS,
                finished_at=datetime(2026, 5, 4, tzinfo=UTC),
                wall_s=20.0,
                cpu_s=cpu,
                peak_rss_bytes=None,
                output_bytes=0,
            )
        )
    assert sample("caesar_accounting_user_jobs_total", owner="dora", app="aegean") == before + 2
    assert sample("caesar_accounting_user_cpu_seconds_total", owner="dora", app="aegean") == cpu_before + 12.5


async def test_submissions_count_once_per_stored_job() -> None:
    jobs, files = FakeJobs(), FakeFiles()
    file_id = stored_file(files)
    before = sample("caesar_api_jobs_submitted_total", app="sfind")
    await job_cases.submit(
        parse_job_request({"app": "sfind", "job_inputs": {}, "data_inputs": file_id}),
        "alice",
        jobs=jobs,
        files=files,
        runnable_executors=RUNNABLE,
    )
    with pytest.raises(Exception, match="not found"):  # refused: not counted
        await job_cases.submit(
            parse_job_request({"app": "sfind", "job_inputs": {}, "data_inputs": "f" * 32}),
            "alice",
            jobs=jobs,
            files=files,
            runnable_executors=RUNNABLE,
        )
    assert sample("caesar_api_jobs_submitted_total", app="sfind") == before + 1


def test_the_monitor_registers_its_heartbeat_ages() -> None:
    assert isinstance(monitor_metrics.HEARTBEAT_AGES, HeartbeatAges)
    assert (
        REGISTRY.get_sample_value("caesar_runner_heartbeat_age_seconds", {"pool": "x", "runner": "y"}) is None
    )


def test_every_app_s_series_exist_before_its_first_job() -> None:
    """rate() cannot see a series' first sample: the per-app series start at zero."""
    assert api_metrics.JOBS_SUBMITTED is not None
    for app in app_names():
        for name in ("caesar_job_queue_wait_seconds_count", "caesar_job_run_seconds_count"):
            assert REGISTRY.get_sample_value(name, {"app": app}) is not None, (name, app)
        assert REGISTRY.get_sample_value("caesar_api_jobs_submitted_total", {"app": app}) is not None, app
