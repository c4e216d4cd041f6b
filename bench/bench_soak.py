"""Soak: 2,000 trivial jobs through every fault the pipeline is built to survive.

Two runners serve the pool. Every ``--kill-every`` seconds one fault, in turn: a runner
SIGKILLed (started again at once, as a supervisor would), or a runner frozen with
SIGSTOP past the monitor's timeout and then resumed; once each during the run the broker
restarts, the database is killed and restarted, and the scheduler, the monitor and the
accounting are SIGKILLed and restarted.

Prints how many accepted jobs were lost (never terminal), stuck (not terminal at the
deadline), ran to SUCCESS twice, and how many pairs of attempts of one job were alive at
the same time, proved from the attempts' own step logs (the trivial app prints the wall
clock every 50 ms while it runs); whether accounting agrees with the api; the
submit->terminal latency p50/p99 and the total time.

    .venv/bin/python bench/bench_soak.py [--jobs 2000] [--kill-every 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from pymongo import MongoClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._stack import (
    INFRA,
    MONGO_URL,
    TERMINAL,
    fmt,
    infra_pids,
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
    "CAESAR_SELF_FENCE_S": "3",
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


FAULTS_ONCE = {3: "broker", 5: "database", 7: "scheduler", 9: "monitor", 11: "accounting"}


def restart_database() -> None:
    """SIGKILL the MongoDB-wire server and start it again (same data directory)."""
    pid = infra_pids().get("database")
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        while Path(f"/proc/{pid}").exists():
            time.sleep(0.1)
    subprocess.run([str(INFRA), "start"], check=True, capture_output=True, timeout=300)


async def chaos(stack: Stack, stop: asyncio.Event, every_s: float, timeout_s: float) -> dict[str, int]:
    """One fault every ``every_s``: runner SIGKILL and runner freeze in turn, plus each
    fault of ``FAULTS_ONCE`` once. Returns how many of each were done."""
    done: dict[str, int] = {}
    victims = ["runner", "runner2"]
    step = 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)
        if stop.is_set():
            break
        step += 1
        victim = victims[step % 2]
        if step % 2:
            stack.kill(victim, signal.SIGKILL)
            stack.start("runner", instance=victim)
            done["runner SIGKILL"] = done.get("runner SIGKILL", 0) + 1
        else:
            pid = stack.procs[victim].pid
            os.killpg(pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(timeout_s + 3)  # past the monitor's timeout
            finally:
                os.killpg(pid, signal.SIGCONT)
            done["runner frozen"] = done.get("runner frozen", 0) + 1
        once = FAULTS_ONCE.get(step)
        if once == "broker":
            await asyncio.to_thread(rabbitmqctl, "stop_app")
            await asyncio.sleep(3)
            await asyncio.to_thread(rabbitmqctl, "start_app")
        elif once == "database":
            await asyncio.to_thread(restart_database)
        elif once is not None:
            stack.kill(once, signal.SIGKILL)
            stack.start(once)
        if once is not None:
            done[f"{once} restart"] = 1
    return done


def alive_intervals(jobs_root: Path, job_id: str) -> list[tuple[float, float, int]]:
    """``(first, last, attempt)`` wall clock each attempt's process printed, from its step log."""
    intervals = []
    for log in sorted((jobs_root / job_id / "attempts").glob("*/00-sleep.stdout.log")):
        stamps = [
            float(line.split()[1]) for line in log.read_text().splitlines() if line.startswith("alive ")
        ]
        if stamps:
            intervals.append((min(stamps), max(stamps), int(log.parent.name)))
    return intervals


def overlaps(intervals: list[tuple[float, float, int]]) -> list[float]:
    """How long each pair of attempts was alive at once (only pairs that were)."""
    found = []
    for i, (start_a, end_a, _) in enumerate(intervals):
        for start_b, end_b, _ in intervals[i + 1 :]:
            both = min(end_a, end_b) - max(start_a, start_b)
            if both > 0:
                found.append(both)
    return found


