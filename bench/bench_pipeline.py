"""What one job costs each service, and how the pipeline compares with this machine's limits.

The whole stack runs (runner included) with the test-only ``trivial`` app
(``CAESAR_ENABLE_TEST_APPS=true``, as ``bench_soak.py``), each job sleeping 0 s, so what
is measured is the service itself. Steps, all in one run:

1. **idle baseline**: the services' counters over ``--idle`` seconds with nothing to do
   (heartbeats, outbox sweeps, the watchdog, readiness pings): periodic work that is
   counted in the per-job figures too;
2. **burst**: ``--clients`` (8) closed-loop clients ``POST /job`` for ``--duration``
   seconds; then the time until every accepted job is terminal in the api's read model
   (the drain), then until the services are idle;
3. **raw limits**, with the durability the services use: journaled inserts and
   updates-by-``_id`` (``caesar_common.store.mongo_client``: ``journal=True``) from 8
   concurrent clients against the same database server, and persistent messages
   published with confirms (aio-pika) to a quorum queue from 8 concurrent publishers.

Per service and per accepted job it prints CPU milliseconds (``/proc/<pid>/stat``; the
runner's finished children separately), database commands (each service's
``caesar_db_commands_total{command}``), broker publishes (``caesar_events_published_total``)
and deliveries handled (``caesar_messages_consumed_total``), read from every service's
``/metrics`` before and after the burst. Then the ratios of the pipeline's throughput (jobs
accepted per second, jobs finished per second) to the raw limits. The machine is shared and
noisy: read ratios, not absolute figures. Nothing is asserted.

    .venv/bin/python bench/bench_pipeline.py                      # ~1.5 min on 2 cores
    .venv/bin/python bench/bench_pipeline.py --duration 30 --raw-duration 10 --slots 8

Result: ``bench/results/pipeline.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
from _stack import (
    CLOCK_TICKS,
    MONGO_URL,
    TERMINAL,
    ApiFailure,
    busy_fraction,
    check_infra,
    cpu_seconds,
    cpu_times,
    fmt,
    infra_pids,
    loadavg,
    markdown_table,
    percentile,
    running_stack,
    settle,
    submit,
    upload,
    write_result,
)
from prometheus_client.parser import text_string_to_metric_families
from pymongo import MongoClient

from caesar_common.store import mongo_client
from caesar_testkit.devstack import SERVICES, Stack
from caesar_testkit.skysim import SimulationSpec, write_simulation

CHILD_CPU_FIELDS = (13, 14)  # cutime, cstime: fields 16 and 17 of /proc/<pid>/stat
WRITE_COMMANDS = frozenset({"insert", "update", "delete", "findAndModify", "bulkWrite"})
METRICS = {
    "caesar_db_commands_total": ("db", ("command",)),
    "caesar_db_command_seconds_total": ("db_seconds", ("command", "collection")),
    "caesar_events_published_total": ("published", ("routing_key",)),
    "caesar_messages_consumed_total": ("consumed", ("queue", "outcome")),
}
RAW_QUEUE = "bench.raw-publish"
RAW_BODY = b'{"specversion":"1.0","data":"' + b"x" * 760 + b'"}'  # about one event envelope

Counters = dict[str, dict[str, float]]  # kind ("db", "published", "consumed") -> label -> value


# --------------------------------------------------------------------------- sampling


def child_cpu_seconds(pid: int) -> float:
    """CPU time of a process's finished (waited-for) children: the runner's job processes."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = stat[stat.rindex(")") + 2 :].split()
    return sum(int(fields[i]) for i in CHILD_CPU_FIELDS) / CLOCK_TICKS


def parse_metrics(text: str) -> Counters:
    """The counters this benchmark reads from one ``/metrics`` page, summed by label."""
    out: Counters = {kind: {} for kind, _ in METRICS.values()}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name not in METRICS:
                continue
            kind, labels = METRICS[sample.name]
            key = "|".join(sample.labels.get(label, "") for label in labels)
            out[kind][key] = out[kind].get(key, 0.0) + sample.value
    return out


@dataclass
class Snapshot:
    at: float
    counters: dict[str, Counters]  # service -> counters
    cpu: dict[str, float]  # service (and database, rabbitmq) -> CPU s
    child_cpu: dict[str, float]
    machine: tuple[int, int]


