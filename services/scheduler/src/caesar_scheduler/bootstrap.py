"""The one place where the scheduler's real dependencies are chosen and wired."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial

from pymongo import IndexModel

from caesar_common.bus import QueueSpec, runner_pool_queue
from caesar_common.lease import LEASE_INDEXES, LEASES, Lease, holder_id
from caesar_common.periodic import run_every
from caesar_common.runtime import ServiceRuntime
from caesar_scheduler import metrics
from caesar_scheduler.adapters.jobs import COLLECTION, SchedulerJobs
from caesar_scheduler.adapters.jobs import INDEXES as JOB_INDEXES
from caesar_scheduler.adapters.quotas import QUOTAS, QuotaVerdictStore
from caesar_scheduler.domain.capacity import CapacityTable
from caesar_scheduler.domain.retry import RetryPolicy
from caesar_scheduler.domain.start import StartPolicy
from caesar_scheduler.entrypoints.consumer import SCHEDULER_QUEUE, batch_dispatcher, dispatcher
from caesar_scheduler.entrypoints.dispatch_loop import DispatchTrigger
from caesar_scheduler.handlers import SchedulerDeps
from caesar_scheduler.service.dispatch import dispatch_once
from caesar_scheduler.service.pools import watch_pools
from caesar_scheduler.service.reconcile import reconcile_unstarted
from caesar_scheduler.settings import SchedulerSettings

SERVICE = "scheduler"
INDEXES: Mapping[str, Sequence[IndexModel]] = {**JOB_INDEXES, LEASES: LEASE_INDEXES, QUOTAS: []}
DISPATCHER_LEASE = "dispatcher"
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
        # Verdicts are read at each admission only where quotas are configured.
        quotas=QuotaVerdictStore(runtime.collection(QUOTAS)) if settings.quotas_file else None,
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


def pool_watch(
    deps: SchedulerDeps, runtime: ServiceRuntime[SchedulerSettings]
) -> Callable[[], Awaitable[int]]:
    """One pass of announcing pools' status and aborting jobs no runner will ever take."""
    started_at = datetime.now(UTC)
    max_wait = timedelta(seconds=runtime.settings.max_wait_without_runner_s)

    async def pass_() -> int:
        return await watch_pools(
            deps.jobs,
            deps.kick,
            deps.capacity,
            deps.pools,
            runtime.bus.publish,
            started_at=started_at,
            max_wait=max_wait,
            now=datetime.now(UTC),
        )

    return pass_


def only_while_leading(lease: Lease, action: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[int]]:
    """``action``, run only by the replica holding the dispatcher lease (others do nothing)."""

    async def gated() -> int:
        if not lease.held(datetime.now(UTC)):
            return 0
        return await action()

    return gated


def lease_keeper(lease: Lease) -> Callable[[], Awaitable[bool]]:
    async def renew() -> bool:
        held = await lease.renew(datetime.now(UTC))
        metrics.LEADER.set(1 if held else 0)
        return held

    return renew


async def wire(runtime: ServiceRuntime[SchedulerSettings]) -> SchedulerDeps:
    """Declare the pools' queues, consume ``scheduler.events``, start the dispatch and
    start-reconciliation loops.

    Returns the dependencies, so tests can look at what the scheduler holds.
    """
    trigger = DispatchTrigger(interval_s=runtime.settings.dispatch_interval_s)
    deps = make_deps(runtime, trigger.wake)
    ttl = timedelta(seconds=runtime.settings.leader_lease_s)
    lease = Lease(runtime.collection(LEASES), DISPATCHER_LEASE, holder=holder_id(), ttl=ttl)
    await lease_keeper(lease)()  # a lone replica dispatches from its first round
    runtime.spawn(
        run_every(ttl.total_seconds() / 5, lease_keeper(lease), "dispatcher-lease", first_after_s=0),
        "dispatcher-lease",
    )
    # Declare the pools' command queues so no RunJob is dropped before a runner exists.
    for pool in deps.pools:
        await runtime.bus.declare(QueueSpec(runner_pool_queue(pool)))
    await runtime.bus.consume(SCHEDULER_QUEUE, dispatcher(deps), prefetch=256, batch=batch_dispatcher(deps))
    runtime.spawn(trigger.run_forever(only_while_leading(lease, dispatch_round(deps))), "dispatcher")
    runtime.spawn(
        run_every(
            deps.start.check_interval_s(),
            only_while_leading(lease, start_reconciliation(deps)),
            "start-reconciliation",
        ),
        "start-reconciliation",
    )
    runtime.spawn(
        run_every(
            runtime.settings.pool_status_interval_s,
            only_while_leading(lease, pool_watch(deps, runtime)),
            "pool-status",
        ),
        "pool-status",
    )
    return deps


async def build(runtime: ServiceRuntime[SchedulerSettings]) -> None:
    """What :func:`caesar_common.runtime.run_service` calls once broker and database answer."""
    await wire(runtime)
