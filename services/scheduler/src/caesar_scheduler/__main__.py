"""``python -m caesar_scheduler``: admit, queue fairly and dispatch jobs to runner pools."""

from __future__ import annotations

from datetime import timedelta

from caesar_common.bus import QueueSpec, runner_pool_queue
from caesar_common.events import Envelope
from caesar_common.runtime import ServiceRuntime, run_service
from caesar_scheduler.adapters.jobs import COLLECTION, INDEXES, SchedulerJobs
from caesar_scheduler.dispatcher import Dispatcher
from caesar_scheduler.domain.capacity import CapacityTable
from caesar_scheduler.handlers import SchedulerDeps, handle
from caesar_scheduler.settings import SchedulerSettings

QUEUE = QueueSpec(
    "scheduler.events",
    bindings=(
        "job.submitted",
        "job.cancel_requested",
        "job.state.started",
        "job.state.running",
        "job.state.success",
        "job.state.failure",
        "job.state.timed-out",
        "job.state.canceled",
        "job.state.aborted",
        "runner.heartbeat",
    ),
)


async def build(runtime: ServiceRuntime[SchedulerSettings], settings: SchedulerSettings) -> SchedulerDeps:
    """Wire the scheduler onto a connected runtime; returns its dependencies (for tests)."""
    jobs = SchedulerJobs(runtime.collection(COLLECTION))
    capacity = CapacityTable(timedelta(seconds=settings.runner_timeout_s))
    dispatcher = Dispatcher(
        jobs,
        runtime.relay,
        capacity,
        settings.pools,
        interval_s=settings.dispatch_interval_s,
        max_active_per_user=settings.max_active_per_user,
    )
    deps = SchedulerDeps(
        jobs,
        runtime.relay,
        capacity,
        settings.pools,
        dispatcher.wake,
        max_attempts=settings.max_attempts,
        retry_backoff_s=settings.retry_backoff_s,
        slurm_min_image_bytes=settings.slurm_min_image_bytes,
        slurm_apps=settings.slurm_apps,
    )
    # Declare the pools' command queues so no RunJob is dropped before a runner exists.
    for pool in settings.pools:
        await runtime.bus.declare(QueueSpec(runner_pool_queue(pool)))

    async def on_message(envelope: Envelope) -> None:
        await handle(envelope, deps)

    await runtime.bus.consume(QUEUE, on_message, prefetch=32)
    runtime.spawn(dispatcher.run_forever(), "dispatcher")
    return deps


def main() -> None:
    settings = SchedulerSettings()

    async def start(runtime: ServiceRuntime[SchedulerSettings]) -> None:
        await build(runtime, settings)

    run_service("scheduler", settings, start, indexes=INDEXES, outbox_collections=[COLLECTION])


if __name__ == "__main__":
    main()
