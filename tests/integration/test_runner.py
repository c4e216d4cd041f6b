"""The runner through the real broker and database, running the real Aegean."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from caesar_common.bus import Bus, runner_pool_queue
from caesar_common.events import Envelope, InputFile, JobCancelRequested, RunJob
from caesar_common.runtime import ServiceRuntime
from caesar_runner.adapters.claims import CANCELS, CLAIMS, INDEXES
from caesar_runner.bootstrap import OUTBOX_COLLECTIONS, build
from caesar_runner.service.attempts import JobRunner
from caesar_runner.settings import RunnerSettings
from caesar_testkit.skysim import SimulationSpec, write_simulation
from tests.integration.event_tap import EventTap, marker, outbox_drained
from tests.integration.service_support import eventually, handled

pytestmark = pytest.mark.integration
FILE_ID = "f" * 32


@dataclass
class RunnerUnderTest:
    runtime: ServiceRuntime[RunnerSettings]
    runner: JobRunner
    bus: Bus
    jobs_root: Path


@pytest.fixture
async def runner(
    amqp_url: str, mongo_url: str, db_prefix: str, tmp_path: Path
) -> AsyncIterator[RunnerUnderTest]:
    data_root, jobs_root = tmp_path / "data", tmp_path / "jobs"
    (data_root / "anonymous").mkdir(parents=True)
    write_simulation(SimulationSpec(size=128, seed=4), data_root / "anonymous" / f"{FILE_ID}.fits")
    settings = RunnerSettings(
        amqp_url=amqp_url,
        mongo_url=mongo_url,
        mongo_db_prefix=db_prefix,
        data_root=data_root,
        jobs_root=jobs_root,
        slots=2,
        runner_id="runner-test",
        heartbeat_interval_s=0.5,
    )
    runtime = ServiceRuntime("runner", settings, indexes=INDEXES, outbox_collections=OUTBOX_COLLECTIONS)
    await runtime.connect()
    job_runner = await build(runtime)
    bus = Bus(amqp_url, "test")
    await bus.connect()
    yield RunnerUnderTest(runtime, job_runner, bus, jobs_root)
    await bus.close()
    await runtime.shutdown(grace_s=5)


def run_job(job_id: str, params: dict[str, object] | None = None, file_id: str = FILE_ID) -> Envelope:
    return Envelope.wrap(
        RunJob(
            job_id=job_id,
            owner="anonymous",
            app="aegean",
            attempt=1,
            params=params if params is not None else {"bkgbox": 40, "bkggrid": 10},
            input=InputFile(file_id=file_id, ext="fits"),
            wall_time_s=120,
            pool="local",
        ),
        "test",
    )


def states_of(tap: EventTap, job_id: str) -> list[str]:
    return [e.data["state"] for e in tap.received if e.subject == job_id]


async def test_job_runs_and_reports_outputs(runner: RunnerUnderTest, amqp_url: str) -> None:
    job_id = str(uuid.uuid4())
    async with EventTap(amqp_url, ["job.state.*"]) as tap:
        await runner.bus.publish(run_job(job_id), to_queue=runner_pool_queue("local"))
        final = await tap.wait_for(lambda e: e.subject == job_id and e.data["state"] == "SUCCESS", 90)
    assert states_of(tap, job_id) == ["STARTED", "RUNNING", "SUCCESS"]
    data = final.data
    assert data["exit_code"] == 0
    assert data["cpu_s"] > 0
    assert data["peak_rss_bytes"] > 10 * 2**20
    assert data["runner_id"] == "runner-test"
    names = {o["name"] for o in data["outputs"]}
    assert {"catalog_comp.csv", "catalog_comp.vot", "catalog_comp.reg"} <= names
    assert "image_bkg.fits" not in names  # BANE maps only with save-bkgmap
    job_dir = runner.jobs_root / "anonymous" / job_id / "attempts" / "1"
    assert (job_dir / "manifest.json").is_file()
    assert await outbox_drained(runner.runtime.relay) == 0


async def test_redelivered_command_never_starts_a_second_process(
    runner: RunnerUnderTest, amqp_url: str
) -> None:
    job_id = str(uuid.uuid4())
    command = run_job(job_id)
    queue = runner_pool_queue("local")
    before = handled(queue)
    async with EventTap(amqp_url, ["job.state.*"]) as tap:
        await runner.bus.publish(command, to_queue=queue)
        await runner.bus.publish(command, to_queue=queue)
        await tap.wait_for(lambda e: e.subject == job_id and e.data["state"] == "SUCCESS", 90)
        # Both deliveries handled and acked (the second found the claim), every event they
        # caused published (the outbox is empty), and a marker published after that has
        # arrived: the tap holds all of the job's events.
        await eventually(lambda: handled(queue) >= before + 2, what="both deliveries handled")
        assert await outbox_drained(runner.runtime.relay) == 0
        await tap.sync(runner.bus.publish, marker())
    assert states_of(tap, job_id) == ["STARTED", "RUNNING", "SUCCESS"]
    claims = runner.runtime.collection(CLAIMS)
    assert await claims.count_documents({"job_id": job_id}) == 1


async def test_cancel_before_claim_never_runs(runner: RunnerUnderTest, amqp_url: str) -> None:
    job_id = str(uuid.uuid4())
    async with EventTap(amqp_url, ["job.state.*"]) as tap:
        await runner.bus.publish(
            Envelope.wrap(
                JobCancelRequested(job_id=job_id, owner="anonymous", requested_at=datetime.now(UTC)), "t"
            )
        )
        cancels = runner.runtime.collection(CANCELS)

        async def cancel_recorded() -> bool:
            return await cancels.find_one({"_id": job_id}) is not None

        await eventually(cancel_recorded, what="the cancel to be recorded")
        await runner.bus.publish(run_job(job_id), to_queue=runner_pool_queue("local"))
        await tap.wait_for(lambda e: e.subject == job_id, 30)
        # Every event of the claim published, then a marker: nothing else of the job came.
        assert await outbox_drained(runner.runtime.relay) == 0
        await tap.sync(runner.bus.publish, marker())
    assert states_of(tap, job_id) == ["CANCELED"]
    assert not (runner.jobs_root / "anonymous" / job_id).exists()


@pytest.mark.parametrize(
    ("params", "file_id", "reason"),
    [
        ({"seedthr": "five"}, FILE_ID, "invalid parameters"),
        ({}, "0" * 32, "missing"),
    ],
)
async def test_unrunnable_command_is_aborted_with_reason(
    runner: RunnerUnderTest, amqp_url: str, params: dict[str, object], file_id: str, reason: str
) -> None:
    job_id = str(uuid.uuid4())
    async with EventTap(amqp_url, ["job.state.*"]) as tap:
        await runner.bus.publish(run_job(job_id, params, file_id), to_queue=runner_pool_queue("local"))
        event = await tap.wait_for(lambda e: e.subject == job_id, 30)
    assert event.data["state"] == "ABORTED"
    assert reason in event.data["reason"]


async def test_heartbeats_report_capacity(runner: RunnerUnderTest, amqp_url: str) -> None:
    async with EventTap(amqp_url, ["runner.heartbeat"]) as tap:
        beat = await tap.wait_for(lambda e: True, 10)
    assert beat.data["runner_id"] == "runner-test"
    assert beat.data["slots_total"] == 2
    assert beat.data["pool"] == "local"
