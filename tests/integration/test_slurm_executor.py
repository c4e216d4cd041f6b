"""The Slurm executor on a real single-node Slurm, through the runner and the real broker.

Needs ``scripts/slurm.sh start`` (``scripts/test.sh`` does it): munged, slurmctld, slurmd
and slurmrestd (JWT) on 127.0.0.1. Long-running jobs use the test-only ``trivial`` app
(sleep, then exit with a chosen code); outcomes that matter to users use the real Aegean.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits

from caesar_common.apps import get_app
from caesar_common.apps.base import App
from caesar_common.apps.trivial import TrivialApp
from caesar_common.bus import Bus, runner_pool_queue
from caesar_common.events import Envelope, InputFile, JobCancelRequested
from caesar_common.runtime import ServiceRuntime
from caesar_runner.adapters.claims import INDEXES
from caesar_runner.adapters.slurmrestd import (
    SlurmAuthError,
    SlurmJob,
    SlurmRestClient,
    TokenSource,
    api_version,
)
from caesar_runner.bootstrap import OUTBOX_COLLECTIONS, build
from caesar_runner.executors.slurm import EXIT_RECORD, SCRIPT_FILE, identifies
from caesar_runner.settings import RunnerSettings
from caesar_testkit.skysim import SimulationSpec, write_simulation
from tests.conftest import REPO
from tests.integration.event_tap import EventTap, marker, outbox_drained
from tests.integration.runner_support import RunnerUnderTest, states_of
from tests.integration.runner_support import run_job as command_to_run

pytestmark = pytest.mark.integration
SLURM_SH = REPO / "scripts" / "slurm.sh"
SLURM_URL = os.environ.get("CAESAR_SLURM_URL", "http://127.0.0.1:6820")
FILE_ID = "a" * 32
NO_BEAM_ID = "b" * 32


def slurm_sh(*args: str) -> str:
    done = subprocess.run([str(SLURM_SH), *args], check=True, capture_output=True, text=True, timeout=90)
    return done.stdout


@pytest.fixture(scope="session")
def slurm_token() -> str:
    """A fresh JWT from the running test cluster (scripts/slurm.sh start)."""
    try:
        return slurm_sh("token", "7200").strip()
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"no Slurm to test against; run scripts/slurm.sh install start ({exc.stderr.strip()})")


@pytest.fixture
async def slurm(slurm_token: str) -> AsyncIterator[SlurmRestClient]:
    """A client of our own, to look at the cluster the way an operator would."""
    client = SlurmRestClient(SLURM_URL, api_version("v0.0.38"), "root", TokenSource(slurm_token))
    yield client
    await client.close()


def _with_trivial(name: str) -> App | None:
    """The runner's app lookup plus the test-only ``trivial`` app (sleep, exit code)."""
    return TrivialApp() if name == "trivial" else get_app(name)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "anonymous").mkdir(parents=True)
    write_simulation(SimulationSpec(size=128, seed=4), root / "anonymous" / f"{FILE_ID}.fits")
    no_beam = root / "anonymous" / f"{NO_BEAM_ID}.fits"
    write_simulation(SimulationSpec(size=128, seed=5), no_beam)
    with fits.open(no_beam, mode="update") as hdul:
        for key in ("BMAJ", "BMIN", "BPA"):
            hdul[0].header.remove(key, ignore_missing=True)
    return root


@pytest.fixture
async def start_runner(
    amqp_url: str,
    mongo_url: str,
    db_prefix: str,
    tmp_path: Path,
    data_root: Path,
    slurm_token: str,
) -> AsyncIterator[Callable[..., Any]]:
    """Start runners; whatever a test did not stop (it failed half-way) is stopped after it,
    so no runner outlives its test (a leaked robust connection retries forever)."""
    runner_id = f"slurm-test-{uuid.uuid4().hex[:6]}"
    started: list[RunnerUnderTest] = []

    async def start(token: str = slurm_token) -> RunnerUnderTest:
        settings = RunnerSettings(
            amqp_url=amqp_url,
            mongo_url=mongo_url,
            mongo_db_prefix=db_prefix,
            data_root=data_root,
            jobs_root=tmp_path / "jobs",
            slots=2,
            runner_id=runner_id,  # stable across a restart, as in a deployment
            heartbeat_interval_s=0.5,
            executor="slurm",
            slurm_url=SLURM_URL,
            slurm_user="root",
            slurm_token=token,
            slurm_poll_interval_s=0.5,
            slurm_max_poll_interval_s=2.0,
        )
        assert settings.pool == "slurm"
        runtime = ServiceRuntime("runner", settings, indexes=INDEXES, outbox_collections=OUTBOX_COLLECTIONS)
        await runtime.connect()
        job_runner = await build(runtime, find_app=_with_trivial)
        bus = Bus(amqp_url, "test")
        await bus.connect()
        started.append(RunnerUnderTest(runtime, job_runner, bus, tmp_path / "jobs"))
        return started[-1]

    yield start
    for under_test in started:
        if not under_test.stopped:
            await under_test.stop()


