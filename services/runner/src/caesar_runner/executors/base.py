"""The executor interface every backend implements.

A job is a list of steps (argv lists) run in order in the job directory. The runner
does the claiming, reporting and bookkeeping; an executor only runs, waits, enforces the
wall time and stops on cancel. The same interface fits a Slurm batch job (one script
with the steps) or a Kubernetes Job (one container per step or a wrapper command).

Like Funnel's compute backends, executors are interchangeable: the runner asks an
executor what it can do (:attr:`Executor.reattaches`) instead of testing its name, so
adding a backend never touches the runner or the scheduler.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from caesar_common.apps.base import Step
from caesar_common.jobstate import JobState


class StepObserver:
    """Told when each step of an attempt starts and ends; the default observes nothing.

    The runner's step spans come from here (:mod:`caesar_runner.tracing`). An executor
    that runs the steps itself, one after the other (local), reports each one; one that
    hands them all to a batch system at once (Slurm) sees no step and reports none.
    Implementations must not raise: the executor calls them between its own steps.
    """

    def step_started(self, index: int, pid: int | None = None) -> None:
        """Step ``index`` of :attr:`JobSpec.steps` has started (as process ``pid``)."""

    def step_ended(self, index: int, exit_code: int | None) -> None:
        """Step ``index`` has ended with ``exit_code`` (negative: killed by that signal)."""


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    owner: str
    attempt: int
    app: str
    steps: Sequence[Step]
    job_dir: Path
    wall_time_s: int
    cores: int
    memory_mb: int
    before_step: Callable[[], bool] | None = None
    """Asked before each step starts; ``False`` stops the attempt as canceled (fenced:
    a later attempt of the job has started). Executors that submit every step at once
    (Slurm) rely on the cancel event instead."""
    staged_input: Path | None = None
    """The input's link in ``job_dir``. An executor that runs the job as a user of its
    own (a root runner's job users) makes it readable to that user for the attempt."""
    steps_observer: StepObserver = field(default_factory=StepObserver)
    """Told when each step starts and ends, by executors that run the steps themselves."""


@dataclass(frozen=True)
class ExecutionResult:
    state: JobState
    exit_code: int | None
    elapsed_s: float
    cpu_s: float
    peak_rss_bytes: int
    reason: str = ""
    # A system failure (e.g. Slurm NODE_FAIL): reported as a provisional FAILURE that the
    # scheduler retries as a new attempt, unlike an app's own non-zero exit.
    retryable: bool = False


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, as a batch system (Slurm, Kubernetes) tells it; the executor
    adds the timings and usage it measured to make the :class:`ExecutionResult`."""

    state: JobState
    exit_code: int | None
    reason: str
    retryable: bool = False


StartedCallback = Callable[[int | None], Awaitable[None]]


class Executor(Protocol):
    """What every backend offers the runner."""

    @property
    def kind(self) -> str:
        """The executor kind (``local``, ``slurm``...): what an app's ``executors`` list names."""
        ...

    @property
    def pool(self) -> str:
        """The pool this executor serves (its command queue is ``runner.<pool>``); default: the kind."""
        ...

    @property
    def reattaches(self) -> bool:
        """Whether a job outlives the runner process that started it.

        True (Slurm): a restarted runner with the same id resumes its claimed attempts and
        reports their outcome. False (local): the job's processes die with the runner, so
        its claimed attempts are reported as retryable failures at restart.
        """
        ...

    async def run(self, spec: JobSpec, on_started: StartedCallback, cancel: asyncio.Event) -> ExecutionResult:
        """Run every step; call ``on_started(pid)`` once the first process runs."""
        ...

    async def aclose(self) -> None:
        """Release what the executor holds (threads, HTTP sessions); jobs are left as they are."""
        ...
