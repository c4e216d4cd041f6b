"""Crash scenarios of issue 'never lose or strand a job' (bounded: a few minutes in all)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.chaos.conftest import (
    ChaosStack,
    accepted_at_least,
    assert_promise_kept,
    burst,
    start_stack,
    upload_input,
)
from tests.conftest import REPO

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
