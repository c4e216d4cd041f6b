"""Runs job steps as local processes, each in its own process group."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import stat
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

from caesar_common.apps.base import Step
from caesar_common.jobstate import JobState
from caesar_common.layout import JOB_TMP_DIR
from caesar_runner.adapters.jobusers import JobUsers, NoFreeJobUser
from caesar_runner.domain.jobusers import JobUser
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
    """The ``local`` executor: argv lists, sanitised env, limits, wall time, kill on cancel.

    With ``job_users`` (a runner started as root) each attempt runs as a job user of its
    own: its directory is handed over before the first step and taken back, with every
    process of that uid killed, after the last (see :mod:`caesar_runner.domain.jobusers`).
    """

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
        job_users: JobUsers | None = None,
    ) -> None:
        self.pool = pool or self.kind
        # A root runner runs each attempt as a job user of its own (None: as the runner).
        self._users = job_users
        # A frozen runner cannot stop its jobs: the guardian does, after ``fence_s``.
        self._guardian = Guardian(fence_s) if fence_s is not None else None
        self._bin_dir = bin_dir
        self._kill_grace_s = kill_grace_s
        self._max_open_files = max_open_files
        self._max_file_size = max_file_size_bytes
        # One blocking wait4 per running process: a dedicated pool, so waits never
        # starve the default executor used for hashing and FITS reading.
        self._waiters = ThreadPoolExecutor(max_workers=slots + 2, thread_name_prefix="wait4")

    def _spawn(self, step: Step, spec: JobSpec, index: int, user: JobUser | None) -> subprocess.Popen[bytes]:
        limits = Limits(
            cpu_seconds=max(60, spec.wall_time_s * max(1, spec.cores) + 60),
            open_files=self._max_open_files,
            file_size_bytes=self._max_file_size,
            address_space_bytes=address_space_bytes(spec.memory_mb),
        )
        env = sanitised_environment(self._bin_dir, spec.job_dir, step.env)
        stdout = open_new_log(step_log(spec.job_dir, index, step, "stdout"))
        try:
            stderr = open_new_log(step_log(spec.job_dir, index, step, "stderr"))
            try:
                return subprocess.Popen(
                    limited_argv(step.argv, limits, user),
                    cwd=spec.job_dir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                    start_new_session=True,
                    close_fds=True,
                )
            finally:
                os.close(stderr)
        finally:
            os.close(stdout)

    async def _stop_group(self, pid: int, waiter: asyncio.Future[Any]) -> None:
        with suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout=self._kill_grace_s)
        except TimeoutError:
            with suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    async def run(self, spec: JobSpec, on_started: StartedCallback, cancel: asyncio.Event) -> ExecutionResult:
        started = time.monotonic()
        try:
            await asyncio.to_thread(prepare_job_dir, spec.job_dir)
        except OSError as exc:
            return ExecutionResult(JobState.FAILURE, None, 0.0, 0.0, 0, f"job directory not usable: {exc}")
        if self._users is None:
            return await self._run_steps(spec, on_started, cancel, None, started)
        try:
            lease = await asyncio.to_thread(self._users.acquire)
        except (NoFreeJobUser, OSError) as exc:
            elapsed, reason = time.monotonic() - started, f"no job user: {exc}"
            return ExecutionResult(JobState.FAILURE, None, elapsed, 0.0, 0, reason, retryable=True)
        try:
            try:
                await asyncio.to_thread(lease.hand_over, spec.job_dir, spec.staged_input)
            except (OSError, ValueError) as exc:  # ValueError: not under the jobs root
                elapsed = time.monotonic() - started
                reason = f"could not hand the attempt to its job user: {exc}"
                return ExecutionResult(JobState.FAILURE, None, elapsed, 0.0, 0, reason, retryable=True)
            return await self._run_steps(spec, on_started, cancel, lease.user, started)
        finally:
            # Shielded: a cancelled run still kills the job user's processes and takes
            # the directory back before the uid can be leased again.
            await asyncio.shield(asyncio.to_thread(lease.give_back))

    async def _run_steps(
        self,
        spec: JobSpec,
        on_started: StartedCallback,
        cancel: asyncio.Event,
        user: JobUser | None,
        started: float,
    ) -> ExecutionResult:
        loop = asyncio.get_running_loop()
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
                process = self._spawn(step, spec, index, user)
            except OSError as exc:
                return result(JobState.FAILURE, None, f"step {step.name} could not start: {exc}")
            if self._guardian is not None:
                self._guardian.register(process.pid)
            spec.steps_observer.step_started(index, process.pid)
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
            spec.steps_observer.step_ended(index, code)
            if self._guardian is not None and self._guardian.release(process.pid):
                fence = self._guardian.fence_s
                stalled = f"the runner stalled for more than {fence:g} s; the guardian killed the job"
                return replace(result(JobState.FAILURE, code, stalled), retryable=True)
            if verdict is JobState.CANCELED:
                return result(verdict, code, "canceled by the user")
            if verdict is JobState.TIMED_OUT:
                return result(verdict, code, f"wall time of {spec.wall_time_s} s exceeded")
            if outcome_of(code) is not JobState.SUCCESS:
                said = await asyncio.to_thread(last_error_line, step_log(spec.job_dir, index, step, "stderr"))
                why = f": {said}" if said else ""
                return result(JobState.FAILURE, code, f"step {step.name} exited with code {code}{why}")
        return result(JobState.SUCCESS, 0)

    def close(self) -> None:
        """Stop the wait threads and the guardian (running jobs are not touched)."""
        self._waiters.shutdown(wait=False, cancel_futures=True)
        if self._guardian is not None:
            self._guardian.close()

    async def aclose(self) -> None:
        self.close()


def prepare_job_dir(job_dir: Path) -> None:
    """Private modes and the scratch directory, once, before anything of the job runs.

    Explicit modes (mkdir's mode is filtered by the umask): no other user of the host
    may read a job's data, which can be proprietary. Done before the first step only:
    between steps the directory may be a job user's, and a path the job could have
    replaced by a symlink is never chmod-ed by root.
    """
    os.chmod(job_dir, JOB_DIR_MODE)
    scratch = job_dir / JOB_TMP_DIR
    scratch.mkdir(exist_ok=True)
    os.chmod(scratch, JOB_TMP_MODE, follow_symlinks=False)


def open_new_log(path: Path) -> int:
    """A new log file; never through a symlink or onto a file a job left at that name."""
    path.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(path, flags, 0o644)


def step_log(job_dir: Path, index: int, step: Step, stream: str) -> Path:
    """Where a step's ``stdout`` or ``stderr`` goes: ``01-aegean.stderr.log``."""
    return job_dir / f"{index:02d}-{step.name}.{stream}.log"


ERROR_TAIL_BYTES = 4096
ERROR_LINE_MAX = 300


def last_error_line(path: Path) -> str:
    """The last non-blank line a failed step wrote to stderr (bounded), for the job's reason.

    The log lies in a directory the job user owns, so it may have been replaced: it is
    read only if it is still a regular file with one link, never through a symlink
    (root must not read, into a reason the user sees, a file the job could not).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            return ""
        start = max(0, info.st_size - ERROR_TAIL_BYTES)
        tail = os.pread(fd, ERROR_TAIL_BYTES, start).decode("utf-8", "replace")
    except OSError:
        return ""
    finally:
        os.close(fd)
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][:ERROR_LINE_MAX] if lines else ""
