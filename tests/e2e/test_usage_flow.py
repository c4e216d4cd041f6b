"""Usage figures end to end: an old-style client's jobs as v1 /accounting and the v2 report
show them, a retried job counted once, and a quick 503 while accounting is away.

Five services as processes, authentication off (the caller is ``anonymous``, who is also
the operator); the stack is this module's own, so every job in it is one of these tests'.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, write_simulation
from tests.e2e.conftest import status, submit, timeline, upload, wait_state
from tests.integration.service_support import eventually

pytestmark = pytest.mark.e2e

REPORT = "/api/v2/accounting/usage"
# The job list's state -> the report's column (what /jobs shows is what is counted).
COLUMNS = {
    "SUCCESS": "njobs_completed",
    "FAILURE": "njobs_failed",
    "TIMED-OUT": "njobs_timed_out",
    "CANCELED": "njobs_canceled",
    "ABORTED": "njobs_aborted",
    "STARTED": "njobs_running",
    "RUNNING": "njobs_running",
    "PENDING": "njobs_pending",
    "QUEUED": "njobs_pending",
    "HELD": "njobs_pending",
}


async def get_json(http: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, Any]:
    async with http.get(url, **kw) as resp:
        return resp.status, await resp.json(content_type=None)


async def accounting_v1(http: aiohttp.ClientSession, stack: Stack) -> dict[str, Any]:
    code, body = await get_json(http, f"{stack.v1}/accounting")
    assert code == 200, body
    return dict(body)


async def wait_accounting(http: aiohttp.ClientSession, stack: Stack, **expected: int) -> dict[str, Any]:
    """/accounting once accounting has caught up with the events (it follows the bus)."""
    body: dict[str, Any] = {}

    async def caught_up() -> bool:
        nonlocal body
        body = await accounting_v1(http, stack)
        return all(body[k] == v for k, v in expected.items())

    try:
        await eventually(caught_up, timeout_s=60, what=f"accounting to show {expected}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answer {body}") from None
    return body


async def output_bytes(http: aiohttp.ClientSession, stack: Stack, job_id: str) -> int:
    """Bytes of a job's outputs as the api lists them (the manifest itself aside)."""
    code, body = await get_json(http, f"{stack.api}/api/v2/jobs/{job_id}/files")
    assert code == 200, body
    return sum(f["size_bytes"] for f in body["files"] if f["name"] != "manifest.json")


async def job_list(http: aiohttp.ClientSession, stack: Stack) -> list[dict[str, Any]]:
    code, body = await get_json(http, f"{stack.v1}/jobs", params={"limit": "1000"})
    assert code == 200
    return list(body)


async def test_old_client_jobs_show_in_accounting_and_reports_equal_the_job_list(
    http: aiohttp.ClientSession, stack: Stack, tmp_path: Path
) -> None:
    image = tmp_path / "tiny.fits"
    write_simulation(SimulationSpec(size=64, seed=2, n_sources=2), image)
    file_id = await upload(http, stack, image)
    await wait_accounting(http, stack, nfiles=1)

    def trivial(seconds: float, code: int) -> dict[str, Any]:
        return {
            "app": "trivial",
            "job_inputs": {"seconds": seconds, "exit-code": code},
            "data_inputs": file_id,
        }

    good = await submit(http, stack, trivial(0.2, 0))
    bad = await submit(http, stack, trivial(0.2, 3))
    finals = {job_id: await wait_state(http, stack, job_id, timeout_s=120) for job_id in (good, bad)}
    assert (finals[good]["state"], finals[bad]["state"]) == ("SUCCESS", "FAILURE")

    figures = await wait_accounting(http, stack, njobs=2, njobs_completed=1, njobs_failed=1)
    assert (figures["njobs_pending"], figures["njobs_running"], figures["njobs_aborted"]) == (0, 0, 0)
    assert figures["datasize"] == image.stat().st_size
    assert figures["jobsize"] == await output_bytes(http, stack, good) + await output_bytes(http, stack, bad)
    assert figures["jobsize"] > 0  # trivial writes result.txt and its step logs
    runtimes = {job_id: float(final["elapsed_time"]) for job_id, final in finals.items()}
    assert figures["job_runtime"] == pytest.approx(runtimes[good] + runtimes[bad])
    assert figures["job_completed_runtime"] == pytest.approx(runtimes[good])
    assert figures["timestamp"]

    # Two slots: two long jobs run, the third waits; then all three are cancelled.
    waiting = [await submit(http, stack, trivial(60, 0)) for _ in range(3)]
    await eventually(
        lambda: _states(http, stack, waiting, {"RUNNING": 2, "QUEUED": 1}),
        timeout_s=60,
        what="2 running, 1 queued",
    )
    await wait_accounting(http, stack, njobs=5, njobs_running=2, njobs_pending=1)
    for job_id in waiting:
        async with http.post(f"{stack.v1}/job/{job_id}/cancel") as resp:
            assert resp.status == 200
    for job_id in waiting:
        assert (await wait_state(http, stack, job_id, timeout_s=60))["state"] == "CANCELED"
    latest = await wait_accounting(http, stack, njobs_canceled=3, njobs_running=0, njobs_pending=0)

    # The operator's global figures: one user, the same jobs and bytes.
    code, stats = await get_json(http, f"{stack.v1}/appstats")
    assert code == 200, stats
    assert stats["nusers"] == 1
    for name in ("njobs", "njobs_canceled", "datasize", "jobsize", "job_runtime"):
        assert stats[name] == latest[name], name
    assert stats["totsize"] == latest["datasize"] + latest["jobsize"]

    await assert_reports_equal_job_list(http, stack)