async def snapshot(http: aiohttp.ClientSession, stack: Stack) -> Snapshot:
    async def one(name: str) -> tuple[str, Counters]:
        async with http.get(f"http://127.0.0.1:{stack.ports[name]}/metrics") as resp:
            resp.raise_for_status()
            return name, parse_metrics(await resp.text())

    pids = {name: proc.pid for name, proc in stack.procs.items() if proc.poll() is None}
    cpu: dict[str, float] = {}
    child: dict[str, float] = {}
    counters: dict[str, Counters] = {}
    # Replicas (api2, runner2) count as their service: per job is per service, however many.
    for name, pid in pids.items():
        service = service_of(name)
        cpu[service] = cpu.get(service, 0.0) + cpu_seconds(pid)
        child[service] = child.get(service, 0.0) + child_cpu_seconds(pid)
    for name, page in await asyncio.gather(*(one(name) for name in pids)):
        merged = counters.setdefault(service_of(name), {})
        for kind, labels in page.items():
            into = merged.setdefault(kind, {})
            for key, value in labels.items():
                into[key] = into.get(key, 0.0) + value
    cpu.update({name: cpu_seconds(pid) for name, pid in infra_pids().items()})
    return Snapshot(time.monotonic(), counters, cpu, child, cpu_times())


def service_of(instance: str) -> str:
    """The service an instance of the stack belongs to (``api2`` -> ``api``)."""
    return instance.rstrip("0123456789")


def counter_delta(before: Counters, after: Counters) -> Counters:
    return {
        kind: {k: v - before.get(kind, {}).get(k, 0.0) for k, v in labels.items()}
        for kind, labels in after.items()
    }


@dataclass
class Usage:
    """What each service used between two snapshots."""

    seconds: float
    counters: dict[str, Counters]
    cpu: dict[str, float]
    child_cpu: dict[str, float]
    machine_busy: float

    @classmethod
    def between(cls, a: Snapshot, b: Snapshot) -> Usage:
        return cls(
            seconds=b.at - a.at,
            counters={s: counter_delta(a.counters.get(s, {}), c) for s, c in b.counters.items()},
            cpu={k: b.cpu[k] - v for k, v in a.cpu.items() if k in b.cpu},
            child_cpu={k: b.child_cpu[k] - v for k, v in a.child_cpu.items() if k in b.child_cpu},
            machine_busy=busy_fraction(a.machine, b.machine),
        )

    def total(self, service: str, kind: str, keys: Callable[[str], bool] = lambda _: True) -> float:
        return sum(v for k, v in self.counters.get(service, {}).get(kind, {}).items() if keys(k))

    def per_service(self, divisor: float) -> dict[str, dict[str, float]]:
        """Per-service figures divided by ``divisor`` (jobs, or seconds for the idle rate)."""
        rows: dict[str, dict[str, float]] = {}
        for s in self.counters:
            rows[s] = {
                "cpu_ms": 1000 * self.cpu.get(s, math.nan) / divisor,
                "child_cpu_ms": 1000 * self.child_cpu.get(s, math.nan) / divisor,
                "db_commands": self.total(s, "db") / divisor,
                "db_writes": self.total(s, "db", lambda k: k in WRITE_COMMANDS) / divisor,
                "publishes": self.total(s, "published") / divisor,
                "deliveries": self.total(s, "consumed") / divisor,
            }
        for s in ("database", "rabbitmq"):
            if s in self.cpu:
                rows[s] = {"cpu_ms": 1000 * self.cpu[s] / divisor}
        return rows

    def db_by_command(self, divisor: float) -> dict[str, dict[str, float]]:
        """command -> service -> commands per ``divisor``."""
        out: dict[str, dict[str, float]] = {}
        for s, counters in self.counters.items():
            for command, n in counters.get("db", {}).items():
                if n:
                    out.setdefault(command, {})[s] = n / divisor
        return dict(sorted(out.items(), key=lambda kv: -sum(kv[1].values())))

    def db_time(self, divisor: float, top: int = 12) -> dict[str, float]:
        """``service command collection`` -> database milliseconds per ``divisor``, largest first."""
        out: dict[str, float] = {}
        for s, counters in self.counters.items():
            for key, seconds in counters.get("db_seconds", {}).items():
                if seconds > 0:
                    out[f"{s} {key.replace('|', ' ')}"] = 1000 * seconds / divisor
        return dict(sorted(out.items(), key=lambda kv: -kv[1])[:top])

    def by_label(self, kind: str, divisor: float) -> dict[str, float]:
        """Label -> count per ``divisor`` over all services (routing keys, queue|outcome)."""
        out: dict[str, float] = {}
        for counters in self.counters.values():
            for key, n in counters.get(kind, {}).items():
                if n:
                    out[key] = out.get(key, 0.0) + n / divisor
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


