"""The local executor reports each step it runs: real processes, one span per step.

Needs no broker or database; it sits beside ``test_local_executor`` because it runs real
processes. The spans go to an in-memory exporter patched into :mod:`caesar_runner.tracing`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from caesar_common.apps.base import Step
from caesar_common.events import InputFile, RunJob
from caesar_common.jobstate import JobState
from caesar_runner import tracing
from caesar_runner.executors.base import JobSpec
from caesar_runner.executors.local import LocalExecutor
from caesar_runner.tracing import StepSpans

PY = sys.executable


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    yield exporter
    provider.shutdown()


async def _noop(pid: int | None) -> None:
    return None


async def test_each_local_step_is_a_span_with_its_pid_and_exit_code(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    msg = RunJob(
        job_id="job",
        owner="anonymous",
        app="test",
        attempt=2,
        params={},
        input=InputFile(file_id="f" * 32, ext="fits"),
        wall_time_s=60,
        pool="local",
    )
    steps = [
        Step("first", (PY, "-c", "print('one')")),
        Step("fails", (PY, "-c", "import sys; sys.exit(4)")),
        Step("never", (PY, "-c", "open('ran', 'w')")),
    ]
    observer = StepSpans(msg, "local", steps)
    spec = JobSpec("job", "anonymous", 2, "test", steps, tmp_path, 60, 1, 256, steps_observer=observer)
    executor = LocalExecutor(Path(PY).parent, slots=1, kill_grace_s=1.0)
    try:
        result = await executor.run(spec, _noop, asyncio.Event())
    finally:
        executor.close()
    observer.close(result)

    assert result.state is JobState.FAILURE
    made = sorted(spans.get_finished_spans(), key=lambda s: s.start_time or 0)
    assert [s.name for s in made] == ["step first", "step fails"]  # the third never started
    first, fails = (dict(s.attributes or {}) for s in made)
    assert (first["caesar.step.exit_code"], fails["caesar.step.exit_code"]) == (0, 4)
    assert first["caesar.attempt"] == 2
    assert isinstance(first["process.pid"], int)
    assert first["process.pid"] != fails["process.pid"]
    assert made[1].status.status_code is StatusCode.ERROR
    # Each span covers its own process: the second starts after the first has ended.
    assert (made[0].end_time or 0) <= (made[1].start_time or 0)
