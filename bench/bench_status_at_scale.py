"""``GET /job/<id>/status`` with 100,000 jobs stored, while a burst of jobs drains.

Issue 11's target: p50 <= 2 ms. The api's jobs collection is filled with ``--stored``
finished job records (copies of a real one under new ids, written straight into the
database in bulk, as a long-lived deployment would hold them); then a burst of trivial
jobs is submitted and, while the runner drains it, 1 and 8 closed-loop clients ask for
the status of random jobs (stored and live). Printed: p50/p99 per client count, the
backlog at the start and end of each window (so the drain really was going on), and how
long the fill took.

    .venv/bin/python bench/bench_status_at_scale.py [--stored 100000] [--burst 600]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from pymongo import MongoClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._stack import (
    MONGO_URL,
    TERMINAL,
    fmt,
    loadavg,
    markdown_table,
    percentile,
    running_stack,
    submit,
    upload,
    wait_state,
    write_result,
)

from caesar_testkit.skysim import SimulationSpec, write_simulation

ENV = {"CAESAR_ENABLE_TEST_APPS": "true", "CAESAR_SLOTS": "4", "CAESAR_LOG_LEVEL": "WARNING"}
FILL_BATCH = 5_000


def fill(jobs: Any, template: dict[str, Any], count: int) -> list[str]:
    """Insert ``count`` copies of a finished job under new ids; returns the ids."""
    ids: list[str] = []
    base = {k: v for k, v in template.items() if k not in ("_id", "outbox", "outbox_pending")}
    for start in range(0, count, FILL_BATCH):
        docs = [{**base, "_id": str(uuid.uuid4())} for _ in range(min(FILL_BATCH, count - start))]
        jobs.insert_many(docs, ordered=False)
        ids += [d["_id"] for d in docs]
    return ids


async def status_load(
    v1: str, ids: list[str], clients: int, duration_s: float, warmup_s: float = 1.0
) -> list[float]:
    loop = asyncio.get_running_loop()
    window_start = loop.time() + warmup_s
    window_end = window_start + duration_s
    latencies: list[float] = []
    rng = random.Random(clients)

    async def client() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            while (t0 := loop.time()) < window_end:
                async with http.get(f"{v1}/job/{rng.choice(ids)}/status") as resp:
                    await resp.read()
                    assert resp.status == 200, resp.status
                t1 = loop.time()
                if t0 >= window_start and t1 <= window_end:
                    latencies.append((t1 - t0) * 1000)

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


async def run(stored: int, burst: int, duration_s: float) -> dict[str, Any]:
    with running_stack("status-scale", **ENV) as stack:  # type: ignore[arg-type]
        image = stack.root / "tiny.fits"
        write_simulation(SimulationSpec(size=64, seed=1, n_sources=2), image)
        payload_base = {"app": "trivial", "job_inputs": {"seconds": 0.2}}
        client: MongoClient[dict[str, Any]] = MongoClient(MONGO_URL, tz_aware=True)
        jobs = client[f"{stack.db_prefix}_api"]["jobs"]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            file_id = (await upload(http, stack.v1, image))["uuid"]
            payload = {**payload_base, "data_inputs": file_id}
            first = await submit(http, stack.v1, payload)
            await wait_state(http, stack.v1, first, TERMINAL)
            template = jobs.find_one({"_id": first})
            assert template is not None
            t0 = time.monotonic()
            stored_ids = await asyncio.to_thread(fill, jobs, template, stored)
            fill_s = time.monotonic() - t0

            live: list[str] = []

            async def submitter() -> None:
                while len(live) < burst:
                    live.append(await submit(http, stack.v1, payload))

            await asyncio.gather(*(submitter() for _ in range(8)))
            rows = []
            for clients in (1, 8):
                backlog_start = jobs.count_documents({"state": {"$nin": sorted(TERMINAL)}})
                latencies = await status_load(stack.v1, stored_ids + live, clients, duration_s)
                backlog_end = jobs.count_documents({"state": {"$nin": sorted(TERMINAL)}})
                rows.append(
                    {
                        "clients": clients,
                        "requests": len(latencies),
                        "p50_ms": percentile(latencies, 50),
                        "p99_ms": percentile(latencies, 99),
                        "backlog_start": backlog_start,
                        "backlog_end": backlog_end,
                    }
                )
        total = jobs.count_documents({})
        client.close()
    return {"stored": stored, "total_jobs": total, "fill_s": fill_s, "runs": rows, "load": loadavg()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--burst", type=int, default=600)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    result = asyncio.run(run(args.stored, args.burst, args.duration))
    write_result("status_at_scale", result)
    rows = [
        [
            str(r["clients"]),
            f"{fmt(r['p50_ms'], 2)} / {fmt(r['p99_ms'], 2)}",
            str(r["requests"]),
            f"{r['backlog_start']} -> {r['backlog_end']}",
        ]
        for r in result["runs"]
    ]
    print(
        f"{result['total_jobs']} jobs stored ({result['stored']} filled in {fmt(result['fill_s'])} s); "
        f"load {', '.join(str(x) for x in result['load'])}"
    )
    print(markdown_table(["clients", "status p50 / p99 ms", "requests", "jobs not terminal (drain)"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
