"""v1 API request throughput and latency: ``POST /job`` submissions and ``GET /job/<id>/status``.

The stack runs without a runner, so submitted jobs stay queued: what is measured is the
cost of accepting a job (validation, file lookup, the job record and its event in one
insert, the 202), which is what the old service's 98.8 submissions/s figure measured.
The scheduler, monitor and accounting do run, and handle each job's events on the same
cores while the submissions go on: the figure is a sustained rate, not a burst into a
queue. ``--api-only`` starts the api alone to show its own cost (diagnosis).

Clients are closed loops (one aiohttp session each, one request in flight per client);
after a short warm-up, requests that complete inside the measurement window are counted.
Before each run the benchmark waits until the services are idle. Printed with each run:
CPU seconds used by the client, every service, the (shared) database and broker, how busy
the whole machine was, and database operations per request (server-wide counters).

    .venv/bin/python bench/bench_api.py submissions --duration 20 --clients 8
    .venv/bin/python bench/bench_api.py status --duration 10
    .venv/bin/python bench/bench_api.py all          # both on one stack (what run_all does)

Results: ``bench/results/api_submissions.json`` and ``bench/results/api_status.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from _stack import (
    OLD_LABEL,
    OLD_REFERENCE,
    ApiFailure,
    busy_fraction,
    check_infra,
    cpu_times,
    db_opcounters,
    db_top,
    delta,
    fmt,
    job_status,
    loadavg,
    markdown_table,
    percentile,
    process_cpu,
    ratio,
    running_stack,
    settle,
    submit,
    top_delta,
    upload,
    write_result,
)

from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, write_simulation

#: Everything but the runner: jobs are accepted, scheduled and stay queued.
SERVICES_NO_RUNNER = ("api", "scheduler", "monitor", "accounting")

Request = Callable[[aiohttp.ClientSession], Awaitable[object]]


@dataclass
class LoadResult:
    clients: int
    window_s: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    client_cpu_s: float = 0.0
    machine_busy: float = math.nan
    db_ops: dict[str, float] = field(default_factory=dict)
    db_by_collection: dict[str, dict[str, float]] = field(default_factory=dict)
    process_cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.latencies_ms)

    @property
    def rate(self) -> float:
        return self.count / self.window_s if self.window_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        lat = self.latencies_ms
        api_cpu = self.process_cpu_s.get("api", 0.0)
        return {
            "clients": self.clients,
            "window_s": round(self.window_s, 3),
            "requests": self.count,
            "errors": len(self.errors),
            "error_samples": self.errors[:5],
            "requests_per_s": round(self.rate, 2),
            "p50_ms": round(percentile(lat, 50), 2),
            "p90_ms": round(percentile(lat, 90), 2),
            "p99_ms": round(percentile(lat, 99), 2),
            "max_ms": round(max(lat), 2) if lat else None,
            "client_cpu_s": round(self.client_cpu_s, 2),
            "machine_cpu_busy": round(self.machine_busy, 3),
            "process_cpu_s": {k: round(v, 2) for k, v in self.process_cpu_s.items()},
            "api_cpu_ms_per_request": round(1000 * api_cpu / self.count, 3) if self.count else None,
            "db_ops": self.db_ops,
            "db_ops_per_request": round(sum(self.db_ops.values()) / self.count, 2) if self.count else None,
            "db_by_collection": self.db_by_collection,
        }


async def run_load(
    stack: Stack, request: Request, clients: int, duration_s: float, warmup_s: float
) -> LoadResult:
    """``clients`` closed-loop clients; count requests completed inside the window."""
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2  # time for every client to open its session
    window_start = start + warmup_s
    window_end = window_start + duration_s
    result = LoadResult(clients=clients, window_s=duration_s)
    marks: dict[str, Any] = {}
    timeout = aiohttp.ClientTimeout(total=60)

    async def mark_window() -> None:
        await asyncio.sleep(max(0.0, window_start - loop.time()))
        marks["cpu0"], marks["svc0"], marks["all0"] = time.process_time(), process_cpu(stack), cpu_times()
        marks["ops0"] = await asyncio.to_thread(db_opcounters)
        marks["top0"] = await asyncio.to_thread(db_top, stack.db_prefix + "_")
        await asyncio.sleep(max(0.0, window_end - loop.time()))
        marks["cpu1"], marks["svc1"], marks["all1"] = time.process_time(), process_cpu(stack), cpu_times()
        marks["ops1"] = await asyncio.to_thread(db_opcounters)
        marks["top1"] = await asyncio.to_thread(db_top, stack.db_prefix + "_")

    async def client() -> None:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.sleep(max(0.0, start - loop.time()))
            while (t0 := loop.time()) < window_end:
                try:
                    await request(session)
                except (ApiFailure, aiohttp.ClientError, TimeoutError) as exc:
                    if t0 >= window_start:
                        result.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                    await asyncio.sleep(0.05)  # do not spin on a refusing server
                    continue
                t1 = loop.time()
                if t0 >= window_start and t1 <= window_end:
                    result.latencies_ms.append((t1 - t0) * 1000)

    await asyncio.gather(mark_window(), *(client() for _ in range(clients)))
    result.client_cpu_s = marks["cpu1"] - marks["cpu0"]
    result.machine_busy = busy_fraction(marks["all0"], marks["all1"])
    result.db_ops = delta(marks["ops0"], marks["ops1"])
    result.db_by_collection = top_delta(marks["top0"], marks["top1"], result.count)
    result.process_cpu_s = delta(marks["svc0"], marks["svc1"])
    return result


async def upload_small_image(stack: Stack, work: Path) -> str:
    image = work / "small.fits"
    write_simulation(SimulationSpec(size=128, seed=1), image)
    async with aiohttp.ClientSession() as session:
        return str((await upload(session, stack.v1, image))["uuid"])


def job_payload(file_id: str) -> dict[str, Any]:
    return {"app": "aegean", "job_inputs": {"seedthr": 5}, "data_inputs": file_id}


async def bench_submissions(
    stack: Stack, file_id: str, clients: int, duration_s: float, warmup_s: float
) -> tuple[LoadResult, list[str]]:
    job_ids: list[str] = []
    payload = job_payload(file_id)

    async def one(session: aiohttp.ClientSession) -> None:
        job_ids.append(await submit(session, stack.v1, payload))

    result = await run_load(stack, one, clients, duration_s, warmup_s)
    return result, job_ids


async def ensure_jobs(stack: Stack, file_id: str, job_ids: list[str], wanted: int) -> list[str]:
    """At least ``wanted`` job ids to read the status of (submitted now if needed)."""
    payload = job_payload(file_id)
    async with aiohttp.ClientSession() as session:
        while len(job_ids) < wanted:
            job_ids.append(await submit(session, stack.v1, payload))
    return job_ids


async def bench_status(
    stack: Stack, job_ids: Sequence[str], clients: int, duration_s: float, warmup_s: float
) -> LoadResult:
    ids = list(job_ids)
    random.shuffle(ids)
    cycle = itertools.cycle(ids)

    async def one(session: aiohttp.ClientSession) -> None:
        await job_status(session, stack.v1, next(cycle))

    return await run_load(stack, one, clients, duration_s, warmup_s)


# --------------------------------------------------------------------------- reporting


def submissions_table(res: LoadResult) -> str:
    s = res.summary()
    rows = [
        [
            "submissions/s",
            fmt(s["requests_per_s"]),
            fmt(OLD_REFERENCE["submissions_per_s"]),
            fmt(ratio(s["requests_per_s"], OLD_REFERENCE["submissions_per_s"]), 2) + "x",
        ],
        [
            "p50 latency (ms)",
            fmt(s["p50_ms"]),
            fmt(OLD_REFERENCE["submit_p50_ms"]),
            fmt(ratio(OLD_REFERENCE["submit_p50_ms"], s["p50_ms"]), 2) + "x",
        ],
        [
            "p99 latency (ms)",
            fmt(s["p99_ms"]),
            fmt(OLD_REFERENCE["submit_p99_ms"]),
            fmt(ratio(OLD_REFERENCE["submit_p99_ms"], s["p99_ms"]), 2) + "x",
        ],
    ]
    head = ["POST /job", f"{res.clients} clients, {res.window_s:g} s", "old", OLD_LABEL]
    return markdown_table(head, rows)


def status_table(results: Sequence[LoadResult]) -> str:
    rows = []
    for res in results:
        s = res.summary()
        rows.append(
            [
                f"{res.clients} client(s)",
                fmt(s["requests_per_s"]),
                fmt(s["p50_ms"], 2),
                fmt(s["p99_ms"], 2),
                f"{fmt(ratio(OLD_REFERENCE['status_p50_ms'], s['p50_ms']), 2)}x",
                f"{fmt(ratio(OLD_REFERENCE['status_p99_ms'], s['p99_ms']), 2)}x",
                str(s["errors"]),
            ]
        )
    head = ["GET /job/<id>/status", "req/s", "p50 ms", "p99 ms", "p50 speed-up", "p99 speed-up", "errors"]
    note = (
        f"speed-up {OLD_LABEL}: old latency / ours; old p50 {OLD_REFERENCE['status_p50_ms']:g} ms, "
        f"p99 {OLD_REFERENCE['status_p99_ms']:g} ms"
    )
    return markdown_table(head, rows) + "\n" + note


def cpu_line(res: LoadResult) -> str:
    s = res.summary()
    procs = ", ".join(f"{k} {v:.1f}" for k, v in s["process_cpu_s"].items())
    return (
        f"CPU s in the {res.window_s:g} s window ({res.clients} clients): client {s['client_cpu_s']:.1f}, "
        f"{procs} (database/rabbitmq are shared); api {s['api_cpu_ms_per_request']} ms CPU per request; "
        f"machine busy {100 * s['machine_cpu_busy']:.0f}% of {os.cpu_count()} CPUs; "
        f"database ops per request {s['db_ops_per_request']} (server-wide)"
        + "\n  database server time (incl. lock waits) per request, this stack: "
        + (
            ", ".join(
                f"{ns} {v['us_per_request']:.0f} us/{v['ops_per_request']:g} ops"
                for ns, v in s["db_by_collection"].items()
            )
            or "n/a"
        )
    )


# --------------------------------------------------------------------------- main


async def run(args: argparse.Namespace, stack: Stack) -> None:
    suffix = "_api_only" if args.api_only else ""
    file_id = await upload_small_image(stack, stack.root)
    job_ids: list[str] = []
    if args.which in ("submissions", "all"):
        await asyncio.to_thread(settle, stack)
        load0 = loadavg()
        res, job_ids = await bench_submissions(stack, file_id, args.clients, args.duration, args.warmup)
        print(submissions_table(res))
        print(cpu_line(res))
        if res.errors:
            print(f"errors: {len(res.errors)}, e.g. {res.errors[0]}")
        path = write_result(
            "api_submissions" + suffix,
            {
                "loadavg_start": load0,
                "loadavg_end": loadavg(),
                "services": list(stack.procs),
                "result": res.summary(),
                "reference_old": {
                    k: OLD_REFERENCE[k] for k in ("submissions_per_s", "submit_p50_ms", "submit_p99_ms")
                },
                "ratio_vs_old": {
                    "throughput": round(ratio(res.rate, OLD_REFERENCE["submissions_per_s"]), 3),
                    "p50_speedup": round(
                        ratio(OLD_REFERENCE["submit_p50_ms"], percentile(res.latencies_ms, 50)), 3
                    ),
                    "p99_speedup": round(
                        ratio(OLD_REFERENCE["submit_p99_ms"], percentile(res.latencies_ms, 99)), 3
                    ),
                },
            },
        )
        print(f"-> {path}\n")
    if args.which in ("status", "all"):
        load0 = loadavg()
        ids = await ensure_jobs(stack, file_id, job_ids, args.status_jobs)
        results = []
        for clients in args.status_clients:
            waited = await asyncio.to_thread(settle, stack)
            print(f"  ({clients} client(s): waited {waited:.1f} s for the services to go idle)", flush=True)
            results.append(await bench_status(stack, ids, clients, args.status_duration, args.warmup))
        print(status_table(results))
        for res in results:
            print(cpu_line(res))
        path = write_result(
            "api_status" + suffix,
            {
                "loadavg_start": load0,
                "loadavg_end": loadavg(),
                "jobs_in_database": len(ids),
                "results": [r.summary() for r in results],
                "reference_old": {k: OLD_REFERENCE[k] for k in ("status_p50_ms", "status_p99_ms")},
                "p50_speedup_vs_old": [
                    round(ratio(OLD_REFERENCE["status_p50_ms"], percentile(r.latencies_ms, 50)), 3)
                    for r in results
                ],
            },
        )
        print(f"-> {path}\n")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("which", nargs="?", choices=("submissions", "status", "all"), default="all")
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds measured per run (default: 20 for submissions, 10 for status)",
    )
    parser.add_argument(
        "--status-duration", type=float, default=None, help="seconds per status run with 'all' (default 10)"
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent submission clients")
    parser.add_argument(
        "--status-clients", type=int, nargs="+", default=[1, 8], help="client counts of the status runs"
    )
    parser.add_argument(
        "--status-jobs", type=int, default=200, help="at least this many jobs exist before status is read"
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each run")
    parser.add_argument(
        "--api-only",
        action="store_true",
        help="start the api alone (no scheduler, monitor, accounting): diagnosis only",
    )
    parser.add_argument("--keep", action="store_true", help="keep the stack directory and logs")
    args = parser.parse_args(argv)
    if args.which == "status":
        args.status_duration = args.status_duration or args.duration or 10.0
    else:
        args.status_duration = args.status_duration or 10.0
    args.duration = args.duration or 20.0
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    check_infra()
    print(f"bench_api {args.which}: loadavg {loadavg()} at start")
    services = ("api",) if args.api_only else SERVICES_NO_RUNNER
    with running_stack("api", services, keep=args.keep) as stack:
        asyncio.run(run(args, stack))
    print(f"bench_api {args.which}: loadavg {loadavg()} at end")


if __name__ == "__main__":
    main()
