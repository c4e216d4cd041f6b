"""One job's trace in Jaeger: all five services, parented through the outbox, the app's steps.

A Jaeger of its own (scripts/jaeger.sh, on free ports in a temporary run directory) takes
the spans of a stack of its own (OTLP/HTTP), one aegean job runs through the v1 API, and
the job's trace is read back from Jaeger's query API until it is complete or a deadline
passes. What it must show:

* spans of the api, the scheduler, the runner, the monitor and accounting, in one trace
  whose only root is the api's ``POST`` of the job;
* every span's parent in the trace, and the hops through the transactional outbox
  parented as :mod:`caesar_common.outbox` intends: the relay's ``publish`` span and the
  consumer's ``consume`` span are both children of the span that wrote the event (not
  of each other, however late the relay publishes);
* the runner's ``attempt`` span, and below it ``stage input`` and one ``step <name>``
  span per step of the job's manifest, each with its exit code.

Jaeger is built once by ``scripts/jaeger.sh install`` (``make test`` does it); without
the binary the test is skipped, except under ``make test``, where that is a failure.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from caesar_testkit.devstack import Stack, free_port
from caesar_testkit.skysim import SimulationSpec, write_simulation
from tests.conftest import REPO, isolated_stack
from tests.e2e.conftest import submit, upload, wait_state

pytestmark = pytest.mark.e2e

SCRIPT = REPO / "scripts" / "jaeger.sh"
SLURM_MIN_IMAGE_BYTES = 1_000_000  # a 512x512 map (~1 MB) goes to Slurm, 128x128 stays local
SERVICES = {f"caesar-{name}" for name in ("api", "scheduler", "runner", "monitor", "accounting")}


@dataclass(frozen=True)
class Jaeger:
    query_url: str
    otlp_url: str
    pid: int
    ports: frozenset[int]


def script_env(run_dir: Path, ports: Mapping[str, int]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CAESAR_RUN_DIR=str(run_dir),
        CAESAR_START_TAG="e2e-tracing",
        CAESAR_JAEGER_OTLP_PORT=str(ports["otlp"]),
        CAESAR_JAEGER_UI_PORT=str(ports["ui"]),
        CAESAR_JAEGER_QUERY_GRPC_PORT=str(ports["grpc"]),
    )
    return env


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    """Jaeger started by scripts/jaeger.sh on free ports, stopped (by the script) afterwards."""
    run_dir = tmp_path_factory.mktemp("jaeger-run")
    ports = {"otlp": free_port(), "ui": free_port(), "grpc": free_port()}
    env = script_env(run_dir, ports)
    if subprocess.run([SCRIPT, "installed"], env=env, capture_output=True).returncode != 0:
        if os.environ.get("CAESAR_TEST_RUN_ID"):  # under scripts/test.sh, which installs it
            pytest.fail("Jaeger is not built although scripts/test.sh ran scripts/jaeger.sh install")
        pytest.skip("Jaeger is not built: run scripts/jaeger.sh install (about five minutes, once)")
    started = subprocess.run([SCRIPT, "start"], env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    pid = int((run_dir / "pids" / "jaeger.pid").read_text())
    try:
        yield Jaeger(
            query_url=f"http://127.0.0.1:{ports['ui']}",
            otlp_url=f"http://127.0.0.1:{ports['otlp']}",
            pid=pid,
            ports=frozenset(ports.values()),
        )
    finally:
        stopped = subprocess.run([SCRIPT, "stop", "--tag", "e2e-tracing"], env=env, capture_output=True)
        assert stopped.returncode == 0, stopped.stderr
    status = subprocess.run([SCRIPT, "status"], env=env, capture_output=True, text=True)
    assert "stopped" in status.stdout, status.stdout


@pytest.fixture(scope="module")
def traced_stack(jaeger: Jaeger, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The five services exporting to that Jaeger, each under its default service name."""
    with pytest.MonkeyPatch.context() as mp:
        # Stack.env_for copies this process's environment: no OTEL_* of the caller's
        # (a shared OTEL_SERVICE_NAME, another endpoint) may reach the services.
        for name in [k for k in os.environ if k.startswith("OTEL_")]:
            mp.delenv(name)
        with isolated_stack(
            tmp_path_factory.mktemp("traced"),
            prefix_letter="j",
            OTEL_EXPORTER_OTLP_ENDPOINT=jaeger.otlp_url,
            OTEL_BSP_SCHEDULE_DELAY="200",  # export within a fraction of a second
            CAESAR_OUTBOX_SWEEP_INTERVAL_S="1",
            CAESAR_ENABLE_TEST_APPS="true",
            CAESAR_POOLS='["local", "slurm"]',
            CAESAR_SLURM_MIN_IMAGE_BYTES=str(SLURM_MIN_IMAGE_BYTES),
        ) as stack:
            yield stack


