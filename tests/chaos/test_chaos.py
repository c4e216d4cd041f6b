"""Crash scenarios of issue 'never lose or strand a job' (bounded: a few minutes in all)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from caesar_testkit.devstack import SERVICES
from tests.chaos.conftest import (
    ChaosStack,
    accepted_at_least,
    assert_promise_kept,
    burst,
    start_stack,
    upload_input,
)
from tests.conftest import REPO
from tests.integration.service_support import eventually

pytestmark = pytest.mark.chaos


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
def duplicating(tmp_path: Path) -> Iterator[ChaosStack]:
    yield from start_stack(tmp_path, CAESAR_DUPLICATE_PUBLISH="true")


async def test_every_message_published_twice(
    http: aiohttp.ClientSession, duplicating: ChaosStack, tmp_path: Path
) -> None:
    """(e) Every event and command is published twice: the projections end as in a normal run."""
    await upload_input(http, duplicating, tmp_path)
    await burst(http, duplicating, 60)
    states = await assert_promise_kept(http, duplicating)
    assert set(states.values()) == {"SUCCESS"}


async def test_core_services_killed_at_random_under_load(
    http: aiohttp.ClientSession, chaos: ChaosStack, tmp_path: Path
) -> None:
    """(f) SIGKILL the scheduler, monitor and accounting at random while 150 jobs run."""
    await upload_input(http, chaos, tmp_path)
    rng = random.Random(7)
    submitting = asyncio.ensure_future(burst(http, chaos, 150, seconds=0.2))
    kills = 0
    while not submitting.done() or kills < 6:
        await asyncio.sleep(1.5)
        victim = rng.choice(["scheduler", "monitor", "accounting"])
        chaos.stack.kill(victim, signal.SIGKILL)
        kills += 1
        await asyncio.sleep(0.5)
        chaos.stack.start(victim)
    await submitting
    for name in ("scheduler", "monitor", "accounting"):
        chaos.stack.wait_ready(name)
    states = await assert_promise_kept(http, chaos)
    assert set(states.values()) == {"SUCCESS"}


async def test_api_killed_under_submission_load(
    http: aiohttp.ClientSession, chaos: ChaosStack, tmp_path: Path
) -> None:
    """(d) SIGKILL the api twice during a burst; every accepted job still completes."""
    await upload_input(http, chaos, tmp_path)
    submitting = asyncio.ensure_future(burst(http, chaos, 150))
    for round_ in (1, 2):
        await accepted_at_least(chaos, 40 * round_)
        chaos.stack.kill("api", signal.SIGKILL)
        chaos.stack.start("api")
        chaos.stack.wait_ready("api")
    await submitting
    states = await assert_promise_kept(http, chaos)
    assert set(states.values()) == {"SUCCESS"}


def infra(*args: str) -> None:
    subprocess.run([str(REPO / "scripts" / "infra.sh"), *args], check=True, capture_output=True, timeout=120)


async def test_broker_down_for_ten_seconds_during_burst(
    http: aiohttp.ClientSession, chaos: ChaosStack, tmp_path: Path
) -> None:
    """(b) RabbitMQ stops for 10 s during a 200-job burst; nothing is lost or stuck."""
    await upload_input(http, chaos, tmp_path)
    submitting = asyncio.ensure_future(burst(http, chaos, 200))
    await accepted_at_least(chaos, 40)
    await asyncio.to_thread(infra, "ctl", "stop_app")
    try:
        await asyncio.sleep(10.0)
    finally:
        await asyncio.to_thread(infra, "ctl", "start_app")
    await submitting
    states = await assert_promise_kept(http, chaos)
    assert set(states.values()) == {"SUCCESS"}


async def test_database_restarted_during_burst(
    http: aiohttp.ClientSession, chaos: ChaosStack, tmp_path: Path
) -> None:
    """(c) The MongoDB-wire server is killed and restarted during a burst."""
    await upload_input(http, chaos, tmp_path)
    submitting = asyncio.ensure_future(burst(http, chaos, 150))
    await accepted_at_least(chaos, 30)
    run_dir = Path(os.environ.get("CAESAR_RUN_DIR", REPO / ".run"))
    pid = int((run_dir / "pids" / "mongo.pid").read_text().split()[0])
    await asyncio.to_thread(subprocess.run, ["kill", "-9", str(pid)], check=True)
    await asyncio.sleep(2.0)
    await asyncio.to_thread(infra, "start")
    await submitting
    states = await assert_promise_kept(http, chaos)
    assert set(states.values()) == {"SUCCESS"}


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (killed, but its frozen parent cannot reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_a_frozen_runner_never_runs_beside_its_retry(
    http: aiohttp.ClientSession, chaos: ChaosStack, tmp_path: Path
) -> None:
    """A runner SIGSTOPped past the monitor's timeout while a second runner is up, then
    SIGCONT: its attempts are retried on the other runner, the frozen attempts publish
    nothing and report no success, and every job ends once with one attempt's outputs."""
    chaos.stack.start("runner", instance="runner2")
    chaos.stack.wait_ready("runner2")
    await upload_input(http, chaos, tmp_path)
    await burst(http, chaos, 8, seconds=6.0)  # 4 slots on each runner
    api_jobs = chaos.db("api")["jobs"]
    await eventually(lambda: api_jobs.count_documents({"state": "RUNNING"}) == 8, 60, "8 jobs RUNNING")
    frozen_pid = chaos.stack.procs["runner"].pid
    frozen_runner = f"{socket.gethostname()}-{frozen_pid}"
    frozen_docs = list(api_jobs.find({"runner_id": frozen_runner}, {"_id": 1, "pid": 1}))
    frozen = [d["_id"] for d in frozen_docs]
    assert frozen, "the first runner took none of the jobs"
    frozen_processes = [int(d["pid"]) for d in frozen_docs]

    def retried_elsewhere() -> bool:
        moved = api_jobs.count_documents(
            {"_id": {"$in": frozen}, "attempt": {"$gte": 2}, "state": {"$in": ["RUNNING", "SUCCESS"]}}
        )
        return bool(moved == len(frozen))

    # The runner's own process group; its jobs run in sessions of their own, so they go
    # on running: the guardian must kill them before the retries start elsewhere.
    os.killpg(frozen_pid, signal.SIGSTOP)
    try:
        await eventually(retried_elsewhere, 90, "the frozen runner's jobs running again elsewhere")
        still_running = [pid for pid in frozen_processes if running(pid)]
        assert still_running == [], "a frozen runner's job ran beside its retry"
    finally:
        os.killpg(frozen_pid, signal.SIGCONT)
    states = await assert_promise_kept(http, chaos)
    assert set(states.values()) == {"SUCCESS"}
    claims = chaos.db("runner")["claims"]
    jobs_root = chaos.stack.root / "jobs" / "anonymous"
    for job_id in frozen:
        first = claims.find_one({"_id": f"{job_id}:1"})
        assert first is not None
        assert first["state"] == "FAILURE", first  # self-fenced or superseded, never SUCCESS
        assert not (jobs_root / job_id / "attempts" / "1" / "manifest.json").exists()
        final = api_jobs.find_one({"_id": job_id})
        assert final is not None
        served = jobs_root / job_id / "attempts" / str(final["attempt"]) / "manifest.json"
        assert f'"attempt": {final["attempt"]}' in served.read_text()


