"""The database refuses the runner's writes while attempts finish: no result is lost.

A MongoDB-wire server of its own, started with ``--enable-test-commands`` (tests only,
never in ``make up``), so MongoDB's ``configureFailPoint``/``failCommand`` can fail
exactly the runner's ``update`` commands (scoped by the client's ``appName``) while the
other services keep working. The runner must retry its RUNNING and terminal claim writes
until they land: a job that succeeded ends SUCCESS, once, not TIMED-OUT an hour later.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from caesar_testkit.devstack import free_port
from tests.chaos.conftest import CHAOS_ENV, ChaosStack, assert_promise_kept, burst, upload_input
from tests.conftest import isolated_stack
from tests.integration.service_support import eventually

pytestmark = pytest.mark.chaos

RUNNER_APP = "runner-under-test"
TOOLS = Path(os.environ.get("CAESAR_TOOLS_DIR", Path.home() / ".cache" / "caesar-rest" / "tools"))


@pytest.fixture
def failing_database(tmp_path: Path) -> Iterator[str]:
    """A secantusdb that accepts fail points, on a port of its own; stopped afterwards."""
    binary = TOOLS / "secantus" / "bin" / "secantusd-py"
    if not binary.exists():
        pytest.fail(f"secantusdb missing at {binary}; run scripts/infra.sh install")
    storage = tmp_path / "db"
    storage.mkdir()
    port = free_port()
    with (tmp_path / "db.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                str(binary),
                *("--host", "127.0.0.1", "--port", str(port), "--storage-path", str(storage)),
                "--sync-on-commit",
                "--enable-test-commands",
            ],
            cwd=storage,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"mongodb://127.0.0.1:{port}/?retryWrites=false"
    client: MongoClient[dict[str, object]] = MongoClient(url, serverSelectionTimeoutMS=1000)
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                client.admin.command("ping")
                break
            except PyMongoError:
                assert proc.poll() is None, (tmp_path / "db.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "secantusdb with test commands did not start"
                time.sleep(0.2)
        yield url
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


def fail_runner_updates(url: str, mode: object) -> None:
    client: MongoClient[dict[str, object]] = MongoClient(url)
    try:
        client.admin.command(
            {
                "configureFailPoint": "failCommand",
                "mode": mode,
                # 91 ShutdownInProgress: what a primary answers while it goes down.
                "data": {"failCommands": ["update"], "errorCode": 91, "appName": RUNNER_APP},
            }
        )
    finally:
        client.close()


async def running_jobs(http: aiohttp.ClientSession, chaos: ChaosStack) -> int:
    count = 0
    for job_id in list(chaos.accepted):
        async with http.get(f"{chaos.stack.v1}/job/{job_id}/status") as resp:
            if resp.status == 200 and (await resp.json())["state"] == "RUNNING":
                count += 1
    return count


async def test_runner_writes_refused_while_attempts_finish(
    http: aiohttp.ClientSession, failing_database: str, tmp_path: Path
) -> None:
    with isolated_stack(
        tmp_path / "stack",
        ["api", "scheduler", "monitor", "accounting"],
        prefix_letter="c",
        mongo_url=failing_database,
        **CHAOS_ENV,
    ) as stack:
        stack.start("runner", CAESAR_MONGO_URL=f"{failing_database}&appName={RUNNER_APP}")
        stack.wait_ready("runner")
        chaos = ChaosStack(stack, stack.db_prefix, mongo_url=failing_database)
        await upload_input(http, chaos, tmp_path)
        submitting = asyncio.ensure_future(burst(http, chaos, 24, seconds=1.5))

        async def some_running() -> bool:
            return await running_jobs(http, chaos) >= 2

        await eventually(some_running, 60, what="jobs RUNNING")
        # Every update the runner sends fails for 4 s: longer than the jobs in hand take
        # to finish, shorter than its self-fence and the RUNNING-write deadline.
        await asyncio.to_thread(fail_runner_updates, failing_database, "alwaysOn")
        try:
            await asyncio.sleep(4.0)
        finally:
            await asyncio.to_thread(fail_runner_updates, failing_database, "off")
        await submitting
        states = await assert_promise_kept(http, chaos)
        assert set(states.values()) == {"SUCCESS"}
        log = (stack.root / "logs" / "runner.log").read_text()
        assert '"what": "terminal state"' in log, "no terminal write was refused: the fault missed"
