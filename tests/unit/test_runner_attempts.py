"""The runner's use cases against in-memory fakes: claims, reports, slots, cancels."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from caesar_common.apps.base import App
from caesar_common.apps.registry import get_app
from caesar_common.apps.trivial import TrivialApp
from caesar_common.events import Envelope, InputFile, RunJob
from caesar_common.ids import new_job_id
from caesar_common.jobstate import JobState
from caesar_runner.domain.claim import HANDED_BACK
from caesar_runner.executors.base import ExecutionResult
from caesar_runner.service.attempts import JobRunner, RunnerConfig
from tests.unit.fakes.runner import FakeClaimStore, FakeConsumer, FakeExecutor, success

FILE_ID = "f" * 32
OWNER = "alice"


def with_trivial(name: str) -> App | None:
    return TrivialApp() if name == "trivial" else get_app(name)


class Harness:
    def __init__(self, tmp: Path, executor: FakeExecutor, slots: int = 2) -> None:
        data = tmp / "data"
        (data / OWNER).mkdir(parents=True)
        (data / OWNER / f"{FILE_ID}.fits").write_bytes(b"SIMPLE")
        self.claims = FakeClaimStore()
        self.kicked: list[str] = []
        self.published: list[Envelope] = []
        self.executor = executor
        self.consumer = FakeConsumer()
        config = RunnerConfig("r1", "local", slots, data, tmp / "jobs", tmp / "bin")
        self.runner = JobRunner(
            config, self.claims, self.kicked.append, self._publish, executor, find_app=with_trivial
        )
        self.runner.subscription = self.consumer

    async def _publish(self, envelope: Envelope) -> None:
        self.published.append(envelope)

    async def settle(self, key: str) -> None:
        """Wait until the attempt's task has reported and freed its slot."""
        job = self.runner.running.get(key)
        if job is not None and job.task is not None:
            await asyncio.wait_for(job.task, 5)


def command(job_id: str, attempt: int = 1, app: str = "trivial", **params: object) -> RunJob:
    return RunJob(
        job_id=job_id,
        owner=OWNER,
        app=app,
        attempt=attempt,
        params=dict(params),
        input=InputFile(file_id=FILE_ID, ext="fits"),
        wall_time_s=60,
        pool="local",
    )


@pytest.fixture
def harness(tmp_path: Path) -> Callable[..., Harness]:
    def make(executor: FakeExecutor | None = None, slots: int = 2) -> Harness:
        return Harness(tmp_path, executor or FakeExecutor(), slots)

    return make


async def test_an_attempt_reports_started_running_and_its_outcome(harness: Callable[..., Harness]) -> None:
    h = harness()
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id))
    key = f"{job_id}:1"
    await h.executor.wait_started(key)
    h.executor.finish(key, success())
    await h.settle(key)
    assert h.claims.states(job_id) == [(1, "STARTED"), (1, "RUNNING"), (1, "SUCCESS")]
    final = h.claims.events[-1].data
    assert (final["exit_code"], final["retryable"], final["runner_id"]) == (0, False, "r1")
    assert h.claims.docs[key]["state"] == "SUCCESS"
    assert key in h.kicked
    assert h.runner.running == {}


async def test_a_redelivered_command_starts_nothing_twice(harness: Callable[..., Harness]) -> None:
    h = harness()
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id))
    await h.runner.start_attempt(command(job_id))
    key = f"{job_id}:1"
    await h.executor.wait_started(key)
    assert h.executor.started == [key]
    assert list(h.runner.running) == [key]
    h.executor.finish(key, success())
    await h.settle(key)


async def test_a_cancel_that_arrived_first_closes_the_attempt_unrun(harness: Callable[..., Harness]) -> None:
    h = harness()
    job_id = new_job_id()
    await h.runner.cancel(job_id)
    await h.runner.start_attempt(command(job_id))
    assert h.claims.states(job_id) == [(1, "CANCELED")]
    assert h.executor.started == []
    assert h.runner.running == {}


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (command(new_job_id(), app="nosuchapp"), "unknown app nosuchapp"),
        (command(new_job_id(), app="caesar"), "cannot run on the local executor"),
        (command(new_job_id(), seconds=-5), "invalid parameters"),
        (
            command(new_job_id()).model_copy(update={"input": InputFile(file_id="e" * 32, ext="fits")}),
            "is missing",
        ),
        # A forged file id that would walk into another user's directory is never looked up.
        (
            command(new_job_id()).model_copy(update={"input": InputFile(file_id="../bob/x", ext="fits")}),
            "invalid command",
        ),
    ],
)
async def test_an_attempt_that_cannot_run_here_is_aborted_for_good(
    harness: Callable[..., Harness], msg: RunJob, reason: str
) -> None:
    h = harness()
    await h.runner.start_attempt(msg)
    [event] = h.claims.events
    assert event.data["state"] == "ABORTED"
    assert reason in event.data["reason"]
    assert event.data["retryable"] is False
    assert h.executor.started == []


