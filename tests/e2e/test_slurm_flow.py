"""The v1.0 API end to end with a Slurm pool: big images go to Slurm, small ones stay local.

All five services run as processes, plus a second runner serving ``runner.slurm``
against the single-node Slurm that ``scripts/slurm.sh start`` runs on 127.0.0.1.
"""

from __future__ import annotations

import csv
import io
import signal
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, write_simulation
from tests.conftest import REPO
from tests.e2e.conftest import make_stack, status, submit, timeline, upload, wait_state
from tests.integration.service_support import eventually

pytestmark = pytest.mark.e2e
SLURM_MIN_IMAGE_BYTES = 1_000_000  # a 512x512 float32 map is ~1 MB; 128x128 is ~66 kB


@pytest.fixture(scope="module")
def slurm_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    try:
        token = subprocess.run(
            [str(REPO / "scripts" / "slurm.sh"), "token", "7200"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"no Slurm to test against; run scripts/slurm.sh install start ({exc.stderr.strip()})")
    for stack in make_stack(
        tmp_path_factory.mktemp("slurm-stack"),
        CAESAR_POOLS='["local", "slurm"]',
        CAESAR_SLURM_MIN_IMAGE_BYTES=str(SLURM_MIN_IMAGE_BYTES),
        CAESAR_SLURM_TOKEN=token,
        CAESAR_SLURM_USER="root",  # the test cluster's slurmd runs as root; no default exists
        CAESAR_SLURM_POLL_INTERVAL_S="0.5",
        CAESAR_HEARTBEAT_INTERVAL_S="1",
        # Runners of other pools are declared lost after 6 s; Slurm keeps its own 900 s.
        CAESAR_RUNNER_TIMEOUT_S="6",
        CAESAR_SELF_FENCE_S="4",
        CAESAR_WATCHDOG_INTERVAL_S="1",
        CAESAR_ENABLE_TEST_APPS="true",
    ):
        stack.start("runner", instance="runner-slurm", CAESAR_EXECUTOR="slurm", CAESAR_RUNNER_ID="e2e-slurm")
        stack.wait_ready("runner-slurm")
        yield stack


async def test_big_image_runs_aegean_on_slurm_small_one_locally(
    http: aiohttp.ClientSession, slurm_stack: Stack, tmp_path: Path
) -> None:
    big, small = tmp_path / "big.fits", tmp_path / "small.fits"
    write_simulation(SimulationSpec(size=512, seed=21), big)
    write_simulation(SimulationSpec(size=128, seed=22), small)
    assert big.stat().st_size >= SLURM_MIN_IMAGE_BYTES > small.stat().st_size
    params = {"seedthr": 5, "mergethr": 4}
    big_job = await submit(
        http,
        slurm_stack,
        {"app": "aegean", "job_inputs": params, "data_inputs": await upload(http, slurm_stack, big)},
    )
    small_job = await submit(
        http,
        slurm_stack,
        {"app": "aegean", "job_inputs": params, "data_inputs": await upload(http, slurm_stack, small)},
    )

    final = await wait_state(http, slurm_stack, big_job, timeout_s=180)
    assert final["state"] == "SUCCESS", final
    assert final["pool"] == "slurm"
    assert final["exit_code"] == 0
    async with http.get(f"{slurm_stack.v1}/job/{big_job}/output") as resp:
        assert resp.status == 200
        blob = await resp.read()
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        names = tar.getnames()
        catalogue = next(n for n in names if n.endswith("catalog_comp.csv"))
        member = tar.extractfile(catalogue)
        assert member is not None
        rows = list(csv.DictReader(io.TextIOWrapper(member)))
    assert len(rows) > 10
    assert any(n.endswith("slurm-job.sh") for n in names)  # it really went through sbatch

    small_final = await wait_state(http, slurm_stack, small_job, timeout_s=180)
    assert small_final["state"] == "SUCCESS", small_final
    assert small_final["pool"] == "local"
    assert (await status(http, slurm_stack, big_job))["pool"] == "slurm"


async def slurm_slots(http: aiohttp.ClientSession, stack: Stack) -> float:
    """The monitor's count of live Slurm runner slots (runners heard within the timeout)."""
    async with http.get(f"http://127.0.0.1:{stack.ports['monitor']}/metrics") as resp:
        text = await resp.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "caesar_runner_slots" and sample.labels == {"pool": "slurm", "kind": "total"}:
                return float(sample.value)
    return 0.0


async def test_a_slurm_runner_away_longer_than_the_runner_timeout_resubmits_nothing(
    http: aiohttp.ClientSession, slurm_stack: Stack, tmp_path: Path
) -> None:
    """The Slurm job runs on while its runner is down; the restarted runner reattaches to it
    and reports it. No attempt is declared lost, nothing is cancelled or submitted again."""
    big = tmp_path / "big.fits"
    write_simulation(SimulationSpec(size=512, seed=23), big)
    file_id = await upload(http, slurm_stack, big)
    job_id = await submit(
        http, slurm_stack, {"app": "trivial", "job_inputs": {"seconds": 20}, "data_inputs": file_id}
    )
    running = await wait_state(http, slurm_stack, job_id, {"RUNNING"}, timeout_s=120)
    assert running["pool"] == "slurm"

    async def runner_counted_alive() -> bool:
        return await slurm_slots(http, slurm_stack) > 0

    await eventually(runner_counted_alive, 30, what="the monitor counting the Slurm runner")
    slurm_stack.kill("runner-slurm", signal.SIGKILL)

    async def runner_given_up_for_lost() -> bool:
        return await slurm_slots(http, slurm_stack) == 0

    # Past the runner timeout: a local attempt would be declared lost by now.
    await eventually(runner_given_up_for_lost, 60, what="the monitor counting the Slurm runner as gone")
    assert (await status(http, slurm_stack, job_id))["state"] == "RUNNING"
    slurm_stack.start(
        "runner", instance="runner-slurm", CAESAR_EXECUTOR="slurm", CAESAR_RUNNER_ID="e2e-slurm"
    )
    slurm_stack.wait_ready("runner-slurm")
    final = await wait_state(http, slurm_stack, job_id, timeout_s=120)
    assert final["state"] == "SUCCESS", final
    events = await timeline(http, slurm_stack, job_id)
    assert {e.get("attempt") for e in events if e.get("attempt")} == {1}
    assert not [e for e in events if e.get("state") == "FAILURE"]