async def run(jobs: int, every_s: float, deadline_s: float) -> dict[str, Any]:
    with running_stack("soak", **ENV) as stack:  # type: ignore[arg-type]
        stack.start("runner", instance="runner2")
        stack.wait_ready("runner2")
        image = stack.root / "tiny.fits"
        write_simulation(SimulationSpec(size=64, seed=1, n_sources=2), image)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            file_id = (await upload(http, stack.v1, image))["uuid"]
            t0 = time.monotonic()
            stop = asyncio.Event()
            timeout_s = float(ENV["CAESAR_RUNNER_TIMEOUT_S"])
            chaos_task = asyncio.ensure_future(chaos(stack, stop, every_s, timeout_s))
            accepted = await submit_all(http, stack, file_id, jobs)
            client: MongoClient[dict[str, Any]] = MongoClient(MONGO_URL, tz_aware=True)
            api_jobs = client[f"{stack.db_prefix}_api"]["jobs"]
            while time.monotonic() - t0 < deadline_s:
                with contextlib.suppress(Exception):  # the database may be restarting
                    if api_jobs.count_documents({"state": {"$nin": sorted(TERMINAL)}}) == 0:
                        break
                await asyncio.sleep(1.0)
            total_s = time.monotonic() - t0
            stop.set()
            faults = await chaos_task
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
            url = f"http://127.0.0.1:{stack.ports['accounting']}/usage?owner=anonymous"
            totals: dict[str, Any] = {}
            for _ in range(60):  # accounting may still be reading its queue
                async with http.get(url) as resp:
                    totals = (await resp.json())["totals"]
                if totals["njobs"] == len(docs) and totals["njobs_active"] == 0:
                    break
                await asyncio.sleep(1.0)
            client.close()
        jobs_root = stack.root / "jobs" / "anonymous"
        retried = [j for j, a in attempts.items() if a > 1]
        both_alive = [o for j in retried for o in overlaps(alive_intervals(jobs_root, j))]
        attempt_logs = sum(len(alive_intervals(jobs_root, j)) for j in retried)
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
        "overlapping_attempt_pairs": len(both_alive),
        "max_overlap_s": max(both_alive, default=0.0),
        "retried_jobs": len(retried),
        "retried_attempt_logs": attempt_logs,
        "states": states,
        "accounting_completed": totals.get("njobs_completed"),
        "accounting_jobs": totals.get("njobs"),
        "api_success": states.get("SUCCESS", 0),
        "faults": faults,
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
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--kill-every", type=float, default=5.0)
    parser.add_argument("--deadline", type=float, default=1200.0)
    args = parser.parse_args()
    result = asyncio.run(run(args.jobs, args.kill_every, args.deadline))
    accounting_agrees = (
        result["accounting_jobs"] == sum(result["states"].values())
        and result["accounting_completed"] == result["api_success"]
    )
    rows = [
        ["jobs accepted", str(result["jobs_accepted"])],
        [
            "lost / stuck / ran SUCCESS twice",
            f"{result['lost']} / {result['stuck']} / {result['duplicated_success']}",
        ],
        [
            "attempts of one job alive at once (pairs, from step logs)",
            f"{result['overlapping_attempt_pairs']} (max {fmt(result['max_overlap_s'], 3)} s; "
            f"{result['retried_attempt_logs']} attempt logs of {result['retried_jobs']} retried jobs)",
        ],
        ["final states", ", ".join(f"{k} {v}" for k, v in sorted(result["states"].items()))],
        [
            "accounting = api (jobs, completed)",
            f"{'yes' if accounting_agrees else 'NO'} "
            f"({result['accounting_jobs']}, {result['accounting_completed']})",
        ],
        ["reasons of non-SUCCESS", "; ".join(result["not_success_reasons"]) or "-"],
        ["faults", ", ".join(f"{k} {v}" for k, v in sorted(result["faults"].items()))],
        ["submit -> terminal p50 / p99 (s)", f"{fmt(result['p50_s'], 2)} / {fmt(result['p99_s'], 2)}"],
        ["total time (s)", fmt(result["total_s"])],
        ["load average (1, 5, 15 min)", ", ".join(str(x) for x in result["load"])],
    ]
    write_result("soak", result)
    print(markdown_table(["soak", "value"], rows))
    bad = (
        result["lost"]
        or result["stuck"]
        or result["duplicated_success"]
        or result["overlapping_attempt_pairs"]
    )
    return 0 if not bad and accounting_agrees else 1


if __name__ == "__main__":
    sys.exit(main())
