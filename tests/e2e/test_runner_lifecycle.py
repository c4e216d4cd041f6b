"""Runner shutdown and restart: jobs are handed back or reconciled, never stranded."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, write_simulation
from tests.e2e.conftest import make_stack, submit, timeline, upload, wait_state

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A runner with a stable id (as a supervisor would give it) and a short SIGTERM grace.

    The monitor's runner timeout is long, so a quick outcome can only come from the
    runner itself (hand-back at shutdown, reconciliation at restart).
    """
    yield from make_stack(
        tmp_path_factory.mktemp("lifecycle"),
        CAESAR_SLOTS="2",
        CAESAR_RUNNER_ID="runner-a",
        CAESAR_SHUTDOWN_GRACE_S="1",
        CAESAR_HEARTBEAT_INTERVAL_S="1",
        CAESAR_RUNNER_TIMEOUT_S="300",
        CAESAR_RETRY_BACKOFF_S="0.5",
        CAESAR_OUTBOX_SWEEP_INTERVAL_S="1",
        CAESAR_ENABLE_TEST_APPS="true",
    )


async def start_long_job(http: aiohttp.ClientSession, stack: Stack, tmp_path: Path, seconds: float) -> str:
    image = tmp_path / "tiny.fits"
    write_simulation(SimulationSpec(size=64, seed=1, n_sources=2), image)
    file_id = await upload(http, stack, image)
    payload = {"app": "trivial", "job_inputs": {"seconds": seconds}, "data_inputs": file_id}
    job_id = await submit(http, stack, payload)
    await wait_state(http, stack, job_id, {"RUNNING"}, timeout_s=60)
    return job_id


async def test_sigterm_hands_running_jobs_back_for_retry(
    http: aiohttp.ClientSession, stack: Stack, tmp_path: Path
) -> None:
    job_id = await start_long_job(http, stack, tmp_path, seconds=30)
    stack.kill("runner", signal.SIGTERM)
    stack.start("runner")
    stack.wait_ready("runner")
    final = await wait_state(http, stack, job_id, timeout_s=120)
    assert final["state"] == "SUCCESS", final
    events = await timeline(http, stack, job_id)
    first = [e for e in events if e.get("attempt") == 1 and e.get("state") == "FAILURE"]
    assert first
    assert "handed back" in first[0]["reason"]


async def test_restarted_runner_reports_its_orphaned_attempts(
    http: aiohttp.ClientSession, stack: Stack, tmp_path: Path
) -> None:
    job_id = await start_long_job(http, stack, tmp_path, seconds=30)
    stack.kill("runner", signal.SIGKILL)
    stack.start("runner")
    stack.wait_ready("runner")
    final = await wait_state(http, stack, job_id, timeout_s=120)
    assert final["state"] == "SUCCESS", final
    events = await timeline(http, stack, job_id)
    first = [e for e in events if e.get("attempt") == 1 and e.get("state") == "FAILURE"]
    assert first
    assert "runner restarted" in first[0]["reason"]
