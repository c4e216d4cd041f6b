"""The runner's use cases: claim ``RunJob`` commands, run them through an executor, report.

Flow of one attempt: wait for a free slot -> claim (insert, with its first state in the
outbox) -> the command is acked -> run the steps (RUNNING once the first process starts)
-> write the manifest -> terminal state with exit code, elapsed and CPU seconds, peak RSS
and outputs. While slots are full the runner stops consuming, so the broker hands
commands to runners that have room (prefetch always equals the free slots).

What to decide is pure (:mod:`caesar_runner.domain.claim`,
:mod:`caesar_runner.domain.manifest`); this module does the looking up and the writing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry.context import Context
from prometheus_client import Gauge

from caesar_common.apps import get_app
from caesar_common.apps.base import App, PlanContext
from caesar_common.bus import Rejected
from caesar_common.events import (
    RUNNER_SOURCE,
    Envelope,
    JobStateChanged,
    OutputFile,
    RunJob,
    RunnerHeartbeat,
    RunningJobRef,
)
from caesar_common.jobstate import JobState
from caesar_common.layout import (
    MANIFEST_NAME,
    LayoutError,
    job_dir,
    owner_data_dir,
    stays_inside,
    superseding_attempt,
    upload_path,
    write_manifest,
)
from caesar_common.logging import get_logger
from caesar_common.outbox import envelope_for
from caesar_common.telemetry import context_from_carrier, current_trace_carrier
from caesar_runner.adapters.outputs import (
    describe_outputs,
    prepare_attempt_dir,
    remove_outputs,
    stage_input,
)
from caesar_runner.domain.claim import (
    HANDED_BACK,
    SELF_FENCED,
    Admission,
    AttemptFate,
    ClaimFacts,
    admission,
    attempt_key,
    claim_document,
    closes_job,
    decide_claim,
    reported_result,
    runner_error,
    superseded,
)
from caesar_runner.domain.manifest import build_manifest
from caesar_runner.executors.base import ExecutionResult, Executor, JobSpec
from caesar_runner.finalize import finalize_step, read_record
from caesar_runner.service.ports import ClaimStore, Kick, PausableConsumer, Publish
from caesar_runner.service.retries import retry_until_done
from caesar_runner.tracing import StepSpans, attempt_span, record_outcome, stage_span

log = get_logger(__name__)
SOURCE = RUNNER_SOURCE

SLOTS = Gauge("caesar_runner_process_slots", "Job slots of this runner process", ["pool", "kind"])


@dataclass
class RunningAttempt:
    message: RunJob
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    fate: AttemptFate = field(default_factory=AttemptFate)
    task: asyncio.Task[None] | None = None
    trace_parent: Context | None = None
    """The trace the attempt's span continues; None: the current one (the ``RunJob``'s)."""

    def stop(self, **fate: Any) -> None:
        """Stop the attempt's processes, recording why (the first reason wins)."""
        if self.fate == AttemptFate():
            self.fate = AttemptFate(**fate)
        self.cancel.set()

    @property
    def key(self) -> str:
        return attempt_key(self.message.job_id, self.message.attempt)


@dataclass
class RunnerConfig:
    runner_id: str
    pool: str
    slots: int
    data_root: Path
    jobs_root: Path
    bin_dir: Path
    self_fence_s: float | None = None
    """Stop local jobs after this long cut off from the broker or the database (None: never)."""
    fence_poll_interval_s: float = 2.0
    record_running_timeout_s: float = 30.0