@pytest.fixture
async def runner(start_runner: Callable[..., Any]) -> AsyncIterator[RunnerUnderTest]:
    under_test: RunnerUnderTest = await start_runner()
    yield under_test
    await under_test.stop()


def run_job(job_id: str, app: str = "aegean", **overrides: Any) -> Envelope:
    return command_to_run(job_id, pool="slurm", file_id=FILE_ID, app=app, **overrides)


def sleeper(job_id: str, seconds: float, **overrides: Any) -> Envelope:
    return run_job(job_id, "trivial", params={"seconds": seconds}, **overrides)


async def slurm_jobs_of(client: SlurmRestClient, job_id: str, attempt: int = 1) -> list[SlurmJob]:
    return [j for j in await client.jobs() if identifies(j, job_id, attempt)]


def ends(job_id: str, state: str) -> Callable[[Envelope], bool]:
    return lambda e: e.subject == job_id and e.data["state"] == state


def terminal(job_id: str) -> Callable[[Envelope], bool]:
    terminal_states = {"SUCCESS", "FAILURE", "TIMED-OUT", "CANCELED", "ABORTED"}
    return lambda e: e.subject == job_id and e.data["state"] in terminal_states


async def test_aegean_on_slurm_succeeds_with_its_catalogue(
    runner: RunnerUnderTest, amqp_url: str, slurm: SlurmRestClient
) -> None:
    job_id = str(uuid.uuid4())
    async with EventTap(amqp_url, ["job.state.*"]) as tap:
        await runner.bus.publish(run_job(job_id), to_queue=runner_pool_queue("slurm"))
        final = await tap.wait_for(terminal(job_id), 120)
    assert final.data["state"] == "SUCCESS", final.data["reason"]
    assert states_of(tap, job_id) == ["STARTED", "RUNNING", "SUCCESS"]
    assert final.data["pool"] == "slurm"
    assert final.data["exit_code"] == 0
    names = {o["name"] for o in final.data["outputs"]}
    assert {"catalog_comp.csv", "catalog_comp.vot", "catalog_comp.reg"} <= names
    job_dir = runner.jobs_root / "anonymous" / job_id / "attempts" / "1"
    assert (job_dir / SCRIPT_FILE).is_file()
    assert '"exit_code": 0' in (job_dir / EXIT_RECORD).read_text()
    [slurm_job] = await slurm_jobs_of(slurm, job_id)
    assert slurm_job.state == "COMPLETED"


async def test_app_exiting_non_zero_fails_with_its_exit_code(runner: RunnerUnderTest, amqp_url: str) -> None:
    job_id = str(uuid.uuid4())
    command = run_job(job_id, input=InputFile(file_id=NO_BEAM_ID, ext="fits"))  # aegean needs a beam
    async with EventTap(amqp_url, ["job.state.*"]) as tap:
        await runner.bus.publish(command, to_queue=runner_pool_queue("slurm"))
        final = await tap.wait_for(terminal(job_id), 120)
    assert final.data["state"] == "FAILURE"
    assert final.data["exit_code"] == 1
    assert final.data["retryable"] is False
    assert "exited with code 1" in final.data["reason"]


async def test_cancel_of_a_running_slurm_job(
    runner: RunnerUnderTest, amqp_url: str, slurm: SlurmRestClient
) -> None:
    job_id = str(uuid.uuid4())
    async with EventTap(amqp_url, ["job.state.*"]) as tap:
        await runner.bus.publish(sleeper(job_id, 300), to_queue=runner_pool_queue("slurm"))
        await tap.wait_for(ends(job_id, "RUNNING"), 60)
        [running] = await slurm_jobs_of(slurm, job_id)
        assert running.state == "RUNNING"
        cancel = JobCancelRequested(job_id=job_id, owner="anonymous", requested_at=datetime.now(UTC))
        await runner.bus.publish(Envelope.wrap(cancel, "test"))
        final = await tap.wait_for(terminal(job_id), 60)
    assert final.data["state"] == "CANCELED"
    [gone] = await slurm_jobs_of(slurm, job_id)
    assert gone.state == "CANCELLED"