@pytest.fixture(scope="module")
def slurm_runner(traced_stack: Stack) -> Stack:
    """The traced stack with a second runner, serving its Slurm pool on scripts/slurm.sh's cluster."""
    token = subprocess.run(
        [str(REPO / "scripts" / "slurm.sh"), "token", "7200"], capture_output=True, text=True, timeout=60
    )
    if token.returncode != 0:
        if os.environ.get("CAESAR_TEST_RUN_ID"):  # under scripts/test.sh, which starts Slurm
            pytest.fail(f"no Slurm to test against: {token.stderr.strip()}")
        pytest.skip("no Slurm: run scripts/slurm.sh install start")
    traced_stack.start(
        "runner",
        instance="runner-slurm",
        CAESAR_EXECUTOR="slurm",
        CAESAR_RUNNER_ID="tracing-slurm",
        CAESAR_SLURM_TOKEN=token.stdout.strip(),
        CAESAR_SLURM_USER="root",  # the test cluster's slurmd runs as root; no default exists
        CAESAR_SLURM_POLL_INTERVAL_S="0.5",
    )
    traced_stack.wait_ready("runner-slurm")
    return traced_stack


# -- reading Jaeger's answer ---------------------------------------------------------------


@dataclass(frozen=True)
class SpanView:
    span_id: str
    parent_id: str | None
    name: str
    service: str
    tags: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.tags.get("span.kind", "internal"))


@dataclass
class TraceView:
    trace_id: str
    spans: list[SpanView] = field(default_factory=list)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> TraceView:
        """A trace of Jaeger's /api/traces answer: spans with their service and parent."""
        services = {pid: p["serviceName"] for pid, p in data["processes"].items()}
        view = cls(data["traceID"])
        for span in data["spans"]:
            parents = [
                r["spanID"]
                for r in span.get("references", [])
                if r["refType"] == "CHILD_OF" and r["traceID"] == data["traceID"]
            ]
            view.spans.append(
                SpanView(
                    span_id=span["spanID"],
                    parent_id=parents[0] if parents else None,
                    name=span["operationName"],
                    service=services[span["processID"]],
                    tags={t["key"]: t["value"] for t in span.get("tags", [])},
                )
            )
        return view

    @property
    def by_id(self) -> dict[str, SpanView]:
        return {s.span_id: s for s in self.spans}

    def named(self, name: str, service: str | None = None) -> list[SpanView]:
        return [s for s in self.spans if s.name == name and service in (None, s.service)]

    def children(self, parent: SpanView) -> list[SpanView]:
        return [s for s in self.spans if s.parent_id == parent.span_id]

    def orphans(self) -> list[SpanView]:
        """Spans whose parent is not (yet) in the trace."""
        ids = self.by_id
        return [s for s in self.spans if s.parent_id is not None and s.parent_id not in ids]

    def services(self) -> set[str]:
        return {s.service for s in self.spans}

    def tree(self) -> str:
        """The spans as an indented tree (service, name), for failure messages."""
        lines: list[str] = []

        def walk(span: SpanView, depth: int) -> None:
            lines.append(f"{'  ' * depth}{span.service}: {span.name}")
            for child in self.children(span):
                walk(child, depth + 1)

        for root in [s for s in self.spans if s.parent_id is None or s.parent_id not in self.by_id]:
            walk(root, 0)
        return "\n".join(lines)


async def find_trace(http: aiohttp.ClientSession, jaeger: Jaeger, job_id: str) -> TraceView | None:
    """The trace holding the runner's attempt span of ``job_id``, if Jaeger has it yet."""
    params = {
        "service": "caesar-runner",
        "operation": "attempt",
        "tags": json.dumps({"caesar.job_id": job_id}),
        "limit": "5",
    }
    async with http.get(f"{jaeger.query_url}/api/traces", params=params) as resp:
        if resp.status != 200:
            return None
        found = (await resp.json())["data"] or []
    if not found:
        return None
    async with http.get(f"{jaeger.query_url}/api/traces/{found[0]['traceID']}") as resp:
        if resp.status != 200:
            return None
        (data,) = (await resp.json())["data"]
    return TraceView.parse(data)