# --------------------------------------------------------------------------- the burst


@dataclass
class Burst:
    clients: int
    accepted: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    submit_s: float = math.nan  # first submission to the last 202
    backlog_at_end: int = 0  # accepted jobs not yet terminal when submissions stopped
    drain_s: float = math.nan  # end of submissions to every job terminal
    finish_s: float = math.nan  # first submission to every job terminal
    unfinished: int = 0
    states: dict[str, int] = field(default_factory=dict)

    @property
    def accepted_per_s(self) -> float:
        return len(self.accepted) / self.submit_s if self.submit_s > 0 else math.nan

    @property
    def finished_per_s(self) -> float:
        done = len(self.accepted) - self.unfinished
        return done / self.finish_s if self.finish_s > 0 else math.nan

    @property
    def drain_per_s(self) -> float:
        return self.backlog_at_end / self.drain_s if self.drain_s > 0 else math.nan


async def submit_for(stack: Stack, payload: Mapping[str, Any], clients: int, duration_s: float) -> Burst:
    """``clients`` closed loops posting jobs until ``duration_s`` has passed, spread over
    every api replica of the stack (client k uses replica k mod n)."""
    burst = Burst(clients)
    apis = api_urls(stack)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    end = t0 + duration_s
    timeout = aiohttp.ClientTimeout(total=60)

    async def client(k: int) -> None:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while (start := loop.time()) < end:
                try:
                    burst.accepted.append(await submit(session, apis[k % len(apis)], payload))
                except (ApiFailure, aiohttp.ClientError, TimeoutError) as exc:
                    burst.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                    await asyncio.sleep(0.05)
                    continue
                burst.latencies_ms.append(1000 * (loop.time() - start))

    await asyncio.gather(*(client(k) for k in range(clients)))
    burst.submit_s = loop.time() - t0
    return burst


def api_urls(stack: Stack) -> list[str]:
    """The v1 base URL of every api instance of the stack."""
    return [
        f"http://127.0.0.1:{port}/caesar/api/v1.0"
        for name, port in sorted(stack.ports.items())
        if service_of(name) == "api"
    ]


def unfinished_jobs(stack: Stack, client: MongoClient[dict[str, Any]]) -> int:
    jobs = client[f"{stack.db_prefix}_api"]["jobs"]
    return jobs.count_documents({"state": {"$nin": sorted(TERMINAL)}})


async def run_burst(
    stack: Stack, file_id: str, clients: int, duration_s: float, drain_timeout_s: float
) -> Burst:
    payload = {"app": "trivial", "job_inputs": {"seconds": 0}, "data_inputs": file_id}
    client: MongoClient[dict[str, Any]] = MongoClient(MONGO_URL, tz_aware=True)
    try:
        t0 = time.monotonic()
        burst = await submit_for(stack, payload, clients, duration_s)
        t_end = time.monotonic()
        burst.backlog_at_end = await asyncio.to_thread(unfinished_jobs, stack, client)
        left = burst.backlog_at_end
        while left and time.monotonic() - t_end < drain_timeout_s:
            await asyncio.sleep(0.25)
            left = await asyncio.to_thread(unfinished_jobs, stack, client)
        now = time.monotonic()
        burst.unfinished = left
        burst.drain_s = now - t_end
        burst.finish_s = now - t0
        states: dict[str, int] = {}
        for doc in client[f"{stack.db_prefix}_api"]["jobs"].find({}, {"state": 1}):
            states[doc["state"]] = states.get(doc["state"], 0) + 1
        burst.states = states
    finally:
        client.close()
    return burst


# --------------------------------------------------------------------------- raw limits


