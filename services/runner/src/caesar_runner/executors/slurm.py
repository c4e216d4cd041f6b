"""Runs a job's steps as one Slurm batch job, through slurmrestd.

Why it looks the way it does:

* The batch script is generated from the app's argv steps, every value quoted with
  :func:`shlex.quote`, so nothing a client sent can become shell syntax. Each step runs
  with the same sanitised environment as the local executor (``env -i``), stdout and
  stderr in the job directory, and the script stops at the first failing step.
* The script writes its own outcome (exit code, failing step, end time, CPU seconds) to
  ``slurm-exit.json`` in the job directory. slurmctld forgets finished jobs after
  ``MinJobAge``; a runner that was down longer still learns the true outcome.
* The Slurm job's name and comment identify the job and attempt, so a restarted runner
  finds a job it submitted before (reconciliation) instead of submitting it twice, and a
  new attempt can cancel the leftovers of an older one.
* One poller lists the cluster's jobs for every job this runner watches (one request per
  period, not one per job) and backs off while slurmrestd is unreachable; a short
  slurmrestd outage only delays the news.
* Cancelling the runner's task (runner shutdown) leaves the Slurm job running: the next
  runner process picks it up. Only a user's cancel DELETEs it.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import shlex
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import Counter

from caesar_common.jobstate import JobState
from caesar_common.logging import get_logger
from caesar_runner.adapters.slurmrestd import (
    SlurmAuthError,
    SlurmJob,
    SlurmRestClient,
    SlurmRestError,
    SlurmUnavailable,
    SubmitRequest,
)
from caesar_runner.domain.process import sanitised_environment
from caesar_runner.executors.base import ExecutionResult, JobSpec, Outcome, StartedCallback

log = get_logger(__name__)

SLURM_AUTH_FAILURES = Counter(
    "caesar_slurm_auth_failures_total",
    "Submissions slurmrestd refused for the runner's credentials (expired or wrong token)",
)

EXIT_RECORD = "slurm-exit.json"
SCRIPT_FILE = "slurm-job.sh"
STDOUT_FILE = "slurm-job.out"
STDERR_FILE = "slurm-job.err"
COMMENT_PREFIX = "caesar-rest"

# Slurm states (22.05 names) by what they mean for us.
ACTIVE_STATES = frozenset({"RUNNING", "COMPLETING", "SUSPENDED", "SIGNALING", "STAGE_OUT", "RESIZING"})
WAITING_STATES = frozenset(
    {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD"}
)
SYSTEM_FAILURES = frozenset({"NODE_FAIL", "BOOT_FAIL", "PREEMPTED", "REVOKED", "SPECIAL_EXIT"})
TERMINAL_STATES = frozenset(
    {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "DEADLINE", "OUT_OF_MEMORY"} | SYSTEM_FAILURES
)


# -- pure parts ---------------------------------------------------------------------------


def job_name(job_id: str, attempt: int) -> str:
    return f"caesar-{job_id}-{attempt}"


def job_comment(job_id: str, attempt: int) -> str:
    return f"{COMMENT_PREFIX}:{job_id}:{attempt}"


_COMMENT = re.compile(rf"^{COMMENT_PREFIX}:(?P<job>[^:\s]+):(?P<attempt>[0-9]+)$")


def parse_comment(comment: str) -> tuple[str, int] | None:
    """``(job_id, attempt)`` from a comment we wrote, None for anyone else's job."""
    match = _COMMENT.match(comment.strip())
    return (match["job"], int(match["attempt"])) if match else None


def identifies(job: SlurmJob, job_id: str, attempt: int) -> bool:
    """True if ``job`` is the Slurm job of this attempt (by comment, or by name if a site
    strips comments)."""
    if job.comment:
        return parse_comment(job.comment) == (job_id, attempt)
    return job.name == job_name(job_id, attempt)


def find_attempt(jobs: Iterable[SlurmJob], job_id: str, attempt: int) -> SlurmJob | None:
    """The Slurm job of this attempt: a live one first, else the newest finished one."""
    mine = [j for j in jobs if identifies(j, job_id, attempt)]
    if not mine:
        return None
    return max(mine, key=lambda j: (j.state not in TERMINAL_STATES, j.job_id))


def stale_attempts(jobs: Iterable[SlurmJob], job_id: str, attempt: int) -> list[SlurmJob]:
    """Live Slurm jobs of older attempts of this job: a new attempt supersedes them."""
    stale = []
    for job in jobs:
        ident = parse_comment(job.comment)
        if ident and ident[0] == job_id and ident[1] < attempt and job.state not in TERMINAL_STATES:
            stale.append(job)
    return stale


