"""The spans of one attempt: the attempt itself, the staging of its input, each app step.

Why: the bus gives the runner one span per ``RunJob`` it consumes, and that span ends as
soon as the attempt is claimed. What the attempt did next (seconds to hours of a source
finder) showed in the job's trace only as the state events it published, so a slow job
could not be told from a slow runner. Here the attempt gets a span of its own, a child of
that consume span (so it sits in the job's trace, under the scheduler's dispatch), and
the staging of its input and each step (``bane``, ``aegean``, ``finalize``) are its
children, with their exit codes. The state events the attempt writes to its outbox carry
the attempt span's context, so what the other services do with them hangs below it.

Local steps are observed as they run: the executor reports each one
(:class:`~caesar_runner.executors.base.StepObserver`). A Slurm batch job runs all its
steps remotely in one script, where the runner sees only the batch job; each step's span
then covers the batch job as the runner observed it (from when it saw the job running to
its end) and says so with ``caesar.step.observed = "batch job"``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import Span, Status, StatusCode

from caesar_common.apps.base import Step
from caesar_common.events import RunJob
from caesar_common.jobstate import JobState
from caesar_runner.executors.base import ExecutionResult, StepObserver

_tracer = trace.get_tracer(__name__)

ATTEMPT_SPAN = "attempt"
STAGE_SPAN = "stage input"
BATCH_OBSERVED = "batch job"
"""``caesar.step.observed`` of steps the runner saw only as one batch job (Slurm)."""

# An attempt ending in one of these is an error in the trace; a cancel is what the user asked.
_FAILED = frozenset({JobState.FAILURE, JobState.TIMED_OUT})


def step_span_name(step: Step) -> str:
    return f"step {step.name}"


def _attempt_attributes(msg: RunJob, executor: str) -> dict[str, Any]:
    return {
        "caesar.job_id": msg.job_id,
        "caesar.attempt": msg.attempt,
        "caesar.app": msg.app,
        "caesar.executor": executor,
    }


@contextmanager
def attempt_span(
    msg: RunJob, *, executor: str, pool: str, runner_id: str, parent: context.Context | None = None
) -> Iterator[Span]:
    """The attempt's span, current while the attempt runs and reports its outcome.

    ``parent``: the context to continue (a resumed attempt's, from its claim); by default
    the current one, the consume span of the ``RunJob`` that started the attempt.
    """
    attributes = {**_attempt_attributes(msg, executor), "caesar.pool": pool, "caesar.runner_id": runner_id}
    with _tracer.start_as_current_span(ATTEMPT_SPAN, context=parent, attributes=attributes) as span:
        yield span


def record_outcome(span: Span, result: ExecutionResult) -> None:
    """The attempt's state and exit code on its span; a failure or time-out is an error."""
    span.set_attribute("caesar.state", result.state.value)
    if result.exit_code is not None:
        span.set_attribute("caesar.exit_code", result.exit_code)
    if result.state in _FAILED:
        span.set_status(Status(StatusCode.ERROR, result.reason or result.state.value))


@contextmanager
def stage_span(msg: RunJob, executor: str) -> Iterator[Span]:
    """Span of preparing the attempt's directory and linking its input into it."""
    with _tracer.start_as_current_span(STAGE_SPAN, attributes=_attempt_attributes(msg, executor)) as span:
        yield span


def _end_step(span: Span, exit_code: int | None, reason: str = "", end_time: int | None = None) -> None:
    if exit_code is not None:
        span.set_attribute("caesar.step.exit_code", exit_code)
    if exit_code != 0:
        if not reason:
            reason = f"killed by signal {-exit_code}" if exit_code is not None and exit_code < 0 else ""
        span.set_status(Status(StatusCode.ERROR, reason or f"exited with code {exit_code}"))
    span.end(end_time=end_time)


class StepSpans(StepObserver):
    """One span per step, children of the span current when this is made (the attempt's).

    The executor reports the steps it runs; :meth:`running` and :meth:`close` come from
    the runner, which always sees when the job started running and how it ended.
    """

    def __init__(
        self,
        msg: RunJob,
        executor: str,
        steps: Sequence[Step],
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._msg = msg
        self._executor = executor
        self._steps = list(steps)
        self._clock_ns = clock_ns
        self._parent = context.get_current()
        self._open: dict[int, Span] = {}
        self._reported = False
        self._running_since_ns: int | None = None
        self._closed = False

    def _attributes(self, index: int) -> dict[str, Any]:
        return {
            **_attempt_attributes(self._msg, self._executor),
            "caesar.step.index": index,
            "caesar.step.name": self._steps[index].name,
        }

    def step_started(self, index: int, pid: int | None = None) -> None:
        if self._closed or index in self._open or not 0 <= index < len(self._steps):
            return
        self._reported = True
        attributes = self._attributes(index)
        if pid is not None:
            attributes["process.pid"] = pid
        self._open[index] = _tracer.start_span(
            step_span_name(self._steps[index]), context=self._parent, attributes=attributes
        )

    def step_ended(self, index: int, exit_code: int | None) -> None:
        span = self._open.pop(index, None)
        if span is not None:
            _end_step(span, exit_code)

    def running(self) -> None:
        """The job runs: its first process started, or its batch job was seen running."""
        if self._running_since_ns is None:
            self._running_since_ns = self._clock_ns()

    def close(self, result: ExecutionResult | None) -> None:
        """End what is still open once the executor is done (``None``: it raised).

        A step still open was left by an executor that stopped without its exit code: it
        ends with the attempt's. If the job ran but no step was reported (Slurm), each
        step gets a span covering the batch job as the runner observed it.
        """
        if self._closed:
            return
        self._closed = True
        reason = "the executor failed" if result is None else result.reason
        for span in self._open.values():
            _end_step(span, None if result is None else result.exit_code, reason)
        self._open.clear()
        if not self._reported and self._running_since_ns is not None and result is not None:
            self._observed_as_batch(result, self._running_since_ns)

    def _observed_as_batch(self, result: ExecutionResult, start_ns: int) -> None:
        """Steps seen only as one batch job: each span covers it; exit codes when known.

        Every step of a successful batch exited 0; of a failed one, the runner cannot
        tell which step failed, so the steps carry no exit code (the attempt span has it).
        """
        end_ns = self._clock_ns()
        for index, step in enumerate(self._steps):
            span = _tracer.start_span(
                step_span_name(step),
                context=self._parent,
                start_time=start_ns,
                attributes={**self._attributes(index), "caesar.step.observed": BATCH_OBSERVED},
            )
            if result.state is JobState.SUCCESS:
                _end_step(span, 0, end_time=end_ns)
            else:
                if result.state in _FAILED:
                    span.set_status(Status(StatusCode.ERROR, result.reason or result.state.value))
                span.end(end_time=end_ns)
