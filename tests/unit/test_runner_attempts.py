"""The runner's use cases against in-memory fakes: claims, reports, slots, cancels."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from caesar_common.apps.base import App
from caesar_common.apps.registry import get_app
from caesar_common.apps.trivial import TrivialApp
from caesar_common.bus import Rejected
from caesar_common.events import Envelope, InputFile, RunJob
from caesar_common.ids import new_job_id
from caesar_common.jobstate import JobState
from caesar_common.layout import attempt_dir, manifest_path
from caesar_runner.domain.claim import HANDED_BACK, SELF_FENCED, Fence
from caesar_runner.executors.base import ExecutionResult
from caesar_runner.service.attempts import JobRunner, RunnerConfig
from tests.unit.fakes.runner import FakeClaimStore, FakeConsumer, FakeExecutor, success
from tests.unit.fakes.scheduler import Kicks

FILE_ID = "f" * 32
OWNER = "alice"


def with_trivial(name: str) -> App | None:
    return TrivialApp() if name == "trivial" else get_app(name)


class Harness:
    def __init__(self, tmp: Path, executor: FakeExecutor, slots: int = 2) -> None:
        self.now = 1000.0
        data = tmp / "data"
        (data / OWNER).mkdir(parents=True)
        (data / OWNER / f"{FILE_ID}.fits").write_bytes(b"SIMPLE")
        self.claims = FakeClaimStore()
        self.kicks = Kicks()
        self.published: list[Envelope] = []
        self.executor = executor
        self.consumer = FakeConsumer()
        config = RunnerConfig(
            "r1",
            "local",
            slots,
            data,
            tmp / "jobs",
            tmp / "bin",
            self_fence_s=5.0,
            fence_poll_interval_s=0.01,
            record_running_timeout_s=0.5,
        )
        self.jobs_root = config.jobs_root
        self.runner = JobRunner(
            config,
            self.claims,
            self.kicks,
            self._publish,
            executor,
            find_app=with_trivial,
            clock=lambda: self.now,
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
    assert key in h.kicks.ids
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


FORGED = [
    pytest.param({"input": InputFile(file_id="../bob/x", ext="fits")}, "not a file id", id="file-id"),
    pytest.param({"input": InputFile(file_id="f" * 32, ext="fits/../../x")}, "extension", id="ext"),
    pytest.param({"job_id": "../../etc"}, "not a job id", id="job-id"),
    pytest.param({"owner": "../bob"}, "owner", id="owner"),
]


@pytest.mark.parametrize(("forged", "why"), FORGED)
async def test_a_forged_command_is_refused_unclaimed_and_unreported(
    harness: Callable[..., Harness], forged: dict[str, object], why: str
) -> None:
    """Ids that would walk out of their roots: the command goes to the dead-letter queue
    with the reason (``Rejected``); nothing is claimed, run or reported, no slot is kept."""
    h = harness()
    msg = command(new_job_id()).model_copy(update=forged)
    with pytest.raises(Rejected, match=why):
        await h.runner.start_attempt(msg)
    assert h.claims.docs == {}
    assert h.claims.events == []
    assert h.executor.started == []
    assert h.runner._free._value == 2  # the slot taken for the command is free again


async def test_an_input_that_leads_out_of_its_owners_directory_is_refused(
    harness: Callable[..., Harness], tmp_path: Path
) -> None:
    """A symlink planted where alice's upload should be, pointing at bob's file."""
    h = harness()
    bob = tmp_path / "data" / "bob"
    bob.mkdir()
    (bob / f"{'b' * 32}.fits").write_bytes(b"SIMPLE")
    (tmp_path / "data" / OWNER / f"{'c' * 32}.fits").symlink_to(bob / f"{'b' * 32}.fits")
    msg = command(new_job_id()).model_copy(update={"input": InputFile(file_id="c" * 32, ext="fits")})
    with pytest.raises(Rejected, match="leads out of"):
        await h.runner.start_attempt(msg)
    assert h.claims.docs == {}
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
    reborn = JobRunner(h.runner.config, h.claims, h.kicks, h._publish, FakeExecutor())
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
    reborn = JobRunner(h.runner.config, h.claims, h.kicks, h._publish, executor, find_app=with_trivial)
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


async def test_a_superseded_attempt_stops_and_publishes_nothing(harness: Callable[..., Harness]) -> None:
    """Attempt 1, presumed lost, still runs when attempt 2 starts: it is fenced off."""
    h = harness()
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id, attempt=1))
    await h.executor.wait_started(f"{job_id}:1")
    attempt_dir(h.jobs_root, OWNER, job_id, 2).mkdir(parents=True)  # the retry's runner started it
    await h.settle(f"{job_id}:1")
    final = h.claims.events[-1].data
    # Retryable: not the attempt's true outcome, so it closes nothing.
    assert (final["state"], final["retryable"]) == ("FAILURE", True)
    assert final["reason"] == "superseded by attempt 2; outputs withdrawn"
    assert final["outputs"] == []
    assert not manifest_path(attempt_dir(h.jobs_root, OWNER, job_id, 1)).exists()


async def test_a_superseded_attempt_never_starts(harness: Callable[..., Harness]) -> None:
    h = harness()
    job_id = new_job_id()
    attempt_dir(h.jobs_root, OWNER, job_id, 3).mkdir(parents=True)
    await h.runner.start_attempt(command(job_id, attempt=2))
    await h.settle(f"{job_id}:2")
    assert h.executor.started == []
    assert h.claims.events[-1].data["reason"] == "superseded by attempt 3; outputs withdrawn"
    assert not attempt_dir(h.jobs_root, OWNER, job_id, 2).exists()


async def test_a_slow_attempt_that_finishes_first_withdraws_its_retry(
    harness: Callable[..., Harness],
) -> None:
    """Attempt 1, presumed lost, succeeds before its retry starts: the retry never runs."""
    h = harness()
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id, attempt=1))
    h.executor.finish(f"{job_id}:1", success())
    await h.settle(f"{job_id}:1")
    assert h.claims.fences[job_id].closed
    await h.runner.start_attempt(command(job_id, attempt=2))  # the retry's command arrives
    assert h.executor.started == [f"{job_id}:1"]
    assert f"{job_id}:2" not in h.claims.docs
    assert h.claims.states(job_id) == [(1, "STARTED"), (1, "RUNNING"), (1, "SUCCESS")]
    assert not attempt_dir(h.jobs_root, OWNER, job_id, 2).exists()
    assert h.consumer.prefetch == 2  # the withdrawn command holds no slot


async def test_a_closed_fence_carries_the_outcome_even_if_the_claim_is_never_written(
    harness: Callable[..., Harness],
) -> None:
    """The runner dies (here: its claim writes fail) after closing the fence: the outcome is
    already in the fence's outbox, so the scheduler learns it and withdraws the retry that
    the fence will refuse, instead of waiting for it forever."""
    h = harness()
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id, attempt=1))
    await h.executor.wait_started(f"{job_id}:1")
    real_update = h.claims.update
    gate = asyncio.Event()

    async def claim_unwritable(*args: object, **kwargs: object) -> bool:
        gate.set()
        raise ConnectionError("the runner is gone")

    h.claims.update = claim_unwritable  # type: ignore[method-assign]
    h.executor.finish(f"{job_id}:1", success())
    await asyncio.wait_for(gate.wait(), 5)
    assert h.claims.fences[job_id] == Fence(holder=1, closed=True)
    assert h.claims.states(job_id)[-1] == (1, "SUCCESS")  # in the fence's outbox
    assert h.kicks.ids[-1] == job_id  # handed to the relay at once
    h.claims.update = real_update  # type: ignore[method-assign]
    await h.settle(f"{job_id}:1")
    assert h.claims.docs[f"{job_id}:1"]["state"] == "SUCCESS"
    assert h.claims.states(job_id).count((1, "SUCCESS")) == 1  # the claim adds no second event


async def test_a_retry_that_started_first_withdraws_the_slow_outcome(
    harness: Callable[..., Harness],
) -> None:
    """The retry took the fence before the slow attempt finished: the success is not reported."""
    h = harness(slots=3)
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id, attempt=1))
    await h.executor.wait_started(f"{job_id}:1")
    h.claims.fences[job_id] = Fence(holder=2)  # another runner claimed attempt 2 (no directory yet)
    h.executor.finish(f"{job_id}:1", success())
    await h.settle(f"{job_id}:1")
    final = h.claims.events[-1].data
    assert (final["attempt"], final["state"], final["retryable"]) == (1, "FAILURE", True)
    assert final["reason"] == "superseded by attempt 2; outputs withdrawn"
    assert final["outputs"] == []
    assert h.claims.docs[f"{job_id}:1"]["state"] == "FAILURE"
    assert h.claims.fences[job_id] == Fence(holder=2)


async def test_a_stale_command_for_an_attempt_already_replaced_is_dropped(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    job_id = new_job_id()
    h.claims.fences[job_id] = Fence(holder=3)
    await h.runner.start_attempt(command(job_id, attempt=2))
    assert h.claims.docs == {}
    assert h.executor.started == []


async def test_each_attempt_writes_its_own_directory(harness: Callable[..., Harness]) -> None:
    h = harness()
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id, attempt=1))
    h.executor.finish(f"{job_id}:1", success())
    await h.settle(f"{job_id}:1")
    manifest = manifest_path(attempt_dir(h.jobs_root, OWNER, job_id, 1))
    assert '"attempt": 1' in manifest.read_text()
    assert oct(attempt_dir(h.jobs_root, OWNER, job_id, 1).parent.parent.stat().st_mode & 0o777) == "0o750"


async def test_running_that_cannot_be_recorded_kills_the_job(harness: Callable[..., Harness]) -> None:
    h = harness()
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id))  # claimed; the attempt's task has not run yet
    h.claims.failing = 2  # the database goes away for the RUNNING write (0.5 s allowed)
    await h.settle(f"{job_id}:1")
    assert h.claims.states(job_id) == [(1, "STARTED"), (1, "FAILURE")]
    final = h.claims.events[-1].data
    assert final["retryable"] is True
    assert "RUNNING could not be recorded" in final["reason"]


async def test_the_terminal_write_is_retried_until_the_database_takes_it(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id))
    await h.executor.wait_started(f"{job_id}:1")
    h.claims.failing = 3
    h.executor.finish(f"{job_id}:1", success())
    await h.settle(f"{job_id}:1")
    assert h.claims.failing == 0
    assert h.claims.states(job_id)[-1] == (1, "SUCCESS")


async def test_a_runner_cut_off_for_the_fence_time_stops_its_jobs(harness: Callable[..., Harness]) -> None:
    h = harness()
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id))
    await h.executor.wait_started(f"{job_id}:1")
    h.now += 4.0
    assert h.runner.check_self_fence() == 0  # within the fence time
    await h.runner.send_heartbeat()  # broker and database answer: the clock restarts
    h.now += 4.0
    assert h.runner.check_self_fence() == 0
    h.claims.failing = 1  # the database stops answering; the beat itself still goes out
    with pytest.raises(ConnectionError):
        await h.runner.send_heartbeat()
    h.now += 2.0
    assert h.runner.check_self_fence() == 1  # 6 s since the database last answered
    await h.settle(f"{job_id}:1")
    final = h.claims.events[-1].data
    assert (final["state"], final["retryable"], final["reason"]) == ("FAILURE", True, SELF_FENCED)


async def test_jobs_that_outlive_the_runner_are_not_self_fenced(harness: Callable[..., Harness]) -> None:
    h = harness(FakeExecutor(reattaches=True))
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id))
    await h.executor.wait_started(f"{job_id}:1")
    h.now += 60.0
    assert h.runner.check_self_fence() == 0
    h.executor.finish(f"{job_id}:1", success())
    await h.settle(f"{job_id}:1")


async def test_a_finished_attempt_is_listed_until_its_outcome_is_published(
    harness: Callable[..., Harness],
) -> None:
    """The monitor fails attempts a live runner stops listing: not one whose event waits."""
    h = harness()
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id))
    h.executor.finish(f"{job_id}:1", success())
    await h.settle(f"{job_id}:1")
    h.claims.pending.add(f"{job_id}:1")  # the terminal event is still in the outbox
    await h.runner.send_heartbeat()
    assert h.published[-1].data["running"] == [{"job_id": job_id, "attempt": 1}]
    assert h.published[-1].data["slots_free"] == 2
    h.claims.pending.clear()  # the relay published it
    await h.runner.send_heartbeat()
    assert h.published[-1].data["running"] == []


async def test_a_job_that_finishes_while_its_runner_was_frozen_is_no_success(
    harness: Callable[..., Harness],
) -> None:
    """SIGSTOPped past the fence time, then continued: the job's processes exit 0 at once,
    but the monitor may already have the attempt retried elsewhere."""
    h = harness()
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id))
    await h.executor.wait_started(f"{job_id}:1")
    h.now += 30.0  # frozen: no beat, no check ran meanwhile
    h.executor.finish(f"{job_id}:1", success())
    await h.settle(f"{job_id}:1")
    final = h.claims.events[-1].data
    assert (final["state"], final["retryable"], final["reason"]) == ("FAILURE", True, SELF_FENCED)
    assert not manifest_path(attempt_dir(h.jobs_root, OWNER, job_id, 1)).exists()


async def test_a_full_runner_stops_consuming_even_when_attempts_start_together(
    harness: Callable[..., Harness],
) -> None:
    """Broker calls of attempts starting at once interleave: the last word must be 'full'."""
    h = harness(slots=4)
    ids = [new_job_id() for _ in range(4)]
    await asyncio.gather(*(h.runner.start_attempt(command(job_id)) for job_id in ids))
    assert len(h.runner.running) == 4
    assert h.consumer.paused
    for job_id in ids:
        h.executor.finish(f"{job_id}:1", success())
        await h.settle(f"{job_id}:1")
    assert not h.consumer.paused
