"""The runner: claims RunJob commands, runs them through an executor, reports states.

Flow of one attempt: wait for a free slot -> claim (insert, with STARTED in the outbox)
-> ack the command -> run the steps (RUNNING once the first process starts) -> write the
manifest -> terminal state with exit code, elapsed and CPU seconds, peak RSS and outputs.
While slots are full the runner stops consuming, so the broker hands commands to runners
that have room (prefetch always equals the free slots).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import Gauge

from caesar_common.apps import get_app
from caesar_common.apps.base import ParameterError, PlanContext
from caesar_common.bus import Bus, Subscription
from caesar_common.events import (
    Envelope,
    JobCancelRequested,
    JobStateChanged,
    OutputFile,
    RunJob,
    RunnerHeartbeat,
    RunningJobRef,
    decode_as,
)
from caesar_common.jobstate import JobState
from caesar_common.logging import get_logger
from caesar_common.outbox import OutboxRelay, envelope_for
from caesar_runner.adapters.claims import Claims, claim_id
from caesar_runner.adapters.outputs import (
    MANIFEST,
    describe_outputs,
    input_path,
    job_directory,
    remove_outputs,
    stage_input,
    write_manifest,
)
from caesar_runner.executors.base import ExecutionResult, Executor, JobSpec
from caesar_runner.finalize import finalize_step, read_record

log = get_logger(__name__)
SOURCE = "runner"

SLOTS = Gauge("caesar_runner_local_slots", "Job slots of this runner process", ["kind"])


@dataclass
class RunningJob:
    message: RunJob
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    handback: bool = False  # stopped by a runner shutdown, not by the user
    task: asyncio.Task[None] | None = None


@dataclass
class RunnerConfig:
    runner_id: str
    pool: str
    slots: int
    data_root: Path
    jobs_root: Path
    bin_dir: Path


class JobRunner:
    def __init__(
        self,
        config: RunnerConfig,
        bus: Bus,
        claims: Claims,
        relay: OutboxRelay,
        executor: Executor,
    ) -> None:
        self.config = config
        self._bus = bus
        self._claims = claims
        self._relay = relay
        self._executor = executor
        self._free = asyncio.Semaphore(config.slots)
        self.running: dict[str, RunningJob] = {}
        self.subscription: Subscription | None = None
        self.accepting = True
        SLOTS.labels("total").set(config.slots)
        SLOTS.labels("free").set(config.slots)

    # -- consuming ------------------------------------------------------------------

    async def on_run_job(self, envelope: Envelope) -> None:
        message = decode_as(envelope, RunJob)
        await self._free.acquire()
        try:
            claimed = await self._claim(message)
        except BaseException:
            self._free.release()
            raise
        if claimed is None:
            self._free.release()
            return
        self.running[message.job_id] = claimed
        claimed.task = asyncio.get_running_loop().create_task(self._run(claimed))
        await self._adjust_consumer()

    async def on_cancel_requested(self, envelope: Envelope) -> None:
        message = decode_as(envelope, JobCancelRequested)
        await self._claims.record_cancel(message.job_id)
        job = self.running.get(message.job_id)
        if job is not None:
            job.cancel.set()

    async def _adjust_consumer(self) -> None:
        """Keep the prefetch equal to the free slots; stop consuming when full."""
        if self.subscription is None:
            return
        free = self.config.slots - len(self.running)
        SLOTS.labels("free").set(free)
        if free <= 0 or not self.accepting:
            await self.subscription.pause()
        else:
            await self.subscription.set_prefetch(free)
            await self.subscription.resume()

    # -- one attempt ------------------------------------------------------------------

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

    async def _claim(self, msg: RunJob) -> RunningJob | None:
        """Record the claim before the command is acked; None if nothing is to run."""
        cid = claim_id(msg.job_id, msg.attempt)
        doc = {
            "_id": cid,
            "job_id": msg.job_id,
            "attempt": msg.attempt,
            "owner": msg.owner,
            "app": msg.app,
            "runner_id": self.config.runner_id,
            "pool": self.config.pool,
            "claimed_at": datetime.now(UTC),
            # What a restarted runner needs to resume tracking the attempt (Slurm).
            "command": msg.model_dump(mode="json"),
        }
        refusal = self._refusal(msg)
        if await self._claims.is_canceled(msg.job_id):
            state, reason = JobState.CANCELED, "canceled by the user"
        elif refusal:
            state, reason = JobState.ABORTED, refusal
        else:
            state, reason = JobState.STARTED, ""
        event = self._event(msg, state, reason=reason)
        if not await self._claims.claim({**doc, "state": state.value, "reason": reason}, [event]):
            log.info("attempt already claimed; not started again", job_id=msg.job_id, attempt=msg.attempt)
            return None
        self._relay.kick(self._claims.collection, cid)
        if state is not JobState.STARTED:
            return None
        return RunningJob(msg)

    def _refusal(self, msg: RunJob) -> str:
        app = get_app(msg.app)
        if app is None:
            return f"unknown app {msg.app}"
        if self._executor.kind not in app.executors:
            return f"app {msg.app} cannot run on the {self._executor.kind} executor"
        source = input_path(self.config.data_root, msg.owner, msg.input.file_id, msg.input.ext)
        if not source.is_file():
            return f"input file {msg.input.file_id} is missing"
        try:
            app.validate(msg.params)
        except ParameterError as exc:
            return f"invalid parameters: {exc}"
        return ""

    async def _run(self, job: RunningJob) -> None:
        msg = job.message
        cid = claim_id(msg.job_id, msg.attempt)
        try:
            result, outputs = await self._execute(job)
        except Exception as exc:
            log.exception("job execution failed", job_id=msg.job_id)
            # Our failure, not the app's: retryable, so the scheduler tries another attempt.
            result = ExecutionResult(
                JobState.FAILURE, None, 0.0, 0.0, 0, f"runner error: {exc}", retryable=True
            )
            outputs = []
        if job.handback and result.state is JobState.CANCELED:
            result = replace(
                result,
                state=JobState.FAILURE,
                reason="the runner stopped before the job finished; handed back for retry",
                retryable=True,
            )
        try:
            event = self._event(
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
            changes = {
                "state": result.state.value,
                "exit_code": result.exit_code,
                "finished_at": datetime.now(UTC),
                "reason": result.reason,
            }
            for expect in (JobState.RUNNING.value, JobState.STARTED.value):
                if await self._claims.update(cid, expect, changes, [event]):
                    self._relay.kick(self._claims.collection, cid)
                    break
            log.info(
                "job finished",
                job_id=msg.job_id,
                state=result.state.value,
                exit_code=result.exit_code,
            )
        finally:
            self.running.pop(msg.job_id, None)
            self._free.release()
            await self._adjust_consumer()

    async def _execute(self, job: RunningJob) -> tuple[ExecutionResult, list[OutputFile]]:
        msg = job.message
        app = get_app(msg.app)
        assert app is not None  # checked by _refusal at claim time
        params = app.validate(msg.params)
        job_dir = job_directory(self.config.jobs_root, msg.owner, msg.job_id)
        source = input_path(self.config.data_root, msg.owner, msg.input.file_id, msg.input.ext)
        staged = await asyncio.to_thread(stage_input, source, job_dir)
        ctx = PlanContext(staged, job_dir, self.config.bin_dir)
        steps = app.plan(params, ctx)
        # Harmonised catalogues + preview, as a job step (runs wherever the job runs).
        final = finalize_step(msg.app, ctx)
        if final is not None:
            steps = [*steps, final]
        spec = JobSpec(
            job_id=msg.job_id,
            owner=msg.owner,
            attempt=msg.attempt,
            app=msg.app,
            steps=steps,
            job_dir=job_dir,
            wall_time_s=msg.wall_time_s,
            cores=msg.cores,
            memory_mb=msg.memory_mb,
        )
        cid = claim_id(msg.job_id, msg.attempt)

        async def on_started(pid: int | None) -> None:
            event = self._event(msg, JobState.RUNNING, pid=pid)
            changes = {"state": JobState.RUNNING.value, "pid": pid, "started_at": datetime.now(UTC)}
            if await self._claims.update(cid, JobState.STARTED.value, changes, [event]):
                self._relay.kick(self._claims.collection, cid)

        started_at = datetime.now(UTC)
        result = await self._executor.run(spec, on_started, job.cancel)
        manifest = {
            "job_id": msg.job_id,
            "attempt": msg.attempt,
            "app": msg.app,
            "app_version": app.version,
            "parameters": params.effective,
            "input": msg.input.model_dump(),
            "runner_id": self.config.runner_id,
            "started_at": started_at.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "state": result.state.value,
            "exit_code": result.exit_code,
            "elapsed_s": round(result.elapsed_s, 3),
            "cpu_s": round(result.cpu_s, 3),
            "peak_rss_bytes": result.peak_rss_bytes,
            "steps": [{"name": s.name, "argv": list(s.argv)} for s in steps],
        }
        await asyncio.to_thread(remove_outputs, job_dir, app.discardable_outputs(params))
        outputs = await asyncio.to_thread(describe_outputs, job_dir, {staged.name, MANIFEST})
        manifest["files"] = [o.model_dump() for o in outputs]
        manifest["catalog"] = await asyncio.to_thread(read_record, job_dir)
        await asyncio.to_thread(write_manifest, job_dir, manifest)
        return result, outputs

    async def resume_claims(self) -> int:
        """Resume the attempts this runner id left running (executors that can reattach).

        A Slurm job outlives the runner process that submitted it; with a stable
        ``runner_id``, the restarted runner finds its claims, re-runs the executor (which
        finds the Slurm job by its comment instead of submitting again) and reports the
        outcome once: the terminal update is guarded by the claim's state.
        """
        if not getattr(self._executor, "reattaches", False):
            return await self._report_orphaned_claims()
        query = {
            "runner_id": self.config.runner_id,
            "state": {"$in": [JobState.STARTED.value, JobState.RUNNING.value]},
        }
        resumed = 0
        docs = [doc async for doc in self._claims.collection.find(query)]  # slots may block below
        for doc in docs:
            if doc.get("pool") != self.config.pool or "command" not in doc:
                continue
            msg = RunJob.model_validate(doc["command"])
            if msg.job_id in self.running:
                continue
            await self._free.acquire()
            job = RunningJob(msg)
            self.running[msg.job_id] = job
            job.task = asyncio.get_running_loop().create_task(self._run(job))
            resumed += 1
            log.info("resumed a claimed attempt", job_id=msg.job_id, attempt=msg.attempt)
        await self._adjust_consumer()
        return resumed

    # -- background loops -------------------------------------------------------------

    async def heartbeat_forever(self, interval_s: float) -> None:
        while True:
            try:
                await self.send_heartbeat()
            except Exception as exc:  # noqa: BLE001 - next beat retries
                log.warning("heartbeat not sent", error=repr(exc))
            await asyncio.sleep(interval_s)

    async def send_heartbeat(self) -> None:
        beat = RunnerHeartbeat(
            runner_id=self.config.runner_id,
            pool=self.config.pool,
            slots_total=self.config.slots,
            slots_free=self.config.slots - len(self.running),
            running=[
                RunningJobRef(job_id=j.message.job_id, attempt=j.message.attempt)
                for j in self.running.values()
            ],
            sent_at=datetime.now(UTC),
            accepting=self.accepting,
        )
        # Heartbeats are ephemeral liveness signals, not state: published directly.
        await self._bus.publish(Envelope.wrap(beat, SOURCE))

    async def watch_cancels_forever(self, interval_s: float) -> None:
        """Catch cancels consumed by another runner instance (the cancel queue is shared)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                for job_id in await self._claims.canceled_among(list(self.running)):
                    job = self.running.get(job_id)
                    if job is not None:
                        job.cancel.set()
            except Exception as exc:  # noqa: BLE001 - next round retries
                log.warning("cancel check failed", error=repr(exc))

    async def _report_orphaned_claims(self) -> int:
        """Close the attempts a previous life of this runner id left running (local).

        Local job processes die with their runner (``--pdeathsig``), so a claim still
        STARTED or RUNNING under our id is an attempt nobody will finish: report it as a
        retryable failure now rather than waiting for the monitor to notice.
        """
        query = {
            "runner_id": self.config.runner_id,
            "state": {"$in": [JobState.STARTED.value, JobState.RUNNING.value]},
        }
        closed = 0
        async for doc in self._claims.collection.find(query):
            if "command" not in doc:
                continue
            msg = RunJob.model_validate(doc["command"])
            reason = "runner restarted; the attempt's processes died with it"
            event = self._event(msg, JobState.FAILURE, reason=reason, retryable=True)
            changes = {"state": JobState.FAILURE.value, "reason": reason, "finished_at": datetime.now(UTC)}
            if await self._claims.update(doc["_id"], doc["state"], changes, [event]):
                self._relay.kick(self._claims.collection, doc["_id"])
                closed += 1
                log.warning("orphaned attempt reported for retry", job_id=msg.job_id, attempt=msg.attempt)
        return closed

    async def hand_back(self, timeout_s: float = 30.0) -> int:
        """Stop the jobs still running at shutdown and report them retryable (SIGTERM path)."""
        jobs = list(self.running.values())
        for job in jobs:
            job.handback = True
            job.cancel.set()
        tasks = [j.task for j in jobs if j.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        return len(jobs)

    async def stop_accepting(self) -> None:
        self.accepting = False
        if self.subscription is not None:
            await self.subscription.pause()

    async def wait_running(self, timeout_s: float) -> None:
        tasks = [j.task for j in self.running.values() if j.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
