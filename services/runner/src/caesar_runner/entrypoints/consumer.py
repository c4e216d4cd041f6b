"""The runner's consumers: its pool's command queue and the shared cancel queue.

The command queue's prefetch follows the free slots (the runner pauses it when full), so
the broker hands ``RunJob`` commands to runners that have room.
"""

from __future__ import annotations

from caesar_common.bus import Bus, QueueSpec, Subscription, runner_pool_queue
from caesar_common.message_router import route_by_type
from caesar_runner.handlers import HANDLERS
from caesar_runner.service.attempts import JobRunner

CANCEL_QUEUE = QueueSpec("runner.cancels", bindings=("job.cancel_requested",))


async def start_consumers(bus: Bus, runner: JobRunner, *, cancel_prefetch: int = 16) -> Subscription:
    """Consume cancels and the pool's commands; returns the command subscription."""
    route = route_by_type(HANDLERS, runner)
    await bus.consume(CANCEL_QUEUE, route, prefetch=cancel_prefetch)
    return await bus.consume(
        QueueSpec(runner_pool_queue(runner.config.pool)), route, prefetch=runner.config.slots
    )
