"""Runs job steps as local processes, each in its own process group."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from caesar_common.apps.base import Step
from caesar_common.jobstate import JobState
from caesar_runner.domain.process import (
    JOB_DIR_MODE,
    JOB_TMP_MODE,
    Limits,
    address_space_bytes,
    exit_code_of,
    limited_argv,
    outcome_of,
    sanitised_environment,
)
from caesar_runner.executors.base import ExecutionResult, JobSpec, StartedCallback
from caesar_runner.executors.guardian import Guardian


def _wait(pid: int) -> tuple[int, resource.struct_rusage | None]:
    """Block until ``pid`` exits and return its wait status and resource usage.

    ``wait4`` (rather than ``Popen.wait``) gives the child's own CPU time and peak RSS,
    which ``getrusage(RUSAGE_CHILDREN)`` cannot attribute when jobs run concurrently.
    """
    while True:
        try:
            _, status, usage = os.wait4(pid, 0)
            return status, usage
        except InterruptedError:
            continue
        except ChildProcessError:
            return 0, None


class LocalExecutor:
    """The ``local`` executor: argv lists, sanitised env, limits, wall time, kill on cancel."""

    kind = "local"
    reattaches = False  # job processes die with the runner (--pdeathsig KILL)

    def __init__(
        self,
        bin_dir: Path,
        *,
        slots: int,
        kill_grace_s: float = 10.0,
        max_open_files: int = 4096,
        max_file_size_bytes: int = 64 * 2**30,
        pool: str = "",
        fence_s: float | None = None,
    ) -> None:
        self.pool = pool or self.kind
        # A frozen runner cannot stop its jobs: the guardian does, after ``fence_s``.
        self._guardian = Guardian(fence_s) if fence_s is not None else None
        self._bin_dir = bin_dir
        self._kill_grace_s = kill_grace_s
        self._max_open_files = max_open_files
        self._max_file_size = max_file_size_bytes
        # One blocking wait4 per running process: a dedicated pool, so waits never
        # starve the default executor used for hashing and FITS reading.
        self._waiters = ThreadPoolExecutor(max_workers=slots + 2, thread_name_prefix="wait4")

    def _spawn(self, step: Step, spec: JobSpec, index: int) -> subprocess.Popen[bytes]:
        limits = Limits(
            cpu_seconds=max(60, spec.wall_time_s * max(1, spec.cores) + 60),
            open_files=self._max_open_files,
            file_size_bytes=self._max_file_size,
            address_space_bytes=address_space_bytes(spec.memory_mb),
        )
        env = sanitised_environment(self._bin_dir, spec.job_dir, step.env)
        # Explicit modes (mkdir's mode is filtered by the umask): no other user of the
        # host may read a job's data, which can be proprietary.
        os.chmod(spec.job_dir, JOB_DIR_MODE)
        (spec.job_dir / "tmp").mkdir(exist_ok=True)
        os.chmod(spec.job_dir / "tmp", JOB_TMP_MODE)
        prefix = f"{index:02d}-{step.name}"
        stdout: IO[bytes]
        with (
            open(spec.job_dir / f"{prefix}.stdout.log", "wb") as stdout,
            open(spec.job_dir / f"{prefix}.stderr.log", "wb") as stderr,
        ):
            return subprocess.Popen(
                limited_argv(step.argv, limits),
                cwd=spec.job_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                close_fds=True,
            )

    async def _stop_group(self, pid: int, waiter: asyncio.Future[Any]) -> None:
        with suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout=self._kill_grace_s)
        except TimeoutError:
            with suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    async def run(self, spec: JobSpec, on_started: StartedCallback, cancel: asyncio.Event) -> ExecutionResult:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        deadline = started + spec.wall_time_s
        cpu_s = 0.0
        peak_rss = 0

        def result(state: JobState, exit_code: int | None, reason: str = "") -> ExecutionResult:
            return ExecutionResult(state, exit_code, time.monotonic() - started, cpu_s, peak_rss, reason)

        for index, step in enumerate(spec.steps):
            if spec.before_step is not None and not spec.before_step():
                cancel.set()
            if cancel.is_set():
                return result(JobState.CANCELED, None, "canceled by the user")
            if self._guardian is not None:
                self._guardian.ensure_running()
            try:
                process = self._spawn(step, spec, index)
            except OSError as exc:
                return result(JobState.FAILURE, None, f"step {step.name} could not start: {exc}")
            if self._guardian is not None:
                self._guardian.register(process.pid)
            if index == 0:
                await on_started(process.pid)
            waiter: asyncio.Future[Any] = loop.run_in_executor(self._waiters, _wait, process.pid)
            canceled: asyncio.Future[Any] = asyncio.ensure_future(cancel.wait())
            done, _ = await asyncio.wait(
                {waiter, canceled},
                timeout=max(0.0, deadline - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            verdict: JobState | None = None
            if waiter not in done:
                verdict = JobState.CANCELED if cancel.is_set() else JobState.TIMED_OUT
                await self._stop_group(process.pid, waiter)
            canceled.cancel()
            status, usage = await waiter
            process.returncode = exit_code_of(status)  # reaped by wait4; keep Popen quiet
            if usage is not None:
                cpu_s += usage.ru_utime + usage.ru_stime
                peak_rss = max(peak_rss, usage.ru_maxrss * 1024)
            code = exit_code_of(status)
            if self._guardian is not None and self._guardian.release(process.pid):
                fence = self._guardian.fence_s
                stalled = f"the runner stalled for more than {fence:g} s; the guardian killed the job"
                return replace(result(JobState.FAILURE, code, stalled), retryable=True)
            if verdict is JobState.CANCELED:
                return result(verdict, code, "canceled by the user")
            if verdict is JobState.TIMED_OUT:
                return result(verdict, code, f"wall time of {spec.wall_time_s} s exceeded")
            if outcome_of(code) is not JobState.SUCCESS:
                return result(JobState.FAILURE, code, f"step {step.name} exited with code {code}")
        return result(JobState.SUCCESS, 0)

    def close(self) -> None:
        """Stop the wait threads and the guardian (running jobs are not touched)."""
        self._waiters.shutdown(wait=False, cancel_futures=True)
        if self._guardian is not None:
            self._guardian.close()

    async def aclose(self) -> None:
        self.close()