async def test_two_attempts_of_one_job_are_tracked_and_cancelled_apart(
    harness: Callable[..., Harness],
) -> None:
    """Attempt 1 wrongly presumed lost and its retry on one runner: two slots, two keys."""
    h = harness()
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id, attempt=1))
    await h.runner.start_attempt(command(job_id, attempt=2))
    await h.executor.wait_started(f"{job_id}:2")
    assert sorted(h.runner.running) == [f"{job_id}:1", f"{job_id}:2"]
    assert h.consumer.paused  # both slots taken
    h.executor.finish(f"{job_id}:1", success())
    await h.settle(f"{job_id}:1")
    assert list(h.runner.running) == [f"{job_id}:2"]  # attempt 1 did not drop attempt 2
    assert not h.consumer.paused
    assert h.consumer.prefetch == 1
    await h.runner.cancel(job_id)
    await h.settle(f"{job_id}:2")
    assert h.claims.docs[f"{job_id}:2"]["state"] == "CANCELED"


async def test_a_runner_failure_is_reported_retryable(harness: Callable[..., Harness]) -> None:
    h = harness(FakeExecutor(fail_with=OSError("disk full")))
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id))
    await h.settle(f"{job_id}:1")
    final = h.claims.events[-1].data
    assert (final["state"], final["retryable"]) == ("FAILURE", True)
    assert "runner error" in final["reason"]


async def test_hand_back_at_shutdown_is_a_retryable_failure(harness: Callable[..., Harness]) -> None:
    h = harness()
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id))
    await h.executor.wait_started(f"{job_id}:1")
    assert await h.runner.hand_back(timeout_s=5) == 1
    final = h.claims.events[-1].data
    assert (final["state"], final["retryable"], final["reason"]) == ("FAILURE", True, HANDED_BACK)


async def test_a_restarted_local_runner_reports_its_orphans(harness: Callable[..., Harness]) -> None:
    h = harness()
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id))
    await h.executor.wait_started(f"{job_id}:1")
    # A new life of runner r1 (same store): the old processes died with the old one.
    reborn = JobRunner(h.runner.config, h.claims, h.kicked.append, h._publish, FakeExecutor())
    assert await reborn.resume_claims() == 1
    assert h.claims.states(job_id)[-1] == (1, "FAILURE")
    assert h.claims.events[-1].data["retryable"] is True


async def test_a_restarted_reattaching_runner_resumes_its_attempts(harness: Callable[..., Harness]) -> None:
    h = harness(FakeExecutor(reattaches=True))
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id))
    key = f"{job_id}:1"
    await h.executor.wait_started(key)
    executor = FakeExecutor(reattaches=True)
    reborn = JobRunner(
        h.runner.config, h.claims, h.kicked.append, h._publish, executor, find_app=with_trivial
    )
    assert await reborn.resume_claims() == 1
    await executor.wait_started(key)
    executor.finish(key, ExecutionResult(JobState.FAILURE, 3, 1.0, 0.1, 0, "exit 3"))
    await asyncio.wait_for(reborn.running[key].task or asyncio.sleep(0), 5)
    assert h.claims.docs[key]["state"] == "FAILURE"
    assert h.claims.events[-1].data["exit_code"] == 3


async def test_heartbeat_lists_the_attempts_in_hand(harness: Callable[..., Harness]) -> None:
    h = harness()
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id))
    await h.executor.wait_started(f"{job_id}:1")
    await h.runner.send_heartbeat()
    [beat] = h.published
    assert beat.data["slots_free"] == 1
    assert beat.data["running"] == [{"job_id": job_id, "attempt": 1}]
    h.executor.finish(f"{job_id}:1", success())
    await h.settle(f"{job_id}:1")