@dataclass
class RawRate:
    name: str
    clients: int
    ops: int
    window_s: float
    client_cpu_s: float
    server_cpu_s: float  # the database server's or broker's CPU seconds in the window

    @property
    def per_s(self) -> float:
        return self.ops / self.window_s if self.window_s > 0 else math.nan

    def summary(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "ops": self.ops,
            "window_s": round(self.window_s, 3),
            "per_s": round(self.per_s, 1),
            "client_cpu_busy": round(self.client_cpu_s / self.window_s, 3),
            "server_cpu_busy": round(self.server_cpu_s / self.window_s, 3),
        }


Op = Callable[[int, int], Awaitable[None]]  # (client index, its call number)


async def closed_loop(
    name: str, op: Op, clients: int, duration_s: float, warmup_s: float, server: str
) -> RawRate:
    """``clients`` closed loops of ``op``; count the calls started and done inside the window."""
    loop = asyncio.get_running_loop()
    window_start = loop.time() + warmup_s
    window_end = window_start + duration_s
    counted = [0] * clients
    marks: dict[str, float] = {}

    async def mark() -> None:
        pid = infra_pids().get(server)
        await asyncio.sleep(max(0.0, window_start - loop.time()))
        marks["c0"], marks["s0"] = time.process_time(), cpu_seconds(pid) if pid else math.nan
        await asyncio.sleep(max(0.0, window_end - loop.time()))
        marks["c1"], marks["s1"] = time.process_time(), cpu_seconds(pid) if pid else math.nan

    async def client(k: int) -> None:
        i = 0
        while (t0 := loop.time()) < window_end:
            await op(k, i)
            i += 1
            if t0 >= window_start and loop.time() <= window_end:
                counted[k] += 1

    await asyncio.gather(mark(), *(client(k) for k in range(clients)))
    return RawRate(
        name, clients, sum(counted), duration_s, marks["c1"] - marks["c0"], marks["s1"] - marks["s0"]
    )


def job_like(now: datetime) -> dict[str, Any]:
    """A document shaped like the api's job record (about the same size)."""
    return {
        "_id": uuid.uuid4().hex,
        "owner": "bench",
        "app": "trivial",
        "app_version": "1",
        "state": "PENDING",
        "status": "Job accepted",
        "attempt": 1,
        "submitted_at": now,
        "updated_at": now,
        "job_inputs": {"seconds": 0.0, "exit-code": 0},
        "data_inputs": uuid.uuid4().hex,
        "tag": "",
        "pool": "local",
        "cores": 1,
        "memory_mb": 128,
        "wall_time_s": 600,
        "exit_status": None,
        "elapsed_s": None,
        "reason": None,
        "version": 1,
        "outbox": [],
    }


async def raw_database(prefix: str, clients: int, duration_s: float, warmup_s: float) -> list[RawRate]:
    """Journaled inserts, then updates by ``_id`` of the inserted documents (8 clients each)."""
    mongos = [mongo_client(MONGO_URL) for _ in range(clients)]
    try:
        colls = [m[f"{prefix}_rawlimit"]["docs"] for m in mongos]
        await colls[0].insert_one(job_like(datetime.now(UTC)))  # create the collection
        ids: list[list[str]] = [[] for _ in range(clients)]

        async def insert(k: int, _i: int) -> None:
            doc = job_like(datetime.now(UTC))
            await colls[k].insert_one(doc)
            ids[k].append(doc["_id"])

        async def update(k: int, i: int) -> None:
            mine = ids[k]
            await colls[k].update_one(
                {"_id": mine[i % len(mine)]},
                {"$set": {"state": "QUEUED", "updated_at": datetime.now(UTC)}, "$inc": {"version": 1}},
            )

        inserts = await closed_loop("db insert", insert, clients, duration_s, warmup_s, "database")
        updates = await closed_loop("db update by _id", update, clients, duration_s, warmup_s, "database")
        await colls[0].database.client.drop_database(f"{prefix}_rawlimit")
    finally:
        for m in mongos:
            await m.close()
    return [inserts, updates]


