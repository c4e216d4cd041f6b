"""Chaos tests: the whole stack under load while parts of it crash.

After every scenario the same promise is checked: every job the api accepted is in
exactly one terminal state, no job ran to SUCCESS twice, accounting agrees with the
jobs, and no outbox holds an unpublished event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pymongo import MongoClient

from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, write_simulation
from tests.conftest import MONGO_URL, isolated_stack

TERMINAL = {"SUCCESS", "FAILURE", "TIMED-OUT", "CANCELED", "ABORTED"}
CHAOS_ENV = {
    "CAESAR_ENABLE_TEST_APPS": "true",
    "CAESAR_SLOTS": "4",
    "CAESAR_HEARTBEAT_INTERVAL_S": "1",
    "CAESAR_RUNNER_TIMEOUT_S": "6",
    # Below the monitor's timeout, as in production: a cut-off runner stops first.
    "CAESAR_SELF_FENCE_S": "4",
    "CAESAR_WATCHDOG_INTERVAL_S": "1",
    "CAESAR_OUTBOX_SWEEP_INTERVAL_S": "0.5",
    "CAESAR_RETRY_BACKOFF_S": "0.5",
    "CAESAR_MAX_ATTEMPTS": "5",
    "CAESAR_MAX_ACTIVE_PER_USER": "0",
    # A scheduler replica takes over dispatching within seconds of the other's death.
    "CAESAR_LEADER_LEASE_S": "3",
}


@dataclass
class ChaosStack:
    stack: Stack
    prefix: str
    file_id: str = ""
    accepted: list[str] = field(default_factory=list)
    more_apis: list[str] = field(default_factory=list)
    """v1 base URLs of api replicas besides the stack's own (clients spread over all)."""
    mongo_url: str = MONGO_URL

    def db(self, service: str) -> Any:
        return MongoClient(self.mongo_url)[f"{self.prefix}_{service}"]


def start_stack(tmp: Path, **extra: str) -> Iterator[ChaosStack]:
    with isolated_stack(tmp, prefix_letter="c", **{**CHAOS_ENV, **extra}) as stack:
        yield ChaosStack(stack, stack.db_prefix)


@pytest.fixture
def chaos(tmp_path: Path) -> Iterator[ChaosStack]:
    yield from start_stack(tmp_path)


async def upload_input(http: aiohttp.ClientSession, chaos: ChaosStack, tmp: Path) -> str:
    image = tmp / "tiny.fits"
    write_simulation(SimulationSpec(size=64, seed=1, n_sources=2), image)
    form = aiohttp.FormData()
    form.add_field("file", image.read_bytes(), filename="tiny.fits")
    async with http.post(f"{chaos.stack.v1}/upload", data=form) as resp:
        assert resp.status == 200
        chaos.file_id = (await resp.json())["uuid"]
        return chaos.file_id


async def burst(
    http: aiohttp.ClientSession, chaos: ChaosStack, n: int, *, clients: int = 8, seconds: float = 0.05
) -> None:
    """Submit ``n`` trivial jobs from ``clients`` concurrent clients; keep the accepted ids.

    A request that fails (the api is being killed, the database is restarting) is
    retried until it is accepted, as a real client would; only 202s count as accepted.
    """
    payload = {"app": "trivial", "job_inputs": {"seconds": seconds}, "data_inputs": chaos.file_id}
    todo = list(range(n))
    apis = [chaos.stack.v1, *chaos.more_apis]

    async def client(index: int) -> None:
        while todo:
            todo.pop()
            while True:
                try:
                    async with http.post(f"{apis[index % len(apis)]}/job", json=payload) as resp:
                        if resp.status == 202:
                            chaos.accepted.append((await resp.json())["job_id"])
                            break
                except (TimeoutError, aiohttp.ClientError):
                    index += 1  # that api is away: try the next replica, as a load balancer would
                await asyncio.sleep(0.2)

    await asyncio.gather(*(client(i) for i in range(clients)))


