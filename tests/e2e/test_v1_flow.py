"""The v1.0 API end to end, through all five services as separate processes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import tarfile
from pathlib import Path

import aiohttp
import pytest

from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, crossmatch, write_simulation
from tests.e2e.conftest import status, submit, timeline, upload, wait_state

pytestmark = pytest.mark.e2e


async def test_aegean_job_recovers_injected_sources(
    http: aiohttp.ClientSession, stack: Stack, tmp_path: Path
) -> None:
    spec = SimulationSpec(size=512, seed=11)
    image = tmp_path / "field.fits"
    truth = write_simulation(spec, image, tmp_path / "truth.ecsv")
    file_id = await upload(http, stack, image)

    job_id = await submit(
        http,
        stack,
        {"app": "aegean", "job_inputs": {"seedthr": 5, "mergethr": 4}, "data_inputs": file_id},
    )
    final = await wait_state(http, stack, job_id)
    assert final["state"] == "SUCCESS", final
    assert final["exit_code"] == 0
    assert float(final["elapsed_time"]) > 0

    async with http.get(f"{stack.v1}/job/{job_id}/output") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/")
        blob = await resp.read()
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        names = tar.getnames()
        catalogue = next(n for n in names if n.endswith("catalog_comp.csv"))
        member = tar.extractfile(catalogue)
        assert member is not None
        rows = list(csv.DictReader(io.TextIOWrapper(member)))
    assert any(n.endswith("manifest.json") for n in names)
    assert not any(n.startswith("/") or ".." in n for n in names)

    match = crossmatch(
        truth,
        [float(r["ra"]) for r in rows],
        [float(r["dec"]) for r in rows],
        radius_arcsec=spec.beam.bmaj_arcsec,
    )
    assert match.completeness(snr_min=10.0) >= 0.9
    assert match.reliability >= 0.9

    # One trace from the HTTP request through the outbox to the scheduler and the runner.
    traces = {name: trace_ids_of(stack, name, job_id) for name in ("api", "scheduler", "runner")}
    assert all(traces.values()), traces
    assert len(set().union(*traces.values())) == 1, traces


def trace_ids_of(stack: Stack, service: str, job_id: str) -> set[str]:
    """Trace ids of the JSON log lines a service wrote about one job."""
    ids = set()
    for line in (stack.root / "logs" / f"{service}.log").read_text().splitlines():
        if job_id in line and line.startswith("{"):
            record = json.loads(line)
            if record.get("job_id") == job_id and "trace_id" in record:
                ids.add(record["trace_id"])
    return ids


async def test_job_without_beam_is_refused_at_submit(
    http: aiohttp.ClientSession, stack: Stack, tmp_path: Path
) -> None:
    # Issue 3: refused before it wastes a slot (it used to run and fail with an exit code).
    image = tmp_path / "nobeam.fits"
    write_simulation(SimulationSpec(size=128, seed=3, with_beam_keywords=False), image)
    file_id = await upload(http, stack, image)
    payload = {"app": "aegean", "job_inputs": {"inputfile": f"/data/{file_id}.fits"}}
    async with http.post(f"{stack.v1}/job", json=payload) as resp:
        body = await resp.json()
    assert resp.status == 400, body
    assert "BMAJ" in body["status"]


async def test_cancel_queued_and_running_jobs(
    http: aiohttp.ClientSession, stack: Stack, tmp_path: Path
) -> None:
    image = tmp_path / "big.fits"
    write_simulation(SimulationSpec(size=2048, seed=5), image)
    file_id = await upload(http, stack, image)
    # Two slots: the first two jobs run, the third waits in the scheduler's queue.
    running = [
        await submit(http, stack, {"app": "aegean", "job_inputs": {}, "data_inputs": file_id})
        for _ in range(2)
    ]
    queued = await submit(http, stack, {"app": "aegean", "job_inputs": {}, "data_inputs": file_id})
    for job_id in running:
        await wait_state(http, stack, job_id, {"RUNNING"}, timeout_s=60)
    assert (await status(http, stack, queued))["state"] == "QUEUED"

    async with http.post(f"{stack.v1}/job/{queued}/cancel") as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "Job canceled and status updated in DB"
    async with http.get(f"{stack.v1}/job/{running[0]}/cancel") as resp:
        assert resp.status == 200
    assert (await wait_state(http, stack, queued, timeout_s=30))["state"] == "CANCELED"
    assert (await wait_state(http, stack, running[0], timeout_s=60))["state"] == "CANCELED"
    async with http.get(f"{stack.v1}/job/{running[1]}/cancel") as resp:
        assert resp.status == 200
    assert (await wait_state(http, stack, running[1], timeout_s=60))["state"] == "CANCELED"

    async with http.get(f"{stack.v1}/job/{queued}/cancel") as resp:
        body = await resp.json()
    assert body["status"] == f"Job {queued} already completed with state CANCELED, nothing to be canceled."


async def test_twenty_concurrent_submissions_all_succeed(
    http: aiohttp.ClientSession, stack: Stack, tmp_path: Path
) -> None:
    image = tmp_path / "small.fits"
    write_simulation(SimulationSpec(size=128, seed=9), image)
    file_id = await upload(http, stack, image)
    # The fast finder: what is under test is twenty submissions racing through the api,
    # scheduler and runner, not the finder (Aegean's own v1 flow is tested above).
    payload = {"app": "sfind", "job_inputs": {}, "data_inputs": file_id}
    job_ids = await asyncio.gather(*(submit(http, stack, payload) for _ in range(20)))
    assert len(set(job_ids)) == 20
    finals = await asyncio.gather(*(wait_state(http, stack, j, timeout_s=420) for j in job_ids))
    assert [f["state"] for f in finals] == ["SUCCESS"] * 20

    async with http.get(f"{stack.v1}/jobs", params={"limit": "1000"}) as resp:
        listed = {j["job_id"] for j in await resp.json()}
    assert set(job_ids) <= listed


async def test_job_of_a_killed_runner_completes_as_attempt_two(
    http: aiohttp.ClientSession, stack: Stack, tmp_path: Path
) -> None:
    """SIGKILL the runner holding a job while a second runner is up: attempt 2 succeeds."""
    stack.start("runner", instance="runner2")
    stack.wait_ready("runner2")
    image = tmp_path / "tiny.fits"
    write_simulation(SimulationSpec(size=64, seed=1, n_sources=2), image)
    file_id = await upload(http, stack, image)
    job_id = await submit(
        http, stack, {"app": "trivial", "job_inputs": {"seconds": 8}, "data_inputs": file_id}
    )
    await wait_state(http, stack, job_id, {"RUNNING"}, timeout_s=60)

    runner_id = next(e["runner_id"] for e in await timeline(http, stack, job_id) if e.get("runner_id"))
    holder = next(k for k in ("runner", "runner2") if runner_id.endswith(f"-{stack.procs[k].pid}"))
    stack.kill(holder)

    final = await wait_state(http, stack, job_id, timeout_s=90)
    assert final["state"] == "SUCCESS", final
    events = await timeline(http, stack, job_id)
    assert {e["attempt"] for e in events if e.get("attempt")} == {1, 2}
    lost = [e for e in events if e["attempt"] == 1 and e["state"] == "FAILURE"]
    assert lost
    assert lost[0]["reason"] == "runner lost"
    assert [e["state"] for e in events if e["attempt"] == 2][-1] == "SUCCESS"
    # The surviving runner keeps serving; bring the killed one back for later tests.
    stack.start("runner", instance=holder)
    stack.wait_ready(holder)