async def test_two_replicas_of_everything_one_of_each_killed_mid_burst(
    http: aiohttp.ClientSession, chaos: ChaosStack, tmp_path: Path
) -> None:
    """Every service runs twice; mid-burst one of each is SIGKILLed (for the scheduler, the one
    holding the dispatcher lease) and not restarted. The survivors finish every job once."""
    for name in SERVICES:
        chaos.stack.start(name, instance=f"{name}2")
    for name in SERVICES:
        chaos.stack.wait_ready(f"{name}2")
    chaos.more_apis = [f"http://127.0.0.1:{chaos.stack.ports['api2']}/caesar/api/v1.0"]
    await upload_input(http, chaos, tmp_path)
    submitting = asyncio.ensure_future(burst(http, chaos, 200))
    await accepted_at_least(chaos, 50)

    lease = chaos.db("scheduler")["leases"].find_one({"_id": "dispatcher"})
    assert lease is not None
    leader_pid = int(lease["holder"].split(":")[1])
    [leader] = [k for k in ("scheduler", "scheduler2") if chaos.stack.procs[k].pid == leader_pid]
    for victim in ("api2", leader, "runner2", "monitor2", "accounting2"):
        chaos.stack.kill(victim, signal.SIGKILL)
    await submitting
    states = await assert_promise_kept(http, chaos)
    assert set(states.values()) == {"SUCCESS"}
    survivor = "scheduler2" if leader == "scheduler" else "scheduler"
    taken = chaos.db("scheduler")["leases"].find_one({"_id": "dispatcher"})
    assert taken is not None
    assert int(taken["holder"].split(":")[1]) == chaos.stack.procs[survivor].pid