async def accepted_at_least(chaos: ChaosStack, n: int, timeout_s: float = 60.0) -> None:
    """Wait until the burst has ``n`` accepted jobs, so a fault strikes mid-burst on a
    fast or a slow machine alike (a fixed sleep may fall before or after the burst)."""
    deadline = time.monotonic() + timeout_s
    while len(chaos.accepted) < n:
        assert time.monotonic() < deadline, f"only {len(chaos.accepted)} of {n} jobs accepted"
        await asyncio.sleep(0.05)


async def wait_all_terminal(
    http: aiohttp.ClientSession, chaos: ChaosStack, timeout_s: float = 180.0
) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    states: dict[str, str] = {}
    pending = set(chaos.accepted)
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            try:
                async with http.get(f"{chaos.stack.v1}/job/{job_id}/status") as resp:
                    if resp.status == 200:
                        state = (await resp.json())["state"]
                        states[job_id] = state
                        if state in TERMINAL:
                            pending.discard(job_id)
            except (TimeoutError, aiohttp.ClientError):
                pass
        if pending:
            await asyncio.sleep(1.0)
    stuck = {j: states.get(j) for j in pending}
    assert not stuck, f"{len(stuck)} jobs not terminal after {timeout_s} s: {list(stuck.items())[:5]}"
    return states


async def wait_outboxes_empty(chaos: ChaosStack, timeout_s: float = 30.0) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(chaos.mongo_url)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            left = {}
            for name in client.list_database_names():
                if name.startswith(chaos.prefix + "_"):
                    for coll in client[name].list_collection_names():
                        count = client[name][coll].count_documents({"outbox_pending": True})
                        if count:
                            left[f"{name}.{coll}"] = count
            if not left:
                return
            assert time.monotonic() < deadline, f"events left in outboxes: {left}"
            await asyncio.sleep(0.5)
    finally:
        client.close()


async def assert_promise_kept(http: aiohttp.ClientSession, chaos: ChaosStack) -> dict[str, str]:
    """Every accepted job settled once, never ran to SUCCESS twice; accounting agrees."""
    assert len(set(chaos.accepted)) == len(chaos.accepted)
    states = await wait_all_terminal(http, chaos)
    # Jobs the api recorded but whose 202 was lost (api killed mid-request) must settle too.
    api_jobs = chaos.db("api")["jobs"]
    deadline = time.monotonic() + 60
    while api_jobs.count_documents({"state": {"$nin": sorted(TERMINAL)}}) and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
    assert api_jobs.count_documents({"state": {"$nin": sorted(TERMINAL)}}) == 0

    claims = chaos.db("runner")["claims"]
    successes: dict[str, int] = {}
    for claim in claims.find({"state": "SUCCESS"}, {"job_id": 1}):
        successes[claim["job_id"]] = successes.get(claim["job_id"], 0) + 1
    assert all(count == 1 for count in successes.values()), "a job ran to SUCCESS twice"

    # The monitor's view agrees with the api's on every job.
    timelines = {d["_id"]: d["state"] for d in chaos.db("monitor")["timelines"].find({}, {"state": 1})}
    for job_id, state in states.items():
        assert timelines.get(job_id) == state, (job_id, state, timelines.get(job_id))

    recorded = api_jobs.count_documents({})
    by_state: dict[str, int] = {}
    for doc in api_jobs.find({}, {"state": 1}):
        by_state[doc["state"]] = by_state.get(doc["state"], 0) + 1
    deadline = time.monotonic() + 30
    totals: dict[str, Any] = {}
    while time.monotonic() < deadline:
        url = f"http://127.0.0.1:{chaos.stack.ports['accounting']}/usage?owner=anonymous"
        async with http.get(url) as resp:
            totals = (await resp.json())["totals"]
        if totals["njobs"] == recorded and totals["njobs_completed"] == by_state.get("SUCCESS", 0):
            break
        await asyncio.sleep(1.0)
    assert totals["njobs"] == recorded
    assert totals["njobs_completed"] == by_state.get("SUCCESS", 0)
    assert totals["njobs_active"] == 0
    await wait_outboxes_empty(chaos)
    return states
