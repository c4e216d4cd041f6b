"""The v1.0 API end to end with a Slurm pool: big images go to Slurm, small ones stay local.

All five services run as processes, plus a second runner serving ``runner.slurm``
against the single-node Slurm that ``scripts/slurm.sh start`` runs on 127.0.0.1.
"""

from __future__ import annotations

import csv
import io
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, write_simulation
from tests.conftest import REPO
from tests.e2e.conftest import make_stack, status, submit, upload, wait_state

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
        CAESAR_SLURM_POLL_INTERVAL_S="0.5",
        CAESAR_HEARTBEAT_INTERVAL_S="1",
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