def missing(trace: TraceView | None, steps: list[str]) -> list[str]:
    """What the job's trace still lacks (empty: complete)."""
    if trace is None:
        return ["the trace"]
    gaps = [f"spans of {s}" for s in sorted(SERVICES - trace.services())]
    gaps += [f"the parent of {s.service} {s.name!r}" for s in trace.orphans()]
    runner = {s.name for s in trace.spans if s.service == "caesar-runner"}
    gaps += [f"runner span {n!r}" for n in ["attempt", "stage input", *steps] if n not in runner]
    return gaps


async def wait_complete(
    http: aiohttp.ClientSession, jaeger: Jaeger, job_id: str, steps: list[str], timeout_s: float = 60.0
) -> TraceView:
    """Poll Jaeger until the job's trace is complete: the services export in batches."""
    deadline = time.monotonic() + timeout_s
    trace = None
    while time.monotonic() < deadline:
        trace = await find_trace(http, jaeger, job_id)
        if not missing(trace, steps):
            assert trace is not None
            return trace
        await asyncio.sleep(0.5)
    raise AssertionError(f"job {job_id}'s trace still lacks {missing(trace, steps)} after {timeout_s} s")


def listening_ports(pid: int) -> set[tuple[str, int]]:
    """``(address, port)`` of every TCP socket ``pid`` listens on (from /proc, no tools)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            address, port = fields[1].split(":")
            if width == 8:
                host = ".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0))
            else:
                host = "ipv6:" + address
            found.add((host, int(port, 16)))
    return found


# -- the checks ----------------------------------------------------------------------------


def job_steps(blob: bytes) -> list[str]:
    """The step span names of a job, from the manifest in its output tarball."""
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        name = next(n for n in tar.getnames() if n.endswith("manifest.json"))
        member = tar.extractfile(name)
        assert member is not None
        manifest = json.load(member)
    return [f"step {s['name']}" for s in manifest["steps"]]


async def run_job(
    http: aiohttp.ClientSession, stack: Stack, image: Path, payload: dict[str, Any]
) -> tuple[str, dict[str, Any], list[str]]:
    """Upload ``image``, run a job on it to SUCCESS; its id, final status and step spans."""
    job_id = await submit(http, stack, {**payload, "data_inputs": await upload(http, stack, image)})
    final = await wait_state(http, stack, job_id, timeout_s=180)
    assert final["state"] == "SUCCESS", final
    async with http.get(f"{stack.v1}/job/{job_id}/output") as resp:
        assert resp.status == 200
        return job_id, final, job_steps(await resp.read())


def check_outbox_hops(trace: TraceView, pool: str) -> SpanView:
    """The parenting through every outbox and queue of the job; returns the attempt span."""
    spans = trace.by_id
    # One root: the api's POST of the job; everything else hangs below it.
    roots = [s for s in trace.spans if s.parent_id is None]
    assert [(r.service, r.kind, r.name) for r in roots] == [
        ("caesar-api", "server", "POST /caesar/api/v1.0/job")
    ], trace.tree()

    # The relay publishes later, from a task of its own, yet its `publish` span is a child
    # of the span that wrote the event, in the writer's service...
    publishes = [s for s in trace.spans if s.name.startswith("publish ")]
    assert publishes, trace.tree()
    writers = {}
    for publish in publishes:
        assert publish.parent_id is not None
        writer = spans[publish.parent_id]
        assert writer.service == publish.service, (publish, writer)
        assert not writer.name.startswith("publish "), writer
        writers[writer.span_id] = writer
    # ... a consumer handling the event one by one (the runner's commands) continues from
    # that same span, from the envelope's context...
    consumes = [
        s for s in trace.spans if s.name.startswith("consume ") and not s.name.startswith("consume batch ")
    ]
    assert consumes, trace.tree()
    for consume in consumes:
        assert consume.parent_id in writers, (consume, spans.get(consume.parent_id or ""))
        assert spans[consume.parent_id].service != consume.service
    # ... and so does a batch, from its first message's envelope (the others are linked).
    batches = [s for s in trace.spans if s.name.startswith("consume batch ")]
    assert {b.service for b in batches} >= SERVICES - {"caesar-runner"}, trace.tree()
    for batch in batches:
        assert batch.parent_id in writers, (batch, spans.get(batch.parent_id or ""))
        assert spans[batch.parent_id].service != batch.service

    # The hops of the job, one by one: request -> scheduler's dispatch -> runner.
    (post,) = roots
    (submitted,) = trace.named("publish job.submitted", "caesar-api")
    assert submitted.parent_id == post.span_id
    (dispatch,) = trace.named("dispatch", "caesar-scheduler")
    (command,) = trace.named(f"publish runner.{pool}", "caesar-scheduler")
    assert command.parent_id == dispatch.span_id
    (run_command,) = trace.named(f"consume runner.{pool}", "caesar-runner")
    assert run_command.parent_id == dispatch.span_id
    (attempt,) = trace.named("attempt", "caesar-runner")
    assert attempt.parent_id == run_command.span_id
    # The runner's state events were written in the attempt: their relay hangs below it.
    assert attempt.span_id in writers
    return attempt


def check_attempt(
    trace: TraceView, attempt: SpanView, job_id: str, step_names: list[str], executor: str
) -> list[SpanView]:
    """The attempt span, its staging and one span per step below it; returns the steps."""
    assert attempt.tags["caesar.job_id"] == job_id
    assert attempt.tags["caesar.attempt"] == 1
    assert attempt.tags["caesar.executor"] == executor
    assert attempt.tags["caesar.state"] == "SUCCESS"
    assert attempt.tags["caesar.exit_code"] == 0
    below = trace.children(attempt)
    assert [s.name for s in below if s.name == "stage input"] == ["stage input"]
    steps = sorted(
        (s for s in below if s.name.startswith("step ")), key=lambda s: s.tags["caesar.step.index"]
    )
    assert [s.name for s in steps] == step_names
    for index, step in enumerate(steps):
        assert step.tags["caesar.step.name"] == step.name.removeprefix("step ")
        assert step.tags["caesar.step.index"] == index
        assert step.tags["caesar.step.exit_code"] == 0
        assert step.tags["caesar.job_id"] == job_id
        assert step.tags["caesar.attempt"] == 1
        assert step.tags["caesar.executor"] == executor
    return steps


# -- the tests ------------------------------------------------------------------------------


def test_jaeger_listens_on_loopback_only(jaeger: Jaeger) -> None:
    assert listening_ports(jaeger.pid) == {("127.0.0.1", port) for port in jaeger.ports}


async def test_a_local_jobs_trace_spans_the_five_services_the_outbox_and_the_apps_steps(
    http: aiohttp.ClientSession, jaeger: Jaeger, traced_stack: Stack, tmp_path: Path
) -> None:
    image = tmp_path / "small.fits"
    write_simulation(SimulationSpec(size=128, seed=7), image)
    payload = {"app": "aegean", "job_inputs": {"bkgbox": 40, "bkggrid": 10}}
    job_id, final, step_names = await run_job(http, traced_stack, image, payload)
    assert final["pool"] == "local"
    assert step_names == ["step bane", "step aegean"]

    trace = await wait_complete(http, jaeger, job_id, step_names)
    attempt = check_outbox_hops(trace, "local")
    steps = check_attempt(trace, attempt, job_id, step_names, "local")
    # Observed process by process: each step its own time, one after the other.
    assert all("caesar.step.observed" not in s.tags for s in steps)
    assert all(isinstance(s.tags["process.pid"], int) for s in steps)


async def test_a_slurm_jobs_steps_are_the_batch_job_as_the_runner_saw_it(
    http: aiohttp.ClientSession, jaeger: Jaeger, slurm_runner: Stack, tmp_path: Path
) -> None:
    image = tmp_path / "big.fits"
    write_simulation(SimulationSpec(size=512, seed=8), image)
    assert image.stat().st_size >= SLURM_MIN_IMAGE_BYTES
    job_id, final, step_names = await run_job(
        http, slurm_runner, image, {"app": "trivial", "job_inputs": {"seconds": 1}}
    )
    assert final["pool"] == "slurm"
    assert step_names == ["step sleep"]

    trace = await wait_complete(http, jaeger, job_id, step_names)
    attempt = check_outbox_hops(trace, "slurm")
    (step,) = check_attempt(trace, attempt, job_id, step_names, "slurm")
    assert step.tags["caesar.step.observed"] == "batch job"
