"""Soak: 1,000 trivial jobs while a runner is SIGKILLed every 5 s and the broker restarts once.

Prints how many accepted jobs were lost (never terminal), stuck (not terminal at the
deadline), duplicated (an attempt ran to SUCCESS twice), the submit->terminal latency
p50/p99 and the total time. Two runners serve the pool so work continues while one is
down; the killed one is started again at once (as a supervisor would).

    .venv/bin/python bench/bench_soak.py [--jobs 1000] [--kill-every 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
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
    rabbitmqctl,
    running_stack,
    upload,
    write_result,
)

from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, write_simulation

ENV = {
    "CAESAR_ENABLE_TEST_APPS": "true",
    "CAESAR_SLOTS": "4",
    "CAESAR_HEARTBEAT_INTERVAL_S": "1",
    "CAESAR_RUNNER_TIMEOUT_S": "5",
    "CAESAR_WATCHDOG_INTERVAL_S": "1",
    "CAESAR_OUTBOX_SWEEP_INTERVAL_S": "1",
    "CAESAR_RETRY_BACKOFF_S": "0.5",
    "CAESAR_MAX_ATTEMPTS": "10",
    "CAESAR_MAX_ACTIVE_PER_USER": "0",
    "CAESAR_LOG_LEVEL": "WARNING",
}


async def submit_all(http: aiohttp.ClientSession, stack: Stack, file_id: str, n: int) -> dict[str, float]:
    """Submit ``n`` jobs from 8 clients (retrying refused requests); job id -> submit time."""
    payload = {"app": "trivial", "job_inputs": {"seconds": 0.2}, "data_inputs": file_id}
    accepted: dict[str, float] = {}
    remaining = [n]

    async def client() -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            while True:
                started = time.time()
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with http.post(f"{stack.v1}/job", json=payload) as resp:
                        if resp.status == 202:
                            accepted[(await resp.json())["job_id"]] = started
                            break
                await asyncio.sleep(0.2)

    await asyncio.gather(*(client() for _ in range(8)))
    return accepted


async def chaos(stack: Stack, stop: asyncio.Event, kill_every_s: float, broker_restart: bool) -> int:
    """Kill a runner every ``kill_every_s`` (alternating) and restart the broker once."""
    kills, restarted = 0, False
    victims = ["runner", "runner2"]
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=kill_every_s)
        if stop.is_set():
            break
        victim = victims[kills % 2]
        stack.kill(victim, signal.SIGKILL)
        stack.start("runner", instance=victim)
        kills += 1
        if broker_restart and kills == 3 and not restarted:
            await asyncio.to_thread(rabbitmqctl, "stop_app")
            await asyncio.sleep(3)
            await asyncio.to_thread(rabbitmqctl, "start_app")
            restarted = True
    return kills


async def run(jobs: int, kill_every_s: float, deadline_s: float, broker_restart: bool) -> dict[str, Any]:
    with running_stack("soak", **ENV) as stack:
        stack.start("runner", instance="runner2")
        stack.wait_ready("runner2")
        image = stack.root / "tiny.fits"
        write_simulation(SimulationSpec(size=64, seed=1, n_sources=2), image)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            file_id = (await upload(http, stack.v1, image))["uuid"]
            t0 = time.monotonic()
            stop = asyncio.Event()
            chaos_task = asyncio.ensure_future(chaos(stack, stop, kill_every_s, broker_restart))
            accepted = await submit_all(http, stack, file_id, jobs)
            client = MongoClient(MONGO_URL, tz_aware=True)
            api_jobs = client[f"{stack.db_prefix}_api"]["jobs"]
            while time.monotonic() - t0 < deadline_s:
                if api_jobs.count_documents({"state": {"$nin": sorted(TERMINAL)}}) == 0:
                    break
                await asyncio.sleep(1.0)
            total_s = time.monotonic() - t0
            stop.set()
            kills = await chaos_task
            docs = {
                d["_id"]: d
                for d in api_jobs.find({}, {"state": 1, "submitted_at": 1, "updated_at": 1, "reason": 1})
            }
            claims = client[f"{stack.db_prefix}_runner"]["claims"]
            successes: dict[str, int] = {}
            for claim in claims.find({"state": "SUCCESS"}, {"job_id": 1}):
                successes[claim["job_id"]] = successes.get(claim["job_id"], 0) + 1
            attempts = {
                d["_id"]: d.get("attempt", 1)
                for d in client[f"{stack.db_prefix}_scheduler"]["jobs"].find({}, {"attempt": 1})
            }
            client.close()
    lost = [j for j in accepted if j not in docs]
    stuck = [j for j, d in docs.items() if d["state"] not in TERMINAL]
    duplicated = [j for j, n in successes.items() if n > 1]
    latencies = [
        (docs[j]["updated_at"].timestamp() - accepted[j])
        for j in accepted
        if j in docs and docs[j]["state"] in TERMINAL
    ]
    states: dict[str, int] = {}
    for d in docs.values():
        states[d["state"]] = states.get(d["state"], 0) + 1
    return {
        "jobs_accepted": len(accepted),
        "lost": len(lost),
        "stuck": len(stuck),
        "duplicated_success": len(duplicated),
        "states": states,
        "retried_jobs": sum(1 for a in attempts.values() if a > 1),
        "runner_kills": kills,
        "broker_restarts": 1 if broker_restart and kills >= 3 else 0,
        "not_success_reasons": sorted(
            {str(d.get("reason")) for d in docs.values() if d["state"] != "SUCCESS"}
        ),
        "p50_s": percentile(latencies, 50),
        "p99_s": percentile(latencies, 99),
        "total_s": total_s,
        "load": loadavg(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--kill-every", type=float, default=5.0)
    parser.add_argument("--deadline", type=float, default=900.0)
    parser.add_argument("--no-broker-restart", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args.jobs, args.kill_every, args.deadline, not args.no_broker_restart))
    rows = [
        ["jobs accepted", str(result["jobs_accepted"])],
        [
            "lost / stuck / ran SUCCESS twice",
            f"{result['lost']} / {result['stuck']} / {result['duplicated_success']}",
        ],
        ["final states", ", ".join(f"{k} {v}" for k, v in sorted(result["states"].items()))],
        ["jobs retried (runner lost)", str(result["retried_jobs"])],
        ["reasons of non-SUCCESS", "; ".join(result["not_success_reasons"]) or "-"],
        ["runner SIGKILLs / broker restarts", f"{result['runner_kills']} / {result['broker_restarts']}"],
        ["submit -> terminal p50 / p99 (s)", f"{fmt(result['p50_s'], 2)} / {fmt(result['p99_s'], 2)}"],
        ["total time (s)", fmt(result["total_s"])],
    ]
    print(markdown_table(["soak", "value"], rows))
    write_result("soak", result)
    return 0 if not (result["lost"] or result["stuck"] or result["duplicated_success"]) else 1


if __name__ == "__main__":
    sys.exit(main())