async def raw_broker(amqp_url: str, clients: int, duration_s: float, warmup_s: float) -> RawRate:
    """Persistent messages published with confirms to one quorum queue, 8 channels at once."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channels = [await connection.channel(publisher_confirms=True) for _ in range(clients)]
        queue = await channels[0].declare_queue(RAW_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})

        async def publish(k: int, _i: int) -> None:
            message = aio_pika.Message(RAW_BODY, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await channels[k].default_exchange.publish(message, routing_key=RAW_QUEUE, timeout=30)

        rate = await closed_loop("broker publish", publish, clients, duration_s, warmup_s, "rabbitmq")
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()
    return rate


# --------------------------------------------------------------------------- reporting


def ms(value: float) -> str:
    return fmt(value, 1)


def pct(share: float) -> str:
    return "n/a" if math.isnan(share) else f"{100 * share:.0f}%"


def per_job_table(per_job: Mapping[str, Mapping[str, float]], idle: Mapping[str, Mapping[str, float]]) -> str:
    head = [
        "per job",
        "CPU ms",
        "children CPU ms",
        "DB commands",
        "DB writes",
        "publishes",
        "deliveries",
        "idle: CPU ms/s",
        "idle: DB cmds/s",
    ]
    rows = []
    services = [s for s in SERVICES if s in per_job]
    for s in services:
        r, i = per_job[s], idle.get(s, {})
        rows.append(
            [
                s,
                ms(r["cpu_ms"]),
                ms(r["child_cpu_ms"]) if r["child_cpu_ms"] else "-",
                fmt(r["db_commands"], 2),
                fmt(r["db_writes"], 2),
                fmt(r["publishes"], 2),
                fmt(r["deliveries"], 2),
                ms(i.get("cpu_ms", math.nan)),
                fmt(i.get("db_commands", math.nan), 2),
            ]
        )
    total = {k: sum(per_job[s][k] for s in services) for k in per_job[services[0]]}
    idle_total = {k: sum(idle.get(s, {}).get(k, 0.0) for s in services) for k in ("cpu_ms", "db_commands")}
    rows.append(
        [
            "all services",
            ms(total["cpu_ms"]),
            ms(total["child_cpu_ms"]),
            fmt(total["db_commands"], 2),
            fmt(total["db_writes"], 2),
            fmt(total["publishes"], 2),
            fmt(total["deliveries"], 2),
            ms(idle_total["cpu_ms"]),
            fmt(idle_total["db_commands"], 2),
        ]
    )
    for s in ("database", "rabbitmq"):
        if s in per_job:
            rows.append(
                [
                    f"{s} server (shared)",
                    ms(per_job[s]["cpu_ms"]),
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    ms(idle.get(s, {}).get("cpu_ms", math.nan)),
                    "-",
                ]
            )
    return markdown_table(head, rows)


def db_command_table(by_command: Mapping[str, Mapping[str, float]]) -> str:
    services = [s for s in SERVICES if any(s in v for v in by_command.values())]
    rows = [
        [command, *(fmt(v.get(s, 0.0), 2) for s in services), fmt(sum(v.values()), 2)]
        for command, v in by_command.items()
    ]
    return markdown_table(["DB commands per job", *services, "all"], rows)


def ratio_rows(burst: Burst, raw: Sequence[RawRate], per_job_total: Mapping[str, float]) -> list[list[str]]:
    rows = []
    for label, rate in (("accepted", burst.accepted_per_s), ("finished", burst.finished_per_s)):
        for r in raw:
            rows.append([f"jobs {label}/s : {r.name}/s", fmt(rate), fmt(r.per_s), fmt(rate / r.per_s, 3)])
    finished = burst.finished_per_s
    by_name = {r.name: r for r in raw}
    uses = [
        ("DB write commands/s while finishing : db update by _id/s", "db_writes", "db update by _id"),
        ("DB commands/s (all) while finishing : db update by _id/s", "db_commands", "db update by _id"),
        ("publishes/s while finishing : broker publish/s", "publishes", "broker publish"),
    ]
    for label, key, raw_name in uses:
        if raw_name in by_name:
            used = per_job_total[key] * finished
            rows.append(
                [label, fmt(used), fmt(by_name[raw_name].per_s), fmt(used / by_name[raw_name].per_s, 3)]
            )
    return rows


def summarise(
    burst: Burst, usage: Usage, idle: Usage, raw: Sequence[RawRate], args: argparse.Namespace
) -> dict[str, Any]:
    n = len(burst.accepted)
    per_job = usage.per_service(n) if n else {}
    services = [s for s in SERVICES if s in per_job]
    per_job_total = {
        k: sum(per_job[s][k] for s in services)
        for k in ("cpu_ms", "child_cpu_ms", "db_commands", "db_writes", "publishes", "deliveries")
    }
    return {
        "settings": {
            "clients": burst.clients,
            "duration_s": args.duration,
            "slots": args.slots,
            "replicas": args.replicas,
            "raw_clients": args.raw_clients,
            "raw_duration_s": args.raw_duration,
        },
        "burst": {
            "jobs_accepted": n,
            "errors": len(burst.errors),
            "error_samples": burst.errors[:5],
            "submit_s": round(burst.submit_s, 3),
            "accepted_per_s": round(burst.accepted_per_s, 2),
            "submit_p50_ms": round(percentile(burst.latencies_ms, 50), 1),
            "submit_p99_ms": round(percentile(burst.latencies_ms, 99), 1),
            "backlog_at_end": burst.backlog_at_end,
            "drain_s": round(burst.drain_s, 2),
            "drain_per_s": round(burst.drain_per_s, 2),
            "finish_s": round(burst.finish_s, 2),
            "finished_per_s": round(burst.finished_per_s, 2),
            "unfinished": burst.unfinished,
            "states": burst.states,
            "measured_s": round(usage.seconds, 2),
            "machine_cpu_busy": round(usage.machine_busy, 3),
        },
        "per_job": {s: {k: round(v, 3) for k, v in r.items()} for s, r in per_job.items()},
        "per_job_all_services": {k: round(v, 3) for k, v in per_job_total.items()},
        "db_commands_per_job": {
            c: {s: round(v, 3) for s, v in r.items()} for c, r in usage.db_by_command(n or 1).items()
        },
        "publishes_per_job": {k: round(v, 3) for k, v in usage.by_label("published", n or 1).items()},
        "deliveries_per_job": {k: round(v, 3) for k, v in usage.by_label("consumed", n or 1).items()},
        "idle_per_s": {
            s: {k: round(v, 3) for k, v in r.items()} for s, r in idle.per_service(idle.seconds).items()
        },
        "raw": {r.name: r.summary() for r in raw},
        "ratios": {
            f"{label}_per_s/{r.name}": round(rate / r.per_s, 4)
            for label, rate in (("accepted", burst.accepted_per_s), ("finished", burst.finished_per_s))
            for r in raw
        },
    }


def print_report(
    burst: Burst, usage: Usage, idle: Usage, raw: Sequence[RawRate], result: Mapping[str, Any]
) -> None:
    b = result["burst"]
    n = b["jobs_accepted"]
    print(
        f"\nburst: {n} trivial jobs accepted in {b['submit_s']:.1f} s by {burst.clients} clients "
        f"({b['accepted_per_s']:.1f}/s, p50 {b['submit_p50_ms']} ms, p99 {b['submit_p99_ms']} ms, "
        f"{b['errors']} errors); {b['backlog_at_end']} not terminal when submissions stopped, "
        f"drained in {b['drain_s']:.1f} s ({b['drain_per_s']:.1f}/s); all terminal after "
        f"{b['finish_s']:.1f} s ({b['finished_per_s']:.1f} jobs/s finished); "
        f"{b['unfinished']} unfinished; states {b['states']}"
    )
    print(
        f"counters read over {b['measured_s']:.1f} s (burst, drain, services idle again); "
        f"machine busy {100 * b['machine_cpu_busy']:.0f}%\n"
    )
    if not n:
        print("no job accepted: nothing per job to print")
        return
    print(per_job_table(result["per_job"], result["idle_per_s"]))
    print(
        "\n(CPU: user+system of each process; children: the runner's finished job processes. "
        "Idle columns: the same services doing nothing, per second; that periodic work is "
        "included in the per-job figures.)\n"
    )
    print(db_command_table(usage.db_by_command(n)))
    print(
        "\ndatabase round-trip ms per job, largest (service command collection): "
        + ", ".join(f"{k} {v:.1f}" for k, v in usage.db_time(n).items())
    )
    print(
        "\npublishes per job by routing key: "
        + ", ".join(f"{k} {v:.2f}" for k, v in usage.by_label("published", n).items())
    )
    print(
        "deliveries per job by queue|outcome: "
        + ", ".join(f"{k} {v:.2f}" for k, v in usage.by_label("consumed", n).items())
        + "\n"
    )
    raw_rows = [
        [
            r.name,
            fmt(r.per_s),
            str(r.clients),
            pct(r.client_cpu_s / r.window_s),
            pct(r.server_cpu_s / r.window_s),
        ]
        for r in raw
    ]
    print(markdown_table(["raw limit (same run)", "ops/s", "clients", "client CPU", "server CPU"], raw_rows))
    print(
        "\n(db: journaled writes, as the services; broker: persistent messages, publisher confirms, "
        "one quorum queue; CPU as a share of one core.)\n"
    )
    print(
        markdown_table(
            ["pipeline : raw limit", "pipeline", "raw", "ratio"],
            ratio_rows(burst, raw, result["per_job_all_services"]),
        )
    )


# --------------------------------------------------------------------------- main


async def run(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    image = stack.root / "tiny.fits"
    write_simulation(SimulationSpec(size=64, seed=1, n_sources=2), image)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        file_id = str((await upload(http, stack.v1, image))["uuid"])
        waited = await asyncio.to_thread(settle, stack)
        print(f"services idle after {waited:.1f} s; idle baseline for {args.idle:g} s", flush=True)
        s0 = await snapshot(http, stack)
        await asyncio.sleep(args.idle)
        s1 = await snapshot(http, stack)
        idle = Usage.between(s0, s1)

        print(f"burst: {args.clients} clients for {args.duration:g} s, then the drain", flush=True)
        b0 = await snapshot(http, stack)
        burst = await run_burst(stack, file_id, args.clients, args.duration, args.drain_timeout)
        waited = await asyncio.to_thread(settle, stack)
        b1 = await snapshot(http, stack)
        usage = Usage.between(b0, b1)
        print(f"  drained; services idle {waited:.1f} s later", flush=True)

    print(f"raw limits: {args.raw_clients} clients, {args.raw_duration:g} s each", flush=True)
    raw = await raw_database(stack.db_prefix, args.raw_clients, args.raw_duration, args.raw_warmup)
    raw.append(await raw_broker(stack.amqp_url, args.raw_clients, args.raw_duration, args.raw_warmup))
    result = summarise(burst, usage, idle, raw, args)
    print_report(burst, usage, idle, raw, result)
    return result


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of submissions")
    parser.add_argument("--clients", type=int, default=8, help="concurrent submission clients")
    parser.add_argument("--slots", type=int, default=4, help="the runner's job slots")
    parser.add_argument(
        "--replicas", type=int, default=1, help="api and runner processes (clients spread over the apis)"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=120.0, help="give up waiting for the jobs after this"
    )
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of the idle baseline")
    parser.add_argument("--raw-duration", type=float, default=3.0, help="seconds per raw-limit run")
    parser.add_argument("--raw-warmup", type=float, default=0.5, help="unmeasured seconds before each")
    parser.add_argument("--raw-clients", type=int, default=8, help="concurrent clients of the raw runs")
    parser.add_argument("--log-level", default="INFO", help="the services' log level")
    parser.add_argument("--keep", action="store_true", help="keep the stack directory and logs")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check_infra()
    load0 = loadavg()
    print(f"bench_pipeline: loadavg {load0} at start", flush=True)
    env = {
        "CAESAR_ENABLE_TEST_APPS": "true",
        "CAESAR_SLOTS": str(args.slots),
        "CAESAR_MAX_ACTIVE_PER_USER": "0",
        "CAESAR_LOG_LEVEL": args.log_level,
    }
    with running_stack("pipeline", keep=args.keep, **env) as stack:
        for k in range(2, args.replicas + 1):
            for name in ("api", "runner"):
                stack.start(name, instance=f"{name}{k}")
                stack.wait_ready(f"{name}{k}")
        result = asyncio.run(run(args, stack))
    load1 = loadavg()
    print(f"bench_pipeline: loadavg {load1} at end")
    path = write_result("pipeline", {"loadavg_start": load0, "loadavg_end": load1, **result})
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