async def _states(
    http: aiohttp.ClientSession, stack: Stack, job_ids: list[str], expected: dict[str, int]
) -> bool:
    states = Counter([(await status(http, stack, job_id))["state"] for job_id in job_ids])
    return states == Counter(expected)


async def assert_reports_equal_job_list(http: aiohttp.ClientSession, stack: Stack) -> None:
    """Every grouping's rows, JSON and CSV, add up to the job list's counts by state."""
    listed = Counter(COLUMNS[job["state"]] for job in await job_list(http, stack))
    total = sum(listed.values())
    for group_by in ("user", "app", "day"):
        code, report = await get_json(http, f"{stack.api}{REPORT}", params={"group_by": group_by})
        assert code == 200, report
        assert report["totals"]["njobs"] == total
        for column in set(COLUMNS.values()):
            assert report["totals"][column] == listed[column], (group_by, column)
            assert sum(row[column] for row in report["rows"]) == listed[column], (group_by, column)
        async with http.get(f"{stack.api}{REPORT}", params={"group_by": group_by, "format": "csv"}) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/csv"
            rows = list(csv.DictReader(io.StringIO(await resp.text())))
        assert [row[group_by] for row in rows] == [row[group_by] for row in report["rows"]]
        for column in set(COLUMNS.values()) | {"njobs"}:
            assert sum(int(row[column]) for row in rows) == report["totals"][column], (group_by, column)
    # A range that ends before anything was submitted holds nothing; an inverted one is a 400.
    code, empty = await get_json(http, f"{stack.api}{REPORT}", params={"to": "2000-01-01"})
    assert (code, empty["rows"], empty["totals"]["njobs"]) == (200, [], 0)
    code, refused = await get_json(
        http, f"{stack.api}{REPORT}", params={"from": "2026-02-01", "to": "2026-01-31"}
    )
    assert code == 400
    assert "after" in refused["detail"]


async def test_a_retried_job_counts_once_as_the_job_list_shows_it(
    http: aiohttp.ClientSession, stack: Stack, tmp_path: Path
) -> None:
    """SIGKILL the runner holding a job while a second runner is up: attempt 2 succeeds;
    the job is one completed job in the report, its lost attempt reported apart."""
    before = await accounting_v1(http, stack)
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
    assert {e["attempt"] for e in await timeline(http, stack, job_id) if e.get("attempt")} == {1, 2}

    await wait_accounting(
        http, stack, njobs=before["njobs"] + 1, njobs_completed=before["njobs_completed"] + 1, njobs_running=0
    )
    code, report = await get_json(http, f"{stack.api}{REPORT}", params={"group_by": "app"})
    assert code == 200
    trivial = next(row for row in report["rows"] if row["app"] == "trivial")
    assert trivial["lost_attempts"] >= 1  # attempt 1, billed apart from the counted outcome
    await assert_reports_equal_job_list(http, stack)
    stack.start("runner", instance=holder)
    stack.wait_ready(holder)


async def test_accounting_away_is_a_quick_503_and_back_is_200(
    http: aiohttp.ClientSession, stack: Stack
) -> None:
    """Frozen (accepts connections, never answers) or stopped (refuses them): the usage
    routes answer 503 with Retry-After within CAESAR_ACCOUNTING_TIMEOUT_S (3 s)."""
    routes = [f"{stack.v1}/accounting", f"{stack.v1}/appstats", f"{stack.api}{REPORT}"]

    async def all_unavailable(limit_s: float) -> None:
        for url in routes:
            started = time.monotonic()
            async with http.get(url) as resp:
                elapsed = time.monotonic() - started
                assert resp.status == 503, (url, await resp.text())
                assert int(resp.headers["Retry-After"]) > 0
                body = await resp.json(content_type=None)
            message = body["detail"] if "detail" in body else body["status"]  # v2 problem, v1 shape
            assert "accounting" in message, body
            assert elapsed < limit_s, (url, elapsed)

    accounting = stack.procs["accounting"]
    os.kill(accounting.pid, signal.SIGSTOP)
    try:
        await all_unavailable(limit_s=3 + 2)
    finally:
        os.kill(accounting.pid, signal.SIGCONT)
    stack.kill("accounting")
    await all_unavailable(limit_s=1.5)
    # The rest of the api does not need accounting.
    assert (await get_json(http, f"{stack.v1}/jobs"))[0] == 200

    stack.start("accounting")
    stack.wait_ready("accounting")
    for url in routes:
        assert (await get_json(http, url))[0] == 200, url
