"""The one place where the monitor's real dependencies are chosen and wired."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

from pymongo import IndexModel

from caesar_common.bus import Bus
from caesar_common.deadletters import SERVICE_QUEUES, depths
from caesar_common.events import EVENTS_EXCHANGE
from caesar_common.logging import get_logger
from caesar_common.periodic import run_every
from caesar_common.runtime import ServiceRuntime
from caesar_monitor.adapters.runners import RUNNER_INDEXES, RUNNERS, RunnerRepository
from caesar_monitor.adapters.timelines import TIMELINE_INDEXES, TIMELINES, TimelineRepository
from caesar_monitor.entrypoints.consumer import (
    HEARTBEAT_KEY,
    HEARTBEAT_QUEUE,
    MONITOR_QUEUE,
    events_batch_handler,
    events_handler,
)
from caesar_monitor.handlers import refresh_all_gauges
from caesar_monitor.metrics import DEAD_LETTERS
from caesar_monitor.service.deps import MonitorDeps
from caesar_monitor.service.watchdog import sweep
from caesar_monitor.settings import MonitorSettings

log = get_logger(__name__)

SERVICE = "monitor"
INDEXES: Mapping[str, Sequence[IndexModel]] = {
    TIMELINES: TIMELINE_INDEXES,
    RUNNERS: RUNNER_INDEXES,
}
# The watchdog's JobStateChanged events live in the outbox of the timeline they change.
OUTBOX_COLLECTIONS = [TIMELINES]


def timeline_repository(runtime: ServiceRuntime[MonitorSettings]) -> TimelineRepository:
    """The timelines of the runtime's database (also what the read API serves)."""
    return TimelineRepository(runtime.collection(TIMELINES))


def make_deps(runtime: ServiceRuntime[MonitorSettings]) -> MonitorDeps:
    timelines = timeline_repository(runtime)
    return MonitorDeps(
        timelines=timelines,
        runners=RunnerRepository(runtime.collection(RUNNERS)),
        settings=runtime.settings,
        kick=partial(runtime.relay.kick, timelines.collection),
        broker_connected=lambda: runtime.bus.is_connected,
    )


async def build(runtime: ServiceRuntime[MonitorSettings]) -> None:
    """Consume ``monitor.events`` and ``monitor.heartbeats``; start the watchdog and gauges."""
    deps = make_deps(runtime)

    def restart_watch(*_: object) -> None:
        # Heartbeats sent while we were cut off never arrived: give every runner a
        # full timeout from now before calling it lost.
        deps.watching_since = deps.clock()

    runtime.bus.connection.reconnect_callbacks.add(restart_watch)
    await refresh_all_gauges(deps)  # /metrics shows real counts from the first scrape
    handler = events_handler(deps)
    # Heartbeats first, on their own queue and channel: the watchdog's evidence of life
    # must not wait behind a backlog of job events.
    await runtime.bus.consume(HEARTBEAT_QUEUE, handler)
    await runtime.bus.consume(MONITOR_QUEUE, handler, prefetch=256, batch=events_batch_handler(deps))
    await unbind_legacy_heartbeats(runtime.bus)
    interval = deps.settings.watchdog_interval_s
    runtime.spawn(run_every(interval, partial(sweep, deps), "watchdog"), "watchdog")
    runtime.spawn(
        run_every(deps.settings.metrics_interval_s, partial(refresh_all_gauges, deps), "gauges"),
        "gauges",
    )
    runtime.spawn(
        run_every(deps.settings.metrics_interval_s, partial(refresh_dead_letters, runtime), "dead letters"),
        "dead-letters",
    )


async def unbind_legacy_heartbeats(bus: Bus) -> None:
    """Remove the ``runner.heartbeat`` binding that earlier versions gave ``monitor.events``.

    The bus only ever adds bindings, so a queue declared by an earlier version keeps it,
    and heartbeats would keep arriving there too, late. Harmless (a heartbeat older than
    the stored one is dropped), so a failure here is logged, not fatal. Unbinding a
    binding that does not exist is a no-op in RabbitMQ.
    """
    channel = await bus.connection.channel()
    try:
        queue = await channel.get_queue(MONITOR_QUEUE.name, ensure=False)
        await queue.unbind(EVENTS_EXCHANGE, routing_key=HEARTBEAT_KEY)
    except Exception as exc:  # noqa: BLE001 - a leftover binding is harmless: say so, go on
        log.warning("could not unbind heartbeats from monitor.events", error=str(exc))
    finally:
        if not channel.is_closed:
            await channel.close()


async def refresh_dead_letters(runtime: ServiceRuntime[MonitorSettings]) -> None:
    """Export the depth of every dead-letter queue (poison messages need an operator)."""
    queues = list(dict.fromkeys([*SERVICE_QUEUES, HEARTBEAT_QUEUE.name]))
    for queue, count in (await depths(runtime.bus.connection, queues)).items():
        DEAD_LETTERS.labels(queue).set(count)
