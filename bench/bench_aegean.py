"""Aegean through the service (submit -> SUCCESS) against the same two processes run directly.

For each image size a skysim map (point sources in beam-correlated noise) is made once.
Then, in the same run:

* **direct**: BANE then aegean with exactly the argv the service builds
  (``get_app("aegean").plan(...)`` with a :class:`PlanContext` in a temporary directory),
  run one after the other with ``subprocess`` in the same minimal environment the runner
  gives its jobs;
* **service**: the image is uploaded (not timed), then ``POST /job`` with
  ``{"app": "aegean", "job_inputs": {"seedthr": 5}, "data_inputs": <uuid>}`` and
  ``GET /job/<id>/status`` every 0.1 s until a final state; the time from the submit
  to the first SUCCESS seen is the service's wall time.

The ratio service/direct is the price of the service (queueing, dispatch, staging,
status propagation, the runner's bookkeeping, and the extra step the runner appends to
every job: harmonised catalogues and a preview image); the difference is that price in
seconds. The extra step (``caesar_runner.finalize``) is also run directly after the two
and reported separately, so the like-for-like ratio is visible too.
The full stack runs (runner included).

    .venv/bin/python bench/bench_aegean.py                 # 512^2 and 2048^2
    .venv/bin/python bench/bench_aegean.py --sizes 512     # quick

Each size is measured ``--repeat`` times both ways (default 2), alternating which goes
first so that neither always finds a warm page cache; medians are reported.

Result: ``bench/results/aegean.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from _stack import (
    TERMINAL,
    check_infra,
    fmt,
    loadavg,
    markdown_table,
    running_stack,
    settle,
    submit,
    upload,
    wait_state,
    write_result,
)

from caesar_common.apps import PlanContext, Step, get_app
from caesar_runner.domain.process import sanitised_environment
from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, write_simulation

JOB_INPUTS: dict[str, Any] = {"seedthr": 5}
BIN_DIR = Path(sys.executable).parent
STARTED_OR_LATER = TERMINAL | {"STARTED", "RUNNING"}


def plan_steps(image: Path, job_dir: Path) -> list[Step]:
    """The steps the service would run for ``JOB_INPUTS`` on ``image``, writing to ``job_dir``."""
    app = get_app("aegean")
    if app is None:
        raise RuntimeError("the aegean app is not registered")
    params = app.validate(JOB_INPUTS)
    return app.plan(params, PlanContext(input_path=image, job_dir=job_dir, bin_dir=BIN_DIR))


def runner_extra_step(image: Path, job_dir: Path) -> Step | None:
    """The step the runner appends to every plan (catalogues + preview), if it has one."""
    try:
        from caesar_runner.finalize import finalize_step
    except ImportError:
        return None
    ctx = PlanContext(input_path=image, job_dir=job_dir, bin_dir=BIN_DIR)
    step: Step | None = finalize_step("aegean", ctx)
    return step


def job_environment(job_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    """The environment the runner gives job processes (its own function, not a copy)."""
    return sanitised_environment(BIN_DIR, job_dir, extra)


def run_direct(image: Path, job_dir: Path) -> dict[str, Any]:
    """Run BANE then aegean as the service would, then the runner's extra step; time each."""
    job_dir.mkdir(parents=True)
    (job_dir / "tmp").mkdir()
    steps = plan_steps(image, job_dir)
    extra = runner_extra_step(image, job_dir)
    times: dict[str, float] = {}
    for index, step in enumerate([*steps, *([extra] if extra else [])]):
        s0 = time.monotonic()
        with (
            (job_dir / f"{index:02d}-{step.name}.stdout.log").open("wb") as out,
            (job_dir / f"{index:02d}-{step.name}.stderr.log").open("wb") as err,
        ):
            proc = subprocess.run(
                list(step.argv),
                cwd=job_dir,
                env=job_environment(job_dir, dict(step.env)),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                check=False,
                timeout=1800,
            )
        times[step.name] = round(time.monotonic() - s0, 3)
        if proc.returncode != 0:
            tail = (job_dir / f"{index:02d}-{step.name}.stderr.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"direct {step.name} exited with {proc.returncode}:\n{tail}")
    catalogue = job_dir / "catalog_comp.csv"
    components = max(0, len(catalogue.read_text().splitlines()) - 1) if catalogue.exists() else 0
    app_s = sum(times[s.name] for s in steps)
    return {
        "wall_s": round(app_s, 3),
        "with_extra_s": round(sum(times.values()), 3),
        "extra_step": extra.name if extra else None,
        "steps_s": times,
        "components": components,
        "argv": [list(s.argv) for s in steps],
    }


async def run_service(stack: Stack, image: Path) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        file_id = str((await upload(session, stack.v1, image))["uuid"])
        payload = {"app": "aegean", "job_inputs": JOB_INPUTS, "data_inputs": file_id}
        t0 = time.monotonic()
        job_id = await submit(session, stack.v1, payload)
        accepted = time.monotonic()
        started, started_at = await wait_state(session, stack.v1, job_id, STARTED_OR_LATER, poll_s=0.05)
        final, done_at = await wait_state(session, stack.v1, job_id, poll_s=0.1)
    if final.get("state") != "SUCCESS":
        raise RuntimeError(f"service job {job_id} ended {final}:\n{stack.log_tail('runner')}")
    return {
        "job_id": job_id,
        "wall_s": round(done_at - t0, 3),
        "submit_s": round(accepted - t0, 3),
        "to_started_s": round(started_at - t0, 3) if started.get("state") not in TERMINAL else None,
        "reported_elapsed_s": float(final.get("elapsed_time") or "nan"),
        "state": final.get("state"),
    }


def measure(stack: Stack, size: int, work: Path, repeat: int) -> dict[str, Any]:
    """``repeat`` runs of each way; the order alternates so neither always runs on a warm cache."""
    image = work / f"sim-{size}.fits"
    spec = SimulationSpec(size=size, seed=7)
    write_simulation(spec, image)
    directs: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    for i in range(repeat):
        for way in ("direct", "service") if i % 2 == 0 else ("service", "direct"):
            settle(stack)
            if way == "direct":
                directs.append(run_direct(image, work / f"direct-{size}-{i}"))
            else:
                services.append(asyncio.run(run_service(stack, image)))
    direct_s = statistics.median(d["wall_s"] for d in directs)
    direct_all_s = statistics.median(d["with_extra_s"] for d in directs)
    service_s = statistics.median(s["wall_s"] for s in services)
    return {
        "size": size,
        "image_bytes": image.stat().st_size,
        "sources_injected": spec.source_count,
        "repeat": repeat,
        "direct_s": round(direct_s, 3),
        "service_s": round(service_s, 3),
        "service_over_direct": round(service_s / direct_s, 3),
        "overhead_s": round(service_s - direct_s, 3),
        "extra_step": directs[0]["extra_step"],
        "direct_with_extra_s": round(direct_all_s, 3),
        "service_over_direct_with_extra": round(service_s / direct_all_s, 3),
        "to_started_s": statistics.median(s["to_started_s"] or math.nan for s in services),
        "reported_elapsed_s": statistics.median(s["reported_elapsed_s"] for s in services),
        "components": directs[0]["components"],
        "direct_runs": directs,
        "service_runs": services,
    }


def table(rows: Sequence[dict[str, Any]]) -> str:
    extra = next((r["extra_step"] for r in rows if r["extra_step"]), None)
    head = [
        f"aegean, median of {rows[0]['repeat'] if rows else 0}",
        "direct s (BANE+aegean)",
        "service s",
        "service/direct",
        "overhead s",
        *([f"direct +{extra} s", f"service/(direct+{extra})"] if extra else []),
        "to started s",
        "reported elapsed s",
        "components",
    ]
    body = [
        [
            f"{r['size']}^2",
            fmt(r["direct_s"], 2),
            fmt(r["service_s"], 2),
            fmt(r["service_over_direct"], 2),
            fmt(r["overhead_s"], 2),
            *(
                [fmt(r["direct_with_extra_s"], 2), fmt(r["service_over_direct_with_extra"], 2)]
                if extra
                else []
            ),
            fmt(r["to_started_s"], 2),
            fmt(r["reported_elapsed_s"], 2),
            str(r["components"]),
        ]
        for r in rows
    ]
    note = (
        f"\n(the runner appends a '{extra}' step to every job; 'direct +{extra}' runs it directly too)"
        if extra
        else ""
    )
    return markdown_table(head, body) + note


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 2048], help="image sizes in pixels")
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="runs of each way per size, in alternating order (median reported)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the stack directory and logs")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    check_infra()
    load0 = loadavg()
    print(f"bench_aegean: loadavg {load0} at start")
    rows = []
    with running_stack("aegean", keep=args.keep) as stack:
        work = stack.root / "bench"
        work.mkdir()
        for size in args.sizes:
            rows.append(measure(stack, size, work, args.repeat))
            r = rows[-1]
            print(f"  {size}^2: direct {r['direct_s']} s, service {r['service_s']} s", flush=True)
    print(table(rows))
    load1 = loadavg()
    path = write_result(
        "aegean",
        {
            "loadavg_start": load0,
            "loadavg_end": load1,
            "job_inputs": JOB_INPUTS,
            "cpus": os.cpu_count(),
            "results": rows,
        },
    )
    print(f"-> {path}")
    print(f"bench_aegean: loadavg {load1} at end")


if __name__ == "__main__":
    main()
