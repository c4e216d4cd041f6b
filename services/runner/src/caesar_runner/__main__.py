"""``python -m caesar_runner``: run jobs of one executor pool on this host."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from caesar_common.bus import QueueSpec, runner_pool_queue
from caesar_common.events import Envelope
from caesar_common.runtime import ServiceRuntime, run_service
from caesar_runner.adapters.claims import CANCELS, CLAIMS, INDEXES, Claims
from caesar_runner.adapters.slurmrestd import SlurmRestClient, TokenSource, api_version
from caesar_runner.executors.base import Executor
from caesar_runner.executors.local import LocalExecutor
from caesar_runner.executors.slurm import SlurmExecutor
from caesar_runner.service import JobRunner, RunnerConfig
from caesar_runner.settings import RunnerSettings

CANCEL_QUEUE = QueueSpec("runner.cancels", bindings=("job.cancel_requested",))


async def build(runtime: ServiceRuntime[RunnerSettings], settings: RunnerSettings) -> JobRunner:
    """Wire a runner onto a connected runtime; returns it (tests drive it directly)."""
    bin_dir = Path(sys.executable).parent
    config = RunnerConfig(
        runner_id=settings.runner_id,
        pool=settings.pool,
        slots=settings.slots,
        data_root=settings.data_root,
        jobs_root=settings.jobs_root,
        bin_dir=bin_dir,
    )
    executor: Executor
    if settings.executor == "slurm":
        executor = build_slurm_executor(settings, bin_dir)
        runtime.spawn(close_on_shutdown(executor), "slurm-close")
    else:
        executor = LocalExecutor(
            bin_dir,
            slots=settings.slots,
            kill_grace_s=settings.kill_grace_s,
            max_open_files=settings.max_open_files,
            max_file_size_bytes=settings.max_file_size_bytes,
        )
    claims = Claims(runtime.collection(CLAIMS), runtime.collection(CANCELS))
    runner = JobRunner(config, runtime.bus, claims, runtime.relay, executor)

    async def on_cancel(envelope: Envelope) -> None:
        await runner.on_cancel_requested(envelope)

    async def on_run(envelope: Envelope) -> None:
        await runner.on_run_job(envelope)

    await runtime.bus.consume(CANCEL_QUEUE, on_cancel, prefetch=16)
    runner.subscription = await runtime.bus.consume(
        QueueSpec(runner_pool_queue(settings.pool)), on_run, prefetch=settings.slots
    )
    runtime.spawn(runner.heartbeat_forever(settings.heartbeat_interval_s), "heartbeat")
    runtime.spawn(runner.watch_cancels_forever(settings.cancel_poll_interval_s), "cancels")
    runtime.spawn(runner.resume_claims(), "resume")
    return runner


def build_slurm_executor(settings: RunnerSettings, bin_dir: Path) -> SlurmExecutor:
    """The Slurm executor from the ``slurm_*`` settings (the API version fails fast)."""
    tokens = TokenSource(settings.slurm_token.get_secret_value(), settings.slurm_token_file)
    client = SlurmRestClient(
        settings.slurm_url, api_version(settings.slurm_api_version), settings.slurm_user, tokens
    )
    return SlurmExecutor(
        client,
        bin_dir,
        partition=settings.slurm_partition,
        account=settings.slurm_account,
        poll_interval_s=settings.slurm_poll_interval_s,
        max_poll_interval_s=settings.slurm_max_poll_interval_s,
        unavailable_grace_s=settings.slurm_unavailable_grace_s,
    )


async def close_on_shutdown(executor: SlurmExecutor) -> None:
    """Close the executor's HTTP session when the runtime cancels its background tasks."""
    try:
        await asyncio.Event().wait()
    finally:
        await executor.close()


def main() -> None:
    settings = RunnerSettings()
    holder: list[JobRunner] = []

    async def start(runtime: ServiceRuntime[RunnerSettings]) -> None:
        holder.append(await build(runtime, settings))

    async def drain(runtime: ServiceRuntime[RunnerSettings]) -> None:
        # Stop taking work; let running jobs finish within the grace period.
        if holder:
            await holder[0].stop_accepting()
            if settings.executor != "slurm":  # Slurm jobs outlive us; the next runner resumes them
                await holder[0].wait_running(timeout_s=settings.shutdown_grace_s)
                await holder[0].hand_back(timeout_s=settings.kill_grace_s * 2)

    run_service(
        "runner",
        settings,
        start,
        indexes=INDEXES,
        outbox_collections=[CLAIMS],
        on_shutdown=drain,
    )


if __name__ == "__main__":
    main()
