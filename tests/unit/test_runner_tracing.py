"""The runner's spans: one per attempt, its staging and each app step, in the job's trace.

The spans go to an in-memory exporter of a provider of this module's own (patched into
:mod:`caesar_runner.tracing`), so the global provider other tests may have set (sampling
nothing, as a service without an exporter does) cannot hide them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from caesar_common.apps.base import Step
from caesar_common.ids import new_job_id
from caesar_common.jobstate import JobState
from caesar_runner import tracing
from caesar_runner.executors.base import ExecutionResult, JobSpec, StartedCallback
from caesar_runner.service.attempts import JobRunner
from caesar_runner.tracing import BATCH_OBSERVED, StepSpans
from tests.unit.fakes.runner import FakeExecutor, success
from tests.unit.test_runner_attempts import Harness, command, harness, with_trivial

__all__ = ["harness"]  # the fixture, imported for this module's tests

STEPS = [Step("bane", ("bane",)), Step("aegean", ("aegean",)), Step("finalize", ("finalize",))]


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    yield exporter
    provider.shutdown()


@pytest.fixture
def outer(spans: InMemorySpanExporter) -> Iterator[trace.Span]:
    """A span current around the test, standing for the bus's ``consume`` span."""
    with tracing._tracer.start_as_current_span("consume runner.local") as span:
        yield span


def named(spans: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name.startswith(prefix)]


def attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def traceparent_ids(traceparent: str | None) -> tuple[int, int]:
    """``(trace id, parent span id)`` of a W3C ``traceparent``."""
    assert traceparent is not None
    _, trace_id, span_id, _ = traceparent.split("-")
    return int(trace_id, 16), int(span_id, 16)


def result(state: JobState, code: int | None, reason: str = "") -> ExecutionResult:
    return ExecutionResult(state, code, 1.0, 0.5, 0, reason)


# -- StepSpans alone ------------------------------------------------------------------------


def test_steps_reported_by_the_executor_get_a_span_each_with_their_exit_code(
    spans: InMemorySpanExporter, outer: trace.Span
) -> None:
    steps = StepSpans(command(new_job_id()), "local", STEPS)
    for index, code in enumerate((0, 0, 3)):
        steps.step_started(index, pid=100 + index)
        steps.step_ended(index, code)
    steps.close(result(JobState.FAILURE, 3, "step finalize exited with code 3"))

    made = named(spans, "step ")
    assert [s.name for s in made] == ["step bane", "step aegean", "step finalize"]
    assert {parent_id(s) for s in made} == {outer.get_span_context().span_id}
    assert [attrs(s)["caesar.step.index"] for s in made] == [0, 1, 2]
    assert [attrs(s)["caesar.step.exit_code"] for s in made] == [0, 0, 3]
    assert attrs(made[0])["process.pid"] == 100
    assert attrs(made[0])["caesar.executor"] == "local"
    assert attrs(made[0])["caesar.attempt"] == 1
    assert [s.status.status_code for s in made] == [StatusCode.UNSET, StatusCode.UNSET, StatusCode.ERROR]
    assert made[2].status.description == "exited with code 3"
    assert all("caesar.step.observed" not in attrs(s) for s in made)


def test_a_step_killed_by_a_signal_says_so(spans: InMemorySpanExporter) -> None:
    steps = StepSpans(command(new_job_id()), "local", STEPS)
    steps.step_started(0)
    steps.step_ended(0, -15)
    steps.close(result(JobState.CANCELED, -15, "canceled by the user"))
    (span,) = named(spans, "step ")
    assert attrs(span)["caesar.step.exit_code"] == -15
    assert span.status.description == "killed by signal 15"


def test_a_step_left_open_ends_with_the_attempt(spans: InMemorySpanExporter) -> None:
    steps = StepSpans(command(new_job_id()), "local", STEPS)
    steps.step_started(0)
    steps.close(None)  # the executor raised
    steps.close(result(JobState.SUCCESS, 0))  # once only
    steps.step_started(1)  # too late: ignored
    (span,) = named(spans, "step ")
    assert span.name == "step bane"
    assert "caesar.step.exit_code" not in attrs(span)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "the executor failed"


