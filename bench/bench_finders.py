"""Source finders through the service vs the same finder run directly.

For each app (sfind, bdsf, aegean) and image size, a skysim map is made once, then:

* **direct**: only the finder's own processes, with exactly the argv the service builds
  (``app.plan(...)`` in a temporary directory) less ``--finalize`` (sfind and PyBDSF
  finalize in their own process in the service; a direct run does not harmonise), timed
  with ``os.wait4`` for each step's peak RSS;
* **service**: upload (not timed), ``POST /job``, poll ``/job/<id>/status`` every 0.1 s
  until SUCCESS; wall = submit -> SUCCESS seen by the client; peak RSS from the job's
  ``manifest.json`` (fetched through ``/api/v2/jobs/<id>/files/manifest.json``). The
  service also finalizes (the canonical harmonised catalogue + preview PNG; the other
  formats are made by the api on first request), whose own time is shown separately
  (``finalize s``, from ``catalog.json``), and so is the part of the wall time spent
  around the job's processes (``around job s`` = service - ``job s``, the executor's
  elapsed time from the manifest: queueing, dispatch, claim, outputs, events, polling).
  CPU seconds (the steps' own, from ``wait4`` and the manifest) compare the work done
  whatever else loads the machine: on a shared 2-core machine the wall times of a
  30 s finder vary by more than the 5 % being measured.

    .venv/bin/python bench/bench_finders.py                       # 512^2 and 2048^2, all apps
    .venv/bin/python bench/bench_finders.py --sizes 512 2048 4096 --apps sfind bdsf

Result: a table on stdout and ``bench/results/finders.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from _stack import RESULTS_DIR, check_infra, running_stack

from caesar_common.apps import PlanContext, get_app
from caesar_runner.finalize import FINALIZE_FLAG
from caesar_testkit.skysim import SimulationSpec, write_simulation

PARAMS: dict[str, dict[str, Any]] = {"sfind": {}, "bdsf": {}, "aegean": {"bkgbox": 100, "bkggrid": 20}}


def run_direct(app_name: str, image: Path) -> tuple[float, int, float]:
    """Wall seconds, peak RSS (bytes) and CPU seconds of the finder's own steps, run as the
    service would."""
    app = get_app(app_name)
    assert app is not None
    with tempfile.TemporaryDirectory(prefix="bench-direct-") as tmp:
        job_dir = Path(tmp)
        ctx = PlanContext(image, job_dir, Path(sys.executable).parent)
        peak = 0
        cpu = 0.0
        started = time.perf_counter()
        for step in app.plan(app.validate(PARAMS[app_name]), ctx):
            env = {"PATH": os.environ.get("PATH", ""), "HOME": tmp, "MPLBACKEND": "Agg", **step.env}
            argv = [a for a in step.argv if a != FINALIZE_FLAG]
            proc = subprocess.Popen(
                argv, cwd=job_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            _, status, usage = os.wait4(proc.pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                raise RuntimeError(f"{app_name} step {step.name} failed")
            peak = max(peak, usage.ru_maxrss * 1024)
            cpu += usage.ru_utime + usage.ru_stime
        return time.perf_counter() - started, peak, cpu


async def run_service(
    http: aiohttp.ClientSession, v1: str, v2: str, app_name: str, image: Path
) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("file", image.read_bytes(), filename=image.name, content_type="application/fits")
    async with http.post(f"{v1}/upload", data=form) as resp:
        file_id = (await resp.json())["uuid"]
    payload = {"app": app_name, "job_inputs": PARAMS[app_name], "data_inputs": file_id}
    started = time.perf_counter()
    async with http.post(f"{v1}/job", json=payload) as resp:
        body = await resp.json()
        if resp.status != 202:
            raise RuntimeError(f"submit refused: {body}")
    job_id = body["job_id"]
    while True:
        async with http.get(f"{v1}/job/{job_id}/status") as resp:
            state = (await resp.json())["state"]
        if state in {"SUCCESS", "FAILURE", "TIMED-OUT", "CANCELED", "ABORTED"}:
            break
        await asyncio.sleep(0.1)
    wall = time.perf_counter() - started
    if state != "SUCCESS":
        raise RuntimeError(f"{app_name} job {job_id} ended {state}")
    async with http.get(f"{v2}/jobs/{job_id}/files/manifest.json") as resp:
        manifest = json.loads(await resp.read())
    catalog = manifest.get("catalog") or {}
    return {
        "wall_s": wall,
        "peak_rss_bytes": int(manifest.get("peak_rss_bytes") or 0),
        "finalize_s": float(catalog.get("elapsed_s") or 0.0),
        "job_s": float(manifest.get("elapsed_s") or 0.0),
        "cpu_s": float(manifest.get("cpu_s") or 0.0),
        "n_sources": (catalog.get("catalogs") or {}).get("sources", {}).get("n_rows"),
    }


async def bench(apps: Sequence[str], sizes: Sequence[int], repeat: int = 1) -> list[dict[str, Any]]:
    """One row per app and size: medians of ``repeat`` direct and service runs, alternated
    so that a change in the machine's load hits both sides alike."""
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-finders-") as tmp,
        running_stack("finders", CAESAR_SLOTS="1") as stack,
    ):
        v2 = stack.v1.replace("/caesar/api/v1.0", "/api/v2")
        timeout = aiohttp.ClientTimeout(total=3600)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            # The first job of a fresh stack also pays its start-up (connections, first
            # dispatch round, imports in the runner): one uncounted job, so the rows show
            # the cost per job.
            warm = Path(tmp) / "warm-up.fits"
            write_simulation(SimulationSpec(size=256, seed=1), warm)
            await run_service(http, stack.v1, v2, "sfind", warm)
            for size in sizes:
                image = Path(tmp) / f"map{size}.fits"
                write_simulation(SimulationSpec(size=size, seed=size), image)
                for app in apps:
                    directs, services = [], []
                    for _ in range(repeat):
                        directs.append(await asyncio.to_thread(run_direct, app, image))
                        services.append(await run_service(http, stack.v1, v2, app, image))
                    d_wall = statistics.median(d for d, _, _ in directs)
                    d_rss = max(r for _, r, _ in directs)
                    d_cpu = statistics.median(c for _, _, c in directs)
                    svc = {
                        k: statistics.median(s[k] for s in services)
                        for k in ("wall_s", "finalize_s", "job_s", "cpu_s")
                    }
                    row = {
                        "app": app,
                        "size": size,
                        "repeat": repeat,
                        "direct_s": d_wall,
                        "service_s": svc["wall_s"],
                        "ratio_s": svc["wall_s"] / d_wall,
                        "finalize_s": svc["finalize_s"],
                        "job_s": svc["job_s"],
                        "around_s": svc["wall_s"] - svc["job_s"],
                        "direct_cpu_s": d_cpu,
                        "service_cpu_s": svc["cpu_s"],
                        "cpu_ratio": svc["cpu_s"] / d_cpu if d_cpu else float("nan"),
                        "direct_rss_mb": d_rss / 2**20,
                        "service_rss_mb": max(s["peak_rss_bytes"] for s in services) / 2**20,
                        "n_sources": services[-1]["n_sources"],
                    }
                    rows.append(row)
                    print(
                        f"{app:7s} {size:5d}  direct {d_wall:7.2f} s {row['direct_rss_mb']:7.0f} MB   "
                        f"service {svc['wall_s']:7.2f} s {row['service_rss_mb']:7.0f} MB  "
                        f"ratio {row['ratio_s']:.2f}  (job {svc['job_s']:.2f} s, finalize "
                        f"{svc['finalize_s']:.2f} s, around the job {row['around_s']:.2f} s; "
                        f"CPU {d_cpu:.2f} -> {svc['cpu_s']:.2f} s)",
                        file=sys.stderr,
                    )
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    head = (
        "| app | size | direct s | service s | ratio | job s | finalize s | around job s "
        "| CPU direct s | CPU service s | CPU ratio | direct RSS MB | service RSS MB | RSS ratio | sources |"
    )
    lines = [head, "|" + "---|" * 15]
    for r in rows:
        rss_ratio = r["service_rss_mb"] / r["direct_rss_mb"] if r["direct_rss_mb"] else float("nan")
        lines.append(
            f"| {r['app']} | {r['size']}² | {r['direct_s']:.2f} | {r['service_s']:.2f} "
            f"| {r['ratio_s']:.2f} | {r['job_s']:.2f} | {r['finalize_s']:.2f} | {r['around_s']:.2f} "
            f"| {r['direct_cpu_s']:.2f} | {r['service_cpu_s']:.2f} | {r['cpu_ratio']:.2f} "
            f"| {r['direct_rss_mb']:.0f} "
            f"| {r['service_rss_mb']:.0f} | {rss_ratio:.2f} | {r['n_sources']} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--apps", nargs="+", default=list(PARAMS), choices=list(PARAMS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[512, 2048])
    parser.add_argument("--repeat", type=int, default=1, help="runs per side; the table shows medians")
    args = parser.parse_args(argv)
    check_infra()
    rows = asyncio.run(bench(args.apps, args.sizes, args.repeat))
    print(table(rows))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "finders.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