def time_limit_minutes(wall_time_s: int) -> int:
    """Slurm's ``--time`` is in minutes (minimum 1): round the wall time up."""
    return max(1, math.ceil(wall_time_s / 60))


@dataclass(frozen=True)
class ExitRecord:
    """What the batch script wrote when it ended."""

    attempt: int
    exit_code: int
    step: int
    cpu_s: float
    ended_at: str


def parse_times(text: str) -> float:
    """CPU seconds of the children from bash's ``times`` line (``1m2.5s 0m0.25s``)."""
    total = 0.0
    for minutes, seconds in re.findall(r"([0-9]+)m([0-9.]+)s", text):
        total += int(minutes) * 60 + float(seconds)
    return total


def read_exit_record(job_dir: Path, attempt: int) -> ExitRecord | None:
    """The record of this attempt, or None (missing, torn or from another attempt)."""
    try:
        raw = json.loads((job_dir / EXIT_RECORD).read_text(encoding="utf-8"))
        record = ExitRecord(
            attempt=int(raw["attempt"]),
            exit_code=int(raw["exit_code"]),
            step=int(raw["step"]),
            cpu_s=parse_times(str(raw.get("children_times", ""))),
            ended_at=str(raw.get("ended_at", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if record.attempt == attempt else None


def batch_script(
    spec: JobSpec,
    environments: Sequence[Mapping[str, str]],
    *,
    partition: str = "",
    account: str = "",
) -> str:
    """The sbatch script of ``spec``: one line per step, every value shell-quoted.

    ``environments[i]`` is the complete environment of step ``i``. The ``#SBATCH``
    lines repeat what the REST request sets, so the script can also be submitted by hand
    with ``sbatch`` when debugging a job.
    """
    q = shlex.quote
    job_dir = str(spec.job_dir)
    directives = [
        f"--job-name={job_name(spec.job_id, spec.attempt)}",
        f"--comment={job_comment(spec.job_id, spec.attempt)}",
        f"--chdir={job_dir}",
        f"--output={spec.job_dir / STDOUT_FILE}",
        f"--error={spec.job_dir / STDERR_FILE}",
        f"--time={time_limit_minutes(spec.wall_time_s)}",
        f"--cpus-per-task={max(1, spec.cores)}",
        f"--mem={max(1, spec.memory_mb)}M",
        "--no-requeue",
    ]
    if partition:
        directives.append(f"--partition={partition}")
    if account:
        directives.append(f"--account={account}")
    lines = ["#!/bin/bash"]
    lines += [f"#SBATCH {q(d)}" for d in directives]
    lines += [
        f"# caesar-rest job {spec.job_id} attempt {spec.attempt}, app {spec.app}: generated, do not edit.",
        "set -u",
        f"cd -- {q(job_dir)} || exit 1",
        "mkdir -p tmp",
        "caesar_exit_record() {",
        '  local t; t="$(times | tail -n 1)"',
        f'  printf \'{{"attempt": {int(spec.attempt)}, "exit_code": %d, "step": %d, '
        '"slurm_job_id": "%s", "ended_at": "%s", "children_times": "%s"}\\n\' '
        '"$1" "$2" "${SLURM_JOB_ID:-}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$t" '
        f"> .{EXIT_RECORD}.tmp && mv -f .{EXIT_RECORD}.tmp {EXIT_RECORD}",
        "}",
        # Slurm sends SIGTERM on cancel and time-out; record it, then go.
        "trap 'caesar_exit_record 143 -1; exit 143' TERM",
    ]
    if len(environments) != len(spec.steps):
        raise ValueError("one environment per step is required")
    for index, (step, env) in enumerate(zip(spec.steps, environments, strict=True)):
        argv = list(step.argv)
        if not argv or "=" in argv[0]:
            raise ValueError(f"step {step.name}: argv[0] must be a program, not {argv[:1]!r}")
        for key in env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"step {step.name}: invalid environment variable name {key!r}")
        prefix = f"{index:02d}-{step.name}"
        assignments = " ".join(q(f"{k}={v}") for k, v in env.items())
        lines += [
            f"# step {index}: {step.name}",
            f"env -i {assignments} {' '.join(q(a) for a in argv)} "
            f"</dev/null >{q(prefix + '.stdout.log')} 2>{q(prefix + '.stderr.log')}",
            "rc=$?",
            f'if [ "$rc" -ne 0 ]; then caesar_exit_record "$rc" {index}; exit "$rc"; fi',
        ]
    lines += ["caesar_exit_record 0 -1", "exit 0", ""]
    return "\n".join(lines)


def outcome_of(job: SlurmJob, record: ExitRecord | None, spec: JobSpec) -> Outcome | None:
    """Our terminal state for a Slurm job, or None while it is not finished.

    The script's own record, when there is one, gives the exact exit code of the step
    that failed; Slurm's ``exit_code`` is the fallback (minus the signal number for a
    job killed by a signal, as the local executor reports it).
    """
    state = job.state
    if state not in TERMINAL_STATES:
        return None
    if job.signal:
        slurm_code: int | None = -job.signal
    else:
        slurm_code = job.exit_code
    if state == "COMPLETED":
        return Outcome(JobState.SUCCESS, 0, "")
    if state == "FAILED":
        code = record.exit_code if record is not None else slurm_code
        where = f"step {record.step} " if record is not None and record.step >= 0 else ""
        return Outcome(
            JobState.FAILURE, code, f"{where}exited with code {code} (Slurm job {job.job_id} FAILED)"
        )
    if state == "OUT_OF_MEMORY":
        return Outcome(
            JobState.FAILURE, slurm_code, f"out of memory: the {spec.memory_mb} MB limit was exceeded"
        )
    if state in ("TIMEOUT", "DEADLINE"):
        return Outcome(JobState.TIMED_OUT, slurm_code, f"wall time of {spec.wall_time_s} s exceeded")
    if state == "CANCELLED":
        return Outcome(JobState.CANCELED, slurm_code, f"Slurm job {job.job_id} was cancelled")
    return Outcome(
        JobState.FAILURE,
        None,
        f"Slurm job {job.job_id} ended {state} ({job.reason or 'no reason given'}): a system failure",
        retryable=True,
    )


def outcome_of_record(record: ExitRecord) -> Outcome:
    """The outcome when only the script's record is left (slurmctld forgot the job)."""
    if record.exit_code == 0:
        return Outcome(JobState.SUCCESS, 0, "")
    if record.step < 0:  # the script was terminated (cancel or time-out): we cannot tell which
        return Outcome(JobState.FAILURE, record.exit_code, "the Slurm job was terminated", retryable=True)
    return Outcome(
        JobState.FAILURE, record.exit_code, f"step {record.step} exited with code {record.exit_code}"
    )


# -- the executor -----------------------------------------------------------------------


@dataclass
class _Watch:
    slurm_id: int
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    latest: SlurmJob | None = None
    missing: int = 0
    seen: bool = False


class SlurmExecutor:
    """The ``slurm`` executor: one batch job per attempt, watched by a shared poller."""

    kind = "slurm"
    reattaches = True  # a restarted runner resumes its Slurm jobs (JobRunner.resume_claims)

    def __init__(
        self,
        client: SlurmRestClient,
        bin_dir: Path,
        *,
        partition: str = "",
        account: str = "",
        poll_interval_s: float = 2.0,
        max_poll_interval_s: float = 30.0,
        unavailable_grace_s: float = 600.0,
        forgotten_after_polls: int = 3,
        cancel_wait_s: float = 60.0,
        pool: str = "",
    ) -> None:
        self.pool = pool or self.kind
        self._client = client
        self._bin_dir = bin_dir
        self._partition = partition
        self._account = account
        self._interval = poll_interval_s
        self._max_interval = max_poll_interval_s
        self._grace = unavailable_grace_s
        self._forgotten_after = forgotten_after_polls
        self._cancel_wait = cancel_wait_s
        self._watches: dict[int, _Watch] = {}
        self._poller: asyncio.Task[None] | None = None
        self._failing_since: float | None = None
        self._last_error = ""
        self.polls = 0  # for tests and metrics: list requests made

    # -- polling ------------------------------------------------------------------------

    def _watch(self, slurm_id: int) -> _Watch:
        watch = self._watches.get(slurm_id)
        if watch is None:
            watch = self._watches[slurm_id] = _Watch(slurm_id)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll_forever(), name="slurm-poller")
        return watch

    async def _poll_forever(self) -> None:
        """List the cluster's jobs once per period for every watched job; back off on errors."""
        delay = self._interval
        while self._watches:
            try:
                jobs = {j.job_id: j for j in await self._client.jobs()}
                self.polls += 1
                self._failing_since = None
                delay = self._interval
                for watch in list(self._watches.values()):
                    job = jobs.get(watch.slurm_id)
                    if job is None:
                        watch.missing += 1
                    else:
                        watch.missing, watch.latest, watch.seen = 0, job, True
                    watch.changed.set()
            except SlurmRestError as exc:
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                    log.warning("slurmrestd poll failed; backing off", error=str(exc))
                self._last_error = str(exc)
                delay = min(delay * 2, self._max_interval)
                for watch in list(self._watches.values()):
                    watch.changed.set()  # let each job check the outage grace
            except Exception as exc:  # a poller bug must not strand jobs: log, back off, go on
                log.exception("slurm poller error", error=repr(exc))
                delay = min(delay * 2, self._max_interval)
            await asyncio.sleep(delay)

    def _outage_s(self) -> float:
        return 0.0 if self._failing_since is None else time.monotonic() - self._failing_since

    # -- one job ------------------------------------------------------------------------

    def _request(self, spec: JobSpec, script: str, env: Mapping[str, str]) -> SubmitRequest:
        return SubmitRequest(
            script=script,
            name=job_name(spec.job_id, spec.attempt),
            comment=job_comment(spec.job_id, spec.attempt),
            working_dir=str(spec.job_dir),
            stdout=str(spec.job_dir / STDOUT_FILE),
            stderr=str(spec.job_dir / STDERR_FILE),
            time_limit_min=time_limit_minutes(spec.wall_time_s),
            cpus_per_task=max(1, spec.cores),
            memory_mb=max(1, spec.memory_mb),
            environment=env,
            partition=self._partition,
            account=self._account,
        )

    async def _find_or_submit(self, spec: JobSpec, cancel: asyncio.Event) -> int | None:
        """The Slurm job id of this attempt: an existing one (restart) or a new one.

        Retries while slurmrestd is unreachable, for up to the grace period; after a
        failed submit it looks again before resubmitting, since the submit may have
        reached slurmctld even though the answer did not reach us.
        """
        env = sanitised_environment(self._bin_dir, spec.job_dir, {})
        step_envs = [sanitised_environment(self._bin_dir, spec.job_dir, s.env) for s in spec.steps]
        script = batch_script(spec, step_envs, partition=self._partition, account=self._account)
        deadline = time.monotonic() + self._grace
        delay = self._interval
        while True:
            try:
                jobs = await self._client.jobs()
                for stale in stale_attempts(jobs, spec.job_id, spec.attempt):
                    log.info(
                        "cancelling the Slurm job of an older attempt",
                        job_id=spec.job_id,
                        slurm_job=stale.job_id,
                    )
                    await self._client.cancel(stale.job_id)
                found = find_attempt(jobs, spec.job_id, spec.attempt)
                if found is not None:
                    log.info(
                        "found the Slurm job of this attempt", job_id=spec.job_id, slurm_job=found.job_id
                    )
                    return found.job_id
                if read_exit_record(spec.job_dir, spec.attempt) is not None:
                    return None  # finished and forgotten by slurmctld
                if cancel.is_set():
                    return None
                await asyncio.to_thread(self._write_script, spec, script)
                slurm_id = await self._client.submit(self._request(spec, script, env))
                log.info("submitted to Slurm", job_id=spec.job_id, attempt=spec.attempt, slurm_job=slurm_id)
                return slurm_id
            except SlurmUnavailable as exc:
                if time.monotonic() >= deadline:
                    raise
                log.warning("slurmrestd unreachable; retrying the submission", error=str(exc))
            with suppress(TimeoutError):
                await asyncio.wait_for(cancel.wait(), timeout=delay)
            delay = min(delay * 2, self._max_interval)

    @staticmethod
    def _write_script(spec: JobSpec, script: str) -> None:
        """Keep the submitted script next to the job's logs, and drop a stale exit record."""
        spec.job_dir.mkdir(parents=True, exist_ok=True)
        (spec.job_dir / SCRIPT_FILE).write_text(script, encoding="utf-8")
        record = spec.job_dir / EXIT_RECORD
        if record.exists() and read_exit_record(spec.job_dir, spec.attempt) is None:
            record.unlink()

    async def _cancel(self, slurm_id: int) -> None:
        deadline = time.monotonic() + self._grace
        delay = self._interval
        while True:
            try:
                await self._client.cancel(slurm_id)
                return
            except SlurmUnavailable:
                if time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_interval)

    @staticmethod
    def _result(
        t0: float, outcome: Outcome, job: SlurmJob | None = None, record: ExitRecord | None = None
    ) -> ExecutionResult:
        """Elapsed time from Slurm's start/end when known (queue wait is not run time)."""
        elapsed = time.monotonic() - t0
        if job is not None and job.start_time and job.end_time >= job.start_time:
            elapsed = float(job.end_time - job.start_time)
        return ExecutionResult(
            outcome.state,
            outcome.exit_code,
            elapsed,
            record.cpu_s if record is not None else 0.0,
            0,
            outcome.reason,
            retryable=outcome.retryable,
        )

    async def run(self, spec: JobSpec, on_started: StartedCallback, cancel: asyncio.Event) -> ExecutionResult:
        t0 = time.monotonic()
        try:
            slurm_id = await self._find_or_submit(spec, cancel)
        except SlurmAuthError as exc:
            # Usually an expired token: ours to fix, not the job's. Retryable (the next
            # attempt reads the token again, so a rotated file is picked up), counted so
            # an operator is alerted before the retries run out.
            SLURM_AUTH_FAILURES.inc()
            self._client.forget_token()
            reason = f"Slurm refused the runner's credentials (an expired token?): {exc}"
            return self._result(t0, Outcome(JobState.FAILURE, None, reason, True))
        except SlurmUnavailable as exc:
            return self._result(
                t0, Outcome(JobState.FAILURE, None, f"could not submit to Slurm: {exc}", True)
            )
        except SlurmRestError as exc:
            return self._result(t0, Outcome(JobState.FAILURE, None, f"Slurm rejected the job: {exc}", True))
        if slurm_id is None:
            record = await asyncio.to_thread(read_exit_record, spec.job_dir, spec.attempt)
            if record is None:
                return self._result(t0, Outcome(JobState.CANCELED, None, "canceled by the user"))
            await on_started(None)
            return self._result(t0, outcome_of_record(record), record=record)
        return await self._follow(spec, slurm_id, on_started, cancel, t0)

    async def _follow(
        self, spec: JobSpec, slurm_id: int, on_started: StartedCallback, cancel: asyncio.Event, t0: float
    ) -> ExecutionResult:
        """Wait for the poller's news of this job; cancel it if asked; map its end."""
        watch = self._watch(slurm_id)
        started = False
        cancel_sent_at: float | None = None
        try:
            while True:
                job = watch.latest
                if job is not None and not started and job.state in ACTIVE_STATES | TERMINAL_STATES:
                    started = True
                    await on_started(None)
                if job is not None and job.state in TERMINAL_STATES:
                    record = await asyncio.to_thread(read_exit_record, spec.job_dir, spec.attempt)
                    outcome = outcome_of(job, record, spec)
                    assert outcome is not None
                    if cancel_sent_at is not None and outcome.state is JobState.CANCELED:
                        outcome = Outcome(JobState.CANCELED, outcome.exit_code, "canceled by the user")
                    return self._result(t0, outcome, job, record)
                if watch.missing >= self._forgotten_after:
                    # slurmctld no longer lists it: the script's record is the truth.
                    record = await asyncio.to_thread(read_exit_record, spec.job_dir, spec.attempt)
                    if record is not None:
                        if not started:
                            await on_started(None)
                        return self._result(t0, outcome_of_record(record), None, record)
                    if cancel_sent_at is not None:
                        return self._result(t0, Outcome(JobState.CANCELED, None, "canceled by the user"))
                    reason = f"Slurm job {slurm_id} disappeared without an exit record"
                    return self._result(t0, Outcome(JobState.FAILURE, None, reason, True))
                if self._outage_s() > self._grace:
                    reason = f"slurmrestd failing for {self._outage_s():.0f} s: {self._last_error}"
                    return self._result(t0, Outcome(JobState.FAILURE, None, reason, True))
                if cancel.is_set() and cancel_sent_at is None:
                    log.info("cancelling the Slurm job", job_id=spec.job_id, slurm_job=slurm_id)
                    try:
                        await self._cancel(slurm_id)
                    except SlurmRestError as exc:
                        log.warning("Slurm cancel failed", error=str(exc))
                    cancel_sent_at = time.monotonic()
                if cancel_sent_at is not None and time.monotonic() - cancel_sent_at > self._cancel_wait:
                    reason = "canceled by the user (Slurm did not confirm)"
                    return self._result(t0, Outcome(JobState.CANCELED, None, reason))
                watch.changed.clear()
                waiters = [asyncio.ensure_future(watch.changed.wait())]
                if cancel_sent_at is None:
                    waiters.append(asyncio.ensure_future(cancel.wait()))
                try:
                    await asyncio.wait(
                        waiters, timeout=self._max_interval, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for waiter in waiters:
                        waiter.cancel()
        finally:
            self._watches.pop(slurm_id, None)

    async def aclose(self) -> None:
        """Stop the poller and close the HTTP session; the Slurm jobs keep running."""
        await self.close()

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._poller
        await self._client.close()