def test_reports_out_of_range_or_twice_are_ignored(spans: InMemorySpanExporter) -> None:
    steps = StepSpans(command(new_job_id()), "local", STEPS)
    steps.step_started(7)
    steps.step_ended(7, 0)
    steps.step_started(0)
    steps.step_started(0)
    steps.step_ended(0, 0)
    steps.step_ended(0, 1)
    steps.close(result(JobState.SUCCESS, 0))
    assert [attrs(s)["caesar.step.exit_code"] for s in named(spans, "step ")] == [0]


def test_a_batch_job_gives_each_step_the_span_the_runner_observed(spans: InMemorySpanExporter) -> None:
    clock = iter([5_000, 9_000])
    steps = StepSpans(command(new_job_id()), "slurm", STEPS, clock_ns=lambda: next(clock))
    steps.running()
    steps.running()  # the first sighting counts
    steps.close(result(JobState.SUCCESS, 0))
    made = named(spans, "step ")
    assert [s.name for s in made] == ["step bane", "step aegean", "step finalize"]
    assert {(s.start_time, s.end_time) for s in made} == {(5_000, 9_000)}
    assert {attrs(s)["caesar.step.observed"] for s in made} == {BATCH_OBSERVED}
    assert [attrs(s)["caesar.step.exit_code"] for s in made] == [0, 0, 0]
    assert {attrs(s)["caesar.executor"] for s in made} == {"slurm"}


def test_a_failed_batch_job_leaves_the_steps_exit_codes_unknown(spans: InMemorySpanExporter) -> None:
    steps = StepSpans(command(new_job_id()), "slurm", STEPS)
    steps.running()
    steps.close(result(JobState.FAILURE, 2, "step 1 exited with code 2"))
    made = named(spans, "step ")
    assert len(made) == 3
    assert all("caesar.step.exit_code" not in attrs(s) for s in made)
    assert {s.status.status_code for s in made} == {StatusCode.ERROR}


def test_a_job_that_never_ran_has_no_step_spans(spans: InMemorySpanExporter) -> None:
    steps = StepSpans(command(new_job_id()), "slurm", STEPS)
    steps.close(result(JobState.CANCELED, None, "canceled by the user"))
    assert named(spans, "step ") == []


# -- through the runner -------------------------------------------------------------------


class ReportingExecutor(FakeExecutor):
    """The fake executor, reporting each step the way the local executor does."""

    def __init__(self, codes: Sequence[int] = ()) -> None:
        super().__init__()
        self.codes = list(codes)

    async def run(self, spec: JobSpec, on_started: StartedCallback, cancel: asyncio.Event) -> ExecutionResult:
        for index, code in enumerate(self.codes):
            spec.steps_observer.step_started(index, 4242 + index)
            spec.steps_observer.step_ended(index, code)
        return await super().run(spec, on_started, cancel)


async def finish(h: Harness, job_id: str, outcome: ExecutionResult) -> None:
    key = f"{job_id}:1"
    await h.executor.wait_started(key)
    h.executor.finish(key, outcome)
    await h.settle(key)