class JobRunner:
    """One runner process: its slots, the attempts it runs and the reports it owes."""

    def __init__(
        self,
        config: RunnerConfig,
        claims: ClaimStore,
        kick: Kick,
        publish: Publish,
        executor: Executor,
        find_app: Callable[[str], App | None] = get_app,
        clock: Callable[[], float] = time.monotonic,
        kick_fence: Kick | None = None,
    ) -> None:
        self.config = config
        self._kick_fence = kick_fence or kick
        self._find_app = find_app
        self._clock = clock
        self._last_beat_sent = clock()
        self._last_database_reached = clock()
        self._claims = claims
        self._kick = kick
        self._publish = publish
        self.executor = executor
        self._free = asyncio.Semaphore(config.slots)
        self._consumer_lock = asyncio.Lock()
        self.running: dict[str, RunningAttempt] = {}
        self.subscription: PausableConsumer | None = None
        self.accepting = True
        SLOTS.labels(config.pool, "total").set(config.slots)
        SLOTS.labels(config.pool, "free").set(config.slots)

    # -- commands -----------------------------------------------------------------------

    async def start_attempt(self, msg: RunJob) -> None:
        """Claim ``msg`` and start it in the background (the command is acked after)."""
        await self._free.acquire()
        try:
            claimed = await self._claim(msg)
        except BaseException:
            self._free.release()
            raise
        if claimed is None:
            self._free.release()
            return
        self.running[claimed.key] = claimed
        claimed.task = asyncio.get_running_loop().create_task(self._run(claimed))
        await self._adjust_consumer()

    async def cancel(self, job_id: str) -> None:
        """Record the cancel (for attempts not claimed yet) and stop what runs of the job."""
        await self._claims.record_cancel(job_id)
        for job in self._attempts_of(job_id):
            job.cancel.set()

    def _attempts_of(self, job_id: str) -> list[RunningAttempt]:
        return [j for j in self.running.values() if j.message.job_id == job_id]

    async def _adjust_consumer(self) -> None:
        """Keep the prefetch equal to the free slots; stop consuming when full.

        Serialised, with the free slots counted inside the lock: attempts starting and
        ending at once must not interleave their broker calls, or a resume computed when a
        slot was free can land after the pause of a runner now full. A full runner that
        still consumes holds a command it cannot start: frozen, it would strand a retry.
        """
        async with self._consumer_lock:
            free = self.config.slots - len(self.running)
            SLOTS.labels(self.config.pool, "free").set(free)
            if self.subscription is None:
                return
            if free <= 0 or not self.accepting:
                await self.subscription.pause()
            else:
                await self.subscription.set_prefetch(free)
                await self.subscription.resume()

    # -- one attempt ----------------------------------------------------------------------

    def _event(self, msg: RunJob, state: JobState, **fields: Any) -> Envelope:
        return envelope_for(
            JobStateChanged(
                job_id=msg.job_id,
                owner=msg.owner,
                app=msg.app,
                attempt=msg.attempt,
                state=state,
                changed_at=datetime.now(UTC),
                pool=self.config.pool,
                runner_id=self.config.runner_id,
                **fields,
            ),
            SOURCE,
        )

    async def _claim(self, msg: RunJob) -> RunningAttempt | None:
        """Record the claim before the command is acked; None if nothing is to run.

        A retry first takes the job's fence: if the attempt it replaces finished after
        all and closed the job, or a later attempt holds it, nothing is claimed or
        reported (the scheduler withdraws the retry when the true outcome reaches it).
        """
        input_path = self._checked_input(msg)
        fence = await self._claims.take_fence(msg.job_id, msg.attempt)
        verdict = admission(fence, msg.attempt)
        if verdict is not Admission.ADMITTED:
            log.warning(
                "attempt not started: the fence is held by another attempt",
                job_id=msg.job_id,
                attempt=msg.attempt,
                verdict=verdict.value,
                holder=fence.holder,
            )
            return None
        facts = ClaimFacts(
            app=self._find_app(msg.app),
            executor_kind=self.executor.kind,
            input_exists=input_path.is_file(),
            canceled=await self._claims.is_canceled(msg.job_id),
        )
        decision = decide_claim(msg, facts)
        doc = claim_document(
            msg, decision, runner_id=self.config.runner_id, pool=self.config.pool, now=datetime.now(UTC)
        )
        # A runner that resumes the attempt after a restart continues the job's trace.
        doc["trace"] = current_trace_carrier()
        event = self._event(msg, decision.state, reason=decision.reason)
        if not await self._claims.claim(doc, [event]):
            log.info("attempt already claimed; not started again", job_id=msg.job_id, attempt=msg.attempt)
            return None
        self._kick(doc["_id"], [event])
        return RunningAttempt(msg) if decision.runs else None

    def _input(self, msg: RunJob) -> Path:
        return upload_path(self.config.data_root, msg.owner, msg.input.file_id, msg.input.ext)

    def _checked_input(self, msg: RunJob) -> Path:
        """The input's path, if the command's ids are well formed and stay in their roots.

        A command that fails this was not sent by our scheduler (ids are checked at the
        api) or points through a planted symlink: it names no job we can report on, so it
        is refused to the dead-letter queue with the reason, never run and never reported.
        The owner's own directory is the file's record here: an upload is only found
        where its owner's uploads are kept.
        """
        try:
            # Resolving the job's directory follows a symlink at the owner's level too.
            stays_inside(self.config.jobs_root, job_dir(self.config.jobs_root, msg.owner, msg.job_id))
            path = self._input(msg)
            if path.exists() or path.is_symlink():
                stays_inside(owner_data_dir(self.config.data_root, msg.owner), path)
        except LayoutError as exc:
            raise Rejected(f"invalid RunJob for job {msg.job_id!r}: {exc}") from None
        return path

    async def _run(self, job: RunningAttempt) -> None:
        msg = job.message
        with attempt_span(
            msg,
            executor=self.executor.kind,
            pool=self.config.pool,
            runner_id=self.config.runner_id,
            parent=job.trace_parent,
        ) as span:
            try:
                result, outputs = await self._execute(job)
            except Exception as exc:
                log.exception("job execution failed", job_id=msg.job_id)
                result, outputs = runner_error(exc), []
            result = reported_result(result, job.fate)
            record_outcome(span, result)
            try:
                await self._finish(job, result, outputs)
            finally:
                self.running.pop(job.key, None)
                self._free.release()
                with contextlib.suppress(Exception):  # the channel may be gone; the next change retries
                    await self._adjust_consumer()

    async def _finish(self, job: RunningAttempt, result: ExecutionResult, outputs: list[OutputFile]) -> None:
        """Record the outcome (retried until the database takes it: a lost write is a lost result)."""
        msg = job.message
        event, changes = self._outcome(msg, result, outputs), self._outcome_fields(result)

        carried_by_fence = False

        async def record() -> bool:
            nonlocal event, changes, carried_by_fence
            if closes_job(result) and not carried_by_fence:
                # The outcome travels with the fence (one write): see Claims.close_fence.
                fence = await self._claims.close_fence(
                    msg.job_id, msg.attempt, self.config.runner_id, [event]
                )
                if fence.holder > msg.attempt:  # a retry started first: it owns the job
                    lost = superseded(result, fence.holder)
                    event, changes = self._outcome(msg, lost, []), self._outcome_fields(lost)
                else:
                    carried_by_fence = True
                    self._kick_fence(msg.job_id, [event])
            claim_events = [] if carried_by_fence else [event]
            for expect in (JobState.RUNNING.value, JobState.STARTED.value):
                if await self._claims.update(job.key, expect, changes, claim_events):
                    return True
            return False

        if await retry_until_done(record, what="terminal state", job_id=msg.job_id) and not carried_by_fence:
            self._kick(job.key, [event])
        log.info(
            "job finished",
            job_id=msg.job_id,
            attempt=msg.attempt,
            state=event.data["state"],
            exit_code=result.exit_code,
        )

    def _outcome(self, msg: RunJob, result: ExecutionResult, outputs: list[OutputFile]) -> Envelope:
        return self._event(
            msg,
            result.state,
            reason=result.reason,
            retryable=result.retryable,
            exit_code=result.exit_code,
            elapsed_s=round(result.elapsed_s, 3),
            cpu_s=round(result.cpu_s, 3),
            peak_rss_bytes=result.peak_rss_bytes,
            outputs=outputs,
        )

    @staticmethod
    def _outcome_fields(result: ExecutionResult) -> dict[str, Any]:
        return {
            "state": result.state.value,
            "exit_code": result.exit_code,
            "finished_at": datetime.now(UTC),
            "reason": result.reason,
        }

    def _fenced(self, job: RunningAttempt) -> bool:
        """Whether a later attempt of the job has started; if so, stop this one for good."""
        msg = job.message
        later = superseding_attempt(self.config.jobs_root, msg.owner, msg.job_id, msg.attempt)
        if later is None:
            return False
        if job.fate.superseded_by is None:
            log.warning("attempt superseded; stopping it", job_id=msg.job_id, attempt=msg.attempt, by=later)
        job.fate = AttemptFate(superseded_by=later)
        job.cancel.set()
        return True

    async def _watch_fence(self, job: RunningAttempt) -> None:
        while not job.cancel.is_set():
            await asyncio.sleep(self.config.fence_poll_interval_s)
            if await asyncio.to_thread(self._fenced, job):
                return

    async def _execute(self, job: RunningAttempt) -> tuple[ExecutionResult, list[OutputFile]]:
        msg = job.message
        app = self._find_app(msg.app)
        assert app is not None  # checked when the attempt was claimed
        params = app.validate(msg.params)
        if await asyncio.to_thread(self._fenced, job):
            return ExecutionResult(JobState.CANCELED, None, 0.0, 0.0, 0), []
        with stage_span(msg, self.executor.kind):
            directory = await asyncio.to_thread(
                prepare_attempt_dir, self.config.jobs_root, msg.owner, msg.job_id, msg.attempt
            )
            staged = await asyncio.to_thread(stage_input, self._input(msg), directory)
        ctx = PlanContext(staged, directory, self.config.bin_dir)
        steps = app.plan(params, ctx)
        # Harmonised catalogues + preview, as a job step (runs wherever the job runs).
        final = finalize_step(msg.app, ctx)
        if final is not None:
            steps = [*steps, final]
        step_spans = StepSpans(msg, self.executor.kind, steps)
        spec = JobSpec(
            job_id=msg.job_id,
            owner=msg.owner,
            attempt=msg.attempt,
            app=msg.app,
            steps=steps,
            job_dir=directory,
            wall_time_s=msg.wall_time_s,
            cores=msg.cores,
            memory_mb=msg.memory_mb,
            before_step=lambda: not self._fenced(job),
            staged_input=staged,
            steps_observer=step_spans,
        )

        async def on_started(pid: int | None) -> None:
            step_spans.running()
            event = self._event(msg, JobState.RUNNING, pid=pid)
            changes = {"state": JobState.RUNNING.value, "pid": pid, "started_at": datetime.now(UTC)}

            async def record() -> bool:
                return await self._claims.update(job.key, JobState.STARTED.value, changes, [event])

            try:
                if await retry_until_done(
                    record,
                    what="RUNNING",
                    job_id=msg.job_id,
                    give_up_after_s=self.config.record_running_timeout_s,
                ):
                    self._kick(job.key, [event])
            except TimeoutError:
                # A job nobody can see running must not run: kill it, report it retryable.
                job.stop(unrecorded="RUNNING could not be recorded; the job's processes were killed")

        fence = asyncio.get_running_loop().create_task(self._watch_fence(job))
        started_at = datetime.now(UTC)
        result: ExecutionResult | None = None
        try:
            result = await self.executor.run(spec, on_started, job.cancel)
        finally:
            fence.cancel()
            step_spans.close(result)
        finished_at = datetime.now(UTC)
        self.check_self_fence()  # a runner frozen until now must not report a success
        if job.fate.abandoned:
            return result, []
        if job.fate.superseded_by is not None or await asyncio.to_thread(self._fenced, job):
            return result, []  # never publish over the attempt that owns the job now
        await asyncio.to_thread(remove_outputs, directory, app.discardable_outputs(params))
        outputs = await asyncio.to_thread(describe_outputs, directory, {staged.name, MANIFEST_NAME})
        manifest = build_manifest(
            msg,
            app_version=app.version,
            parameters=params.effective,
            runner_id=self.config.runner_id,
            started_at=started_at,
            finished_at=finished_at,
            result=reported_result(result, job.fate),
            steps=steps,
            outputs=outputs,
            catalog=await asyncio.to_thread(read_record, directory),
        )
        await asyncio.to_thread(write_manifest, directory, manifest)
        return result, outputs

    # -- after a restart ------------------------------------------------------------------

    async def resume_claims(self) -> int:
        """Take up the attempts a previous life of this runner id left open.

        An executor that reattaches (a Slurm job outlives the runner that submitted it):
        the restarted runner finds its claims, re-runs the executor (which finds the job
        by its comment instead of submitting again) and reports the outcome once: the
        terminal update is guarded by the claim's state. Otherwise the attempt's
        processes died with the runner, so it is reported as a retryable failure now
        rather than when the monitor notices.
        """
        if not self.executor.reattaches:
            return await self._report_orphaned_claims()
        resumed = 0
        for doc in await self._claims.open_claims(self.config.runner_id, self.config.pool):
            msg = RunJob.model_validate(doc["command"])
            job = RunningAttempt(msg, trace_parent=context_from_carrier(doc.get("trace") or {}))
            if job.key in self.running:
                continue
            # A superseded attempt is resumed only to be stopped (its batch job cancelled)
            # and reported as such, never to run on.
            await asyncio.to_thread(self._fenced, job)
            await self._free.acquire()
            self.running[job.key] = job
            job.task = asyncio.get_running_loop().create_task(self._run(job))
            resumed += 1
            log.info("resumed a claimed attempt", job_id=msg.job_id, attempt=msg.attempt)
        await self._adjust_consumer()
        return resumed

    async def _report_orphaned_claims(self) -> int:
        closed = 0
        for doc in await self._claims.open_claims(self.config.runner_id):
            msg = RunJob.model_validate(doc["command"])
            reason = "runner restarted; the attempt's processes died with it"
            event = self._event(msg, JobState.FAILURE, reason=reason, retryable=True)
            changes = {"state": JobState.FAILURE.value, "reason": reason, "finished_at": datetime.now(UTC)}
            if await self._claims.update(doc["_id"], doc["state"], changes, [event]):
                self._kick(doc["_id"], [event])
                closed += 1
                log.warning("orphaned attempt reported for retry", job_id=msg.job_id, attempt=msg.attempt)
        return closed

    # -- periodic -------------------------------------------------------------------------

    async def send_heartbeat(self) -> None:
        """Tell the fleet we live, which attempts we hold, and how many slots are free.

        Listed are the attempts running here and those whose outcome is written but not
        yet published (their claim's outbox is pending): the monitor fails an attempt a
        live runner stops listing, and a finished attempt must not look lost while its
        final event waits in the outbox. The database is read on the same beat; both
        contacts feed the self-fence.
        """
        # Judge the silence that ends now before this beat ends it: after a freeze
        # (SIGSTOP, a stalled VM), whichever runs first (this beat, the periodic check or
        # a job's completion) must see that the runner was cut off.
        self.check_self_fence()
        errors: list[Exception] = []
        held = [(j.message.job_id, j.message.attempt) for j in self.running.values()]
        try:
            unpublished = await self._claims.unpublished(self.config.runner_id)
            self._last_database_reached = self._clock()
        except Exception as exc:  # noqa: BLE001 - the beat still goes out
            errors.append(exc)
            unpublished = []
        refs = sorted(set(held) | set(unpublished))
        beat = RunnerHeartbeat(
            runner_id=self.config.runner_id,
            pool=self.config.pool,
            slots_total=self.config.slots,
            slots_free=self.config.slots - len(self.running),
            running=[RunningJobRef(job_id=job_id, attempt=attempt) for job_id, attempt in refs],
            sent_at=datetime.now(UTC),
            accepting=self.accepting,
        )
        try:
            # Ephemeral liveness, not state: published directly, not through an outbox.
            await self._publish(Envelope.wrap(beat, SOURCE))
            self._last_beat_sent = self._clock()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        if errors:
            raise errors[0]

    def check_self_fence(self) -> int:
        """Stop local attempts once this runner has been cut off for the fence time.

        Cut off from the broker, its heartbeats stop and the monitor will declare its
        attempts lost (then the scheduler starts new ones elsewhere); cut off from the
        database, it cannot report. Stopping first, within ``self_fence_s`` (shorter than
        the monitor's timeout), means two attempts of a job never run at once. Jobs that
        outlive the runner (Slurm) are judged by their batch system instead.
        """
        limit = self.config.self_fence_s
        if limit is None or self.executor.reattaches or not self.running:
            return 0
        cut_off_s = self._clock() - min(self._last_beat_sent, self._last_database_reached)
        if cut_off_s <= limit:
            return 0
        stopped = 0
        for job in self.running.values():
            if job.fate == AttemptFate():  # not already stopped for another reason
                job.stop(abandoned=SELF_FENCED)
                stopped += 1
        if stopped:
            log.error(
                "cut off from the broker or the database; stopping local jobs",
                jobs=stopped,
                cut_off_s=round(cut_off_s, 1),
            )
        return stopped

    async def apply_recorded_cancels(self) -> None:
        """Catch cancels consumed by another runner instance (the cancel queue is shared)."""
        running_jobs = {j.message.job_id for j in self.running.values()}
        for job_id in await self._claims.canceled_among(running_jobs):
            for job in self._attempts_of(job_id):
                job.cancel.set()

    # -- shutdown -------------------------------------------------------------------------

    async def stop_accepting(self) -> None:
        self.accepting = False
        if self.subscription is not None:
            await self.subscription.pause()

    async def wait_running(self, timeout_s: float) -> None:
        tasks = [j.task for j in self.running.values() if j.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)

    async def hand_back(self, timeout_s: float = 30.0) -> int:
        """Stop the jobs still running at shutdown and report them retryable (SIGTERM path)."""
        jobs = list(self.running.values())
        for job in jobs:
            job.stop(handed_back=HANDED_BACK)
        tasks = [j.task for j in jobs if j.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        return len(jobs)

    async def drain(self, *, grace_s: float, kill_grace_s: float) -> None:
        """Stop taking work; let running jobs finish within the grace, then hand them back.

        Jobs of an executor that reattaches outlive us: the next runner resumes them.
        """
        await self.stop_accepting()
        if not self.executor.reattaches:
            await self.wait_running(timeout_s=grace_s)
            await self.hand_back(timeout_s=kill_grace_s * 2)
