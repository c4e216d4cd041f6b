"""The one place where the scheduler's real dependencies are chosen and wired."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from functools import partial

from pymongo import IndexModel

from caesar_common.bus import QueueSpec, runner_pool_queue
from caesar_common.periodic import run_every
from caesar_common.runtime import ServiceRuntime
from caesar_scheduler.adapters.jobs import COLLECTION, SchedulerJobs
from caesar_scheduler.adapters.jobs import INDEXES as JOB_INDEXES
from caesar_scheduler.domain.capacity import CapacityTable
from caesar_scheduler.domain.retry import RetryPolicy
from caesar_scheduler.domain.start import StartPolicy
from caesar_scheduler.entrypoints.consumer import SCHEDULER_QUEUE, dispatcher
from caesar_scheduler.entrypoints.dispatch_loop import DispatchTrigger
from caesar_scheduler.handlers import SchedulerDeps
from caesar_scheduler.service.dispatch import dispatch_once
from caesar_scheduler.service.reconcile import reconcile_unstarted
from caesar_scheduler.settings import SchedulerSettings

SERVICE = "scheduler"
INDEXES: Mapping[str, Sequence[IndexModel]] = JOB_INDEXES
# State changes and RunJob commands live in the outbox of the job they concern.
OUTBOX_COLLECTIONS = [COLLECTION]


def make_deps(
    runtime: ServiceRuntime[SchedulerSettings], wake_dispatcher: Callable[[], None]
) -> SchedulerDeps:
    settings = runtime.settings
    jobs = SchedulerJobs(runtime.collection(COLLECTION))
    return SchedulerDeps(
        jobs=jobs,
        kick=partial(runtime.relay.kick, jobs.collection),
        capacity=CapacityTable(timedelta(seconds=settings.runner_timeout_s)),
        pools=list(settings.pools),
        wake_dispatcher=wake_dispatcher,
        rules=list(settings.pool_rules),
        retry=RetryPolicy(max_attempts=settings.max_attempts, backoff_s=settings.retry_backoff_s),
        max_active_per_user=settings.max_active_per_user,
        fetch_per_owner=settings.dispatch_fetch_per_owner,
        start=StartPolicy(timeout_s=settings.start_timeout_s, max_resends=settings.max_start_resends),
    )


def dispatch_round(deps: SchedulerDeps) -> Callable[[], Awaitable[int]]:
    """The dispatch use case bound to the deployment's pools, capacity and per-user cap."""

    async def round_() -> int:
        return await dispatch_once(
            deps.jobs,
            deps.capacity,
            deps.kick,
            deps.pools,
            max_active_per_user=deps.max_active_per_user,
            fetch_per_owner=deps.fetch_per_owner,
        )

    return round_


def start_reconciliation(deps: SchedulerDeps) -> Callable[[], Awaitable[int]]:
    """One pass of re-sending (or giving up on) dispatched attempts no runner started."""

    async def pass_() -> int:
        return await reconcile_unstarted(deps.jobs, deps.kick, deps.capacity, deps.start, deps.retry)

    return pass_


async def wire(runtime: ServiceRuntime[SchedulerSettings]) -> SchedulerDeps:
    """Declare the pools' queues, consume ``scheduler.events``, start the dispatch and
    start-reconciliation loops.

    Returns the dependencies, so tests can look at what the scheduler holds.
    """
    trigger = DispatchTrigger(interval_s=runtime.settings.dispatch_interval_s)
    deps = make_deps(runtime, trigger.wake)
    # Declare the pools' command queues so no RunJob is dropped before a runner exists.
    for pool in deps.pools:
        await runtime.bus.declare(QueueSpec(runner_pool_queue(pool)))
    await runtime.bus.consume(SCHEDULER_QUEUE, dispatcher(deps), prefetch=32)
    runtime.spawn(trigger.run_forever(dispatch_round(deps)), "dispatcher")
    runtime.spawn(
        run_every(deps.start.check_interval_s(), start_reconciliation(deps), "start-reconciliation"),
        "start-reconciliation",
    )
    return deps


async def build(runtime: ServiceRuntime[SchedulerSettings]) -> None:
    """What :func:`caesar_common.runtime.run_service` calls once broker and database answer."""
    await wire(runtime)