def only(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = named(spans, name)
    return span


async def test_an_attempt_span_holds_staging_and_steps_and_parents_its_events(
    harness: Callable[..., Harness], spans: InMemorySpanExporter, outer: trace.Span
) -> None:
    h = harness(ReportingExecutor(codes=[0]))
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id, seconds=1))
    await finish(h, job_id, success())

    attempt = only(spans, "attempt")
    context = attempt.get_span_context()
    assert context is not None
    assert parent_id(attempt) == outer.get_span_context().span_id
    assert attrs(attempt) == {
        "caesar.job_id": job_id,
        "caesar.attempt": 1,
        "caesar.app": "trivial",
        "caesar.executor": "local",
        "caesar.pool": "local",
        "caesar.runner_id": "r1",
        "caesar.state": "SUCCESS",
        "caesar.exit_code": 0,
    }
    stage = only(spans, "stage input")
    step = only(spans, "step sleep")
    assert parent_id(stage) == parent_id(step) == context.span_id
    assert attrs(step)["caesar.step.name"] == "sleep"
    assert attrs(step)["caesar.job_id"] == job_id

    # The claim's event was written in the consume span, the later ones in the attempt's:
    # what the relay publishes and other services do with them hangs below those spans.
    carried = {e.data["state"]: e.traceparent for e in h.claims.events}
    parents = {state: traceparent_ids(value) for state, value in carried.items()}
    assert parents["STARTED"] == (context.trace_id, outer.get_span_context().span_id)
    assert parents["RUNNING"] == parents["SUCCESS"] == (context.trace_id, context.span_id)
    assert h.claims.docs[f"{job_id}:1"]["trace"]["traceparent"] == carried["STARTED"]


async def test_a_failed_attempt_is_an_error_span(
    harness: Callable[..., Harness], spans: InMemorySpanExporter, outer: trace.Span
) -> None:
    h = harness(ReportingExecutor(codes=[3]))
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id))
    await finish(h, job_id, result(JobState.FAILURE, 3, "step sleep exited with code 3"))
    attempt = only(spans, "attempt")
    assert attempt.status.status_code is StatusCode.ERROR
    assert attempt.status.description == "step sleep exited with code 3"
    assert attrs(attempt)["caesar.exit_code"] == 3
    assert attrs(only(spans, "step sleep"))["caesar.step.exit_code"] == 3


async def test_a_runner_error_still_ends_every_span(
    harness: Callable[..., Harness], spans: InMemorySpanExporter, outer: trace.Span
) -> None:
    h = harness(FakeExecutor(fail_with=RuntimeError("executor bug")))
    job_id = new_job_id()
    await h.runner.start_attempt(command(job_id))
    await h.settle(f"{job_id}:1")
    attempt = only(spans, "attempt")
    assert attrs(attempt)["caesar.state"] == "FAILURE"
    assert named(spans, "step ") == []  # it never ran
    assert only(spans, "stage input").status.status_code is StatusCode.UNSET


async def test_a_resumed_attempt_continues_the_trace_of_its_claim(
    harness: Callable[..., Harness], spans: InMemorySpanExporter, outer: trace.Span
) -> None:
    h = harness(FakeExecutor(reattaches=True))
    job_id = new_job_id()
    key = f"{job_id}:1"
    await h.runner.start_attempt(command(job_id))
    await h.executor.wait_started(key)
    executor = FakeExecutor(reattaches=True)
    reborn = JobRunner(h.runner.config, h.claims, h.kicks, h._publish, executor, find_app=with_trivial)
    with tracing._tracer.start_as_current_span("unrelated"):  # resumed from another task
        assert await reborn.resume_claims() == 1
    await executor.wait_started(key)
    executor.finish(key, success())
    await asyncio.wait_for(reborn.running[key].task or asyncio.sleep(0), 5)

    # Only the resumed attempt finished; its span continues the claim's trace.
    attempt = only(spans, "attempt")
    assert parent_id(attempt) == outer.get_span_context().span_id
    assert attempt.context is not None
    assert attempt.context.trace_id == outer.get_span_context().trace_id


def test_attempt_spans_work_without_a_parent(spans: InMemorySpanExporter, tmp_path: Path) -> None:
    msg = command(new_job_id())
    with tracing.attempt_span(msg, executor="local", pool="local", runner_id="r1") as span:
        tracing.record_outcome(span, result(JobState.TIMED_OUT, -9, "wall time of 60 s exceeded"))
    attempt = only(spans, "attempt")
    assert attempt.parent is None
    assert attempt.status.description == "wall time of 60 s exceeded"
