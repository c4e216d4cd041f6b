"""Shared pieces of the benchmarks: a throw-away stack, v1 HTTP helpers, stats, output.

Every benchmark runs its own stack (``caesar_testkit.devstack.Stack``) in a temporary
directory, on its own RabbitMQ virtual host and with its own database prefix, and removes
all three when it ends, so benchmarks never see each other's (or the tests') messages and
documents. The infrastructure itself (RabbitMQ, the MongoDB-wire server) must already run:
``scripts/infra.sh start``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from astropy.io import fits
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from caesar_testkit.devstack import SERVICES, Stack
from caesar_testkit.infra import (
    INFRA,
    Vhost,
    admin_mongo_url,
    drop_databases,
    rabbitmqctl,
    service_users,
)

__all__ = ["INFRA", "rabbitmqctl"]

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
# The administrators of the local broker and database; each stack's services get their
# own users with a deployment's privileges (caesar_testkit.infra).
MONGO_URL = admin_mongo_url()

TERMINAL = frozenset({"SUCCESS", "FAILURE", "TIMED-OUT", "CANCELED", "ABORTED"})
FITS_BLOCK = 2880
MB = 1_000_000  # throughput is in MB/s (10^6 bytes), as dd prints it
MIB = 1024**2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

#: Figures of the old caesar-rest v1.0 service measured on the same kind of machine.
OLD_REFERENCE: dict[str, float] = {
    "submissions_per_s": 98.8,
    "submit_p50_ms": 66.0,
    "submit_p99_ms": 265.0,
    "status_p50_ms": 28.0,
    "status_p99_ms": 79.0,
    "upload_mb_s_low": 64.0,
    "upload_mb_s_high": 67.0,
}
OLD_LABEL = "vs old caesar-rest (reference figures)"


# --------------------------------------------------------------------------- infrastructure


def check_infra() -> None:
    """Fail early, with the fix, when RabbitMQ or the database is not reachable."""
    try:
        rabbitmqctl("status")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        raise SystemExit(f"RabbitMQ is not reachable ({type(exc).__name__}); scripts/infra.sh start") from exc
    client: MongoClient[dict[str, Any]] = MongoClient(MONGO_URL, serverSelectionTimeoutMS=3000)
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        reason = str(exc).split(" (configured timeouts")[0]
        raise SystemExit(f"database not reachable at {MONGO_URL} ({reason}); scripts/infra.sh start") from exc
    finally:
        client.close()


def _wait_ready_retrying_port(stack: Stack, name: str, attempts: int = 3) -> None:
    """Wait for ``name``; restart it on another port if its free port was taken meanwhile.

    ``free_port()`` closes the socket before the service binds it, and other stacks (tests
    running at the same time) may take the port in between.
    """
    for attempt in range(attempts):
        try:
            stack.wait_ready(name)
            return
        except RuntimeError as exc:
            if "address already in use" not in str(exc) or attempt == attempts - 1:
                raise
            print(f"{name}: port {stack.ports[name]} was taken, retrying on another", file=sys.stderr)
            del stack.ports[name]
            stack.start(name)


@contextmanager
def running_stack(
    label: str,
    services: Sequence[str] = SERVICES,
    *,
    base_dir: Path | None = None,
    keep: bool = False,
    **extra_env: str,
) -> Iterator[Stack]:
    """Start ``services`` of a fresh stack; stop it and remove everything it made afterwards.

    The stack's data and job directories live in a new temporary directory under
    ``base_dir`` (default: the system temporary directory); ``keep`` leaves it on disk
    (logs included) for inspection. On a failure the service logs' tails go to stderr and
    the logs are copied to ``bench/results/failed-<label>-<time>/``.
    """
    root = Path(tempfile.mkdtemp(prefix=f"caesar-bench-{label}-", dir=base_dir))
    vhost = Vhost(f"bench-{label}")
    prefix = f"b{uuid.uuid4().hex[:10]}"
    users = service_users(vhost, prefix, MONGO_URL)
    service_urls = users.__enter__()
    stack = Stack(root, vhost.url, MONGO_URL, prefix, extra_env=extra_env, service_urls=service_urls)
    failed = False
    try:
        for sub in ("data", "jobs", "logs"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for name in services:
            stack.start(name)
        for name in services:
            _wait_ready_retrying_port(stack, name)
        yield stack
    except BaseException:
        failed = True
        for name in stack.procs:
            print(f"--- {name} log (tail) ---\n{stack.log_tail(name, 20)}", file=sys.stderr)
        raise
    finally:
        stack.stop_all()
        try:
            vhost.delete()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            print(f"warning: could not delete vhost {vhost.name}: {exc}", file=sys.stderr)
        drop_databases(prefix, MONGO_URL)
        users.__exit__(None, None, None)
        if failed and not keep:
            logs = RESULTS_DIR / f"failed-{label}-{time.strftime('%Y%m%d-%H%M%S')}"
            shutil.copytree(root / "logs", logs, dirs_exist_ok=True)
            print(f"service logs copied to {logs}", file=sys.stderr)
        if keep:
            print(f"stack directory kept: {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def infra_pids() -> dict[str, int]:
    """Pids of the local database and broker (from ``scripts/infra.sh``'s pid files), if alive.

    They serve every stack on the machine (tests too), so their CPU time is only a hint.
    """
    run_dir = Path(os.environ.get("CAESAR_RUN_DIR", REPO / ".run"))
    files = {"database": run_dir / "pids" / "mongo.pid", "rabbitmq": run_dir / "rabbitmq" / "rabbitmq.pid"}
    pids = {}
    for name, path in files.items():
        try:
            pid = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if Path(f"/proc/{pid}").exists():
            pids[name] = pid
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``); NaN if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_cpu(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of the stack's services and of the shared infrastructure."""
    pids = {name: proc.pid for name, proc in stack.procs.items() if proc.poll() is None}
    pids.update(infra_pids())
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def cpu_times() -> tuple[int, int]:
    """Machine-wide (busy, total) jiffies from ``/proc/stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


def busy_fraction(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Share of all CPUs' time spent busy between two :func:`cpu_times` samples."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else math.nan


def db_opcounters() -> dict[str, int]:
    """The database server's operation counters (``serverStatus``), {} if it has none.

    Server-wide: other stacks using the same server at the same time are counted too.
    """
    client: MongoClient[dict[str, Any]] = MongoClient(MONGO_URL, serverSelectionTimeoutMS=3000)
    try:
        counters = client.admin.command("serverStatus").get("opcounters", {})
        return {str(k): int(v) for k, v in counters.items()}
    except PyMongoError:
        return {}
    finally:
        client.close()


def db_top(prefix: str) -> dict[str, tuple[int, int]]:
    """Per-collection (operation count, total time in µs) of ``prefix``'s databases (``top``).

    Names are ``<db without the prefix>.<collection>``; {} if the server has no ``top``.
    """
    client: MongoClient[dict[str, Any]] = MongoClient(MONGO_URL, serverSelectionTimeoutMS=3000)
    try:
        totals = client.admin.command("top").get("totals", {})
    except PyMongoError:
        return {}
    finally:
        client.close()
    out = {}
    for ns, figures in totals.items():
        if ns.startswith(prefix) and isinstance(figures, dict) and "total" in figures:
            out[ns[len(prefix) :]] = (int(figures["total"]["count"]), int(figures["total"]["time"]))
    return out


def top_delta(
    before: Mapping[str, tuple[int, int]], after: Mapping[str, tuple[int, int]], requests: int
) -> dict[str, dict[str, float]]:
    """Database operations and time per request, by collection, busiest first."""
    rows = {}
    for ns, (count, micros) in after.items():
        c0, t0 = before.get(ns, (0, 0))
        if count > c0 and requests:
            rows[ns] = {
                "ops_per_request": round((count - c0) / requests, 2),
                "us_per_request": round((micros - t0) / requests, 1),
            }
    return dict(sorted(rows.items(), key=lambda kv: -kv[1]["us_per_request"]))


def delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {k: after[k] - v for k, v in before.items() if k in after}


def settle(stack: Stack, idle_cores: float = 0.05, window_s: float = 1.0, timeout_s: float = 60.0) -> float:
    """Wait until the stack's services together use less than ``idle_cores`` CPUs; return the wait.

    After a burst of submissions the scheduler, monitor and accounting work through their
    queues for a while; measuring the next thing meanwhile would charge it for that work.
    """
    t0 = time.monotonic()
    pids = [p.pid for p in stack.procs.values() if p.poll() is None]
    before = sum(cpu_seconds(pid) for pid in pids)
    while time.monotonic() - t0 < timeout_s:
        time.sleep(window_s)
        after = sum(cpu_seconds(pid) for pid in pids)
        if after - before < idle_cores * window_s:
            break
        before = after
    return time.monotonic() - t0


def peak_rss_mb(pid: int) -> float:
    """``VmHWM`` (peak resident set) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


# --------------------------------------------------------------------------- v1 HTTP helpers


class ApiFailure(RuntimeError):
    """The api answered with an unexpected status."""


async def upload(session: aiohttp.ClientSession, v1: str, path: Path) -> dict[str, Any]:
    """``POST /upload`` streaming ``path`` from disk (never read whole into memory)."""
    with path.open("rb") as handle:
        form = aiohttp.FormData()
        form.add_field("file", handle, filename=path.name, content_type="application/fits")
        async with session.post(f"{v1}/upload", data=form) as resp:
            body: dict[str, Any] = await resp.json(content_type=None)
            if resp.status != 200:
                raise ApiFailure(f"upload of {path.name}: {resp.status} {body}")
            return body


async def submit(session: aiohttp.ClientSession, v1: str, payload: Mapping[str, Any]) -> str:
    async with session.post(f"{v1}/job", json=payload) as resp:
        body = await resp.json(content_type=None)
        if resp.status != 202:
            raise ApiFailure(f"submit: {resp.status} {body}")
        return str(body["job_id"])


async def job_status(session: aiohttp.ClientSession, v1: str, job_id: str) -> dict[str, Any]:
    async with session.get(f"{v1}/job/{job_id}/status") as resp:
        body: dict[str, Any] = await resp.json(content_type=None)
        if resp.status != 200:
            raise ApiFailure(f"status of {job_id}: {resp.status} {body}")
        return body


async def wait_state(
    session: aiohttp.ClientSession,
    v1: str,
    job_id: str,
    states: frozenset[str] = TERMINAL,
    timeout_s: float = 600.0,
    poll_s: float = 0.1,
) -> tuple[dict[str, Any], float]:
    """Poll the status until it is in ``states``; return it and when it was seen (monotonic)."""
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = await job_status(session, v1, job_id)
        if body.get("state") in states:
            return body, time.monotonic()
        await asyncio.sleep(poll_s)
    raise TimeoutError(f"job {job_id} still {body.get('state')} after {timeout_s} s")


# --------------------------------------------------------------------------- FITS files


def fits_header_block(naxis1: int, naxis2: int) -> bytes:
    """The primary header of a float32 ``naxis2 x naxis1`` image, padded to 2880 bytes."""
    header = fits.Header()
    header["SIMPLE"] = True
    header["BITPIX"] = -32
    header["NAXIS"] = 2
    header["NAXIS1"] = naxis1
    header["NAXIS2"] = naxis2
    header["BUNIT"] = "JY/BEAM"
    block: bytes = header.tostring().encode("ascii")  # tostring() pads to 2880 with END
    if len(block) % FITS_BLOCK:
        block += b" " * (FITS_BLOCK - len(block) % FITS_BLOCK)
    return block


def write_zero_fits(path: Path, data_mib: int, naxis1: int = 4096) -> int:
    """A valid FITS float32 image of ``data_mib`` MiB of zeros (a sparse file); return its size.

    ``data_mib`` MiB of float32 pixels is ``naxis1`` columns by ``data_mib * 2**20 / 4 /
    naxis1`` rows (64 MiB: 4096^2; 1024 MiB: 4096 x 65536).
    """
    pixels = data_mib * MIB // 4
    if pixels % naxis1:
        raise ValueError(f"{data_mib} MiB is not a whole number of {naxis1}-pixel rows")
    header = fits_header_block(naxis1, pixels // naxis1)
    data_bytes = pixels * 4
    size = len(header) + math.ceil(data_bytes / FITS_BLOCK) * FITS_BLOCK
    with path.open("wb") as handle:
        handle.write(header)
        handle.truncate(size)
    return size


# --------------------------------------------------------------------------- numbers and output


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ratio(ours: float, reference: float) -> float:
    return ours / reference if reference else math.nan


def fmt(value: float | int | str | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table with padded columns (readable in a terminal too)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_result(name: str, data: Mapping[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` (with time and machine facts) and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    document = {
        "benchmark": name,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        **data,
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    return path