async def test_wall_time_exceeded_is_timed_out(runner: RunnerUnderTest, amqp_url: str) -> None:
    # Slurm's smallest limit is one minute, and slurmctld checks limits every 30 s.
    job_id = str(uuid.uuid4())
    async with EventTap(amqp_url, ["job.state.*"]) as tap:
        await runner.bus.publish(sleeper(job_id, 600, wall_time_s=60), to_queue=runner_pool_queue("slurm"))
        final = await tap.wait_for(terminal(job_id), 150)
    assert final.data["state"] == "TIMED-OUT"
    assert "wall time of 60 s exceeded" in final.data["reason"]


async def test_restarted_runner_resumes_its_slurm_job_and_reports_once(
    start_runner: Callable[..., Any], amqp_url: str, slurm: SlurmRestClient
) -> None:
    job_id = str(uuid.uuid4())
    first: RunnerUnderTest = await start_runner()
    async with EventTap(amqp_url, ["job.state.*"]) as tap:
        await first.bus.publish(sleeper(job_id, 12), to_queue=runner_pool_queue("slurm"))
        await tap.wait_for(ends(job_id, "RUNNING"), 60)
        await first.stop(crash=True)
        [still_running] = await slurm_jobs_of(slurm, job_id)
        assert still_running.state == "RUNNING"
        second: RunnerUnderTest = await start_runner()
        try:
            final = await tap.wait_for(terminal(job_id), 60)
            # Whatever the resumed runner reported is published once its outbox is empty,
            # and has arrived once a marker published after it has: nothing came twice.
            assert await outbox_drained(second.runtime.relay) == 0
            await tap.sync(second.bus.publish, marker())
        finally:
            await second.stop()
    assert final.data["state"] == "SUCCESS"
    assert states_of(tap, job_id) == ["STARTED", "RUNNING", "SUCCESS"]
    assert len(await slurm_jobs_of(slurm, job_id)) == 1  # found again, not resubmitted


async def test_jobs_complete_through_a_slurmrestd_outage(
    runner: RunnerUnderTest, amqp_url: str, slurm: SlurmRestClient
) -> None:
    job_id = str(uuid.uuid4())
    async with EventTap(amqp_url, ["job.state.*"]) as tap:
        await runner.bus.publish(sleeper(job_id, 5), to_queue=runner_pool_queue("slurm"))
        await tap.wait_for(ends(job_id, "RUNNING"), 60)
        await asyncio.to_thread(slurm_sh, "restd-stop")
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.to_thread(slurm_sh, "restd-start")
        final = await tap.wait_for(terminal(job_id), 60)
    assert final.data["state"] == "SUCCESS"
    assert states_of(tap, job_id) == ["STARTED", "RUNNING", "SUCCESS"]


async def test_forged_token_is_refused_and_reported(
    start_runner: Callable[..., Any], amqp_url: str, slurm_token: str, slurm: SlurmRestClient
) -> None:
    header, payload, signature = slurm_token.split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    client = SlurmRestClient(SLURM_URL, api_version("v0.0.38"), "root", TokenSource(forged))
    try:
        with pytest.raises(SlurmAuthError, match="refused the JWT"):
            await client.jobs()
    finally:
        await client.close()

    job_id = str(uuid.uuid4())
    forged_runner: RunnerUnderTest = await start_runner(token=forged)
    try:
        async with EventTap(amqp_url, ["job.state.*"]) as tap:
            await forged_runner.bus.publish(sleeper(job_id, 1), to_queue=runner_pool_queue("slurm"))
            final = await tap.wait_for(terminal(job_id), 60)
    finally:
        await forged_runner.stop()
    # An expired or wrong token is ours to fix, not the job's: retryable, and counted.
    assert (final.data["state"], final.data["retryable"]) == ("FAILURE", True)
    assert "Slurm refused the JWT of user root" in final.data["reason"]
    assert await slurm_jobs_of(slurm, job_id) == []
