"""The ``accounting.events`` queue and its bus handler (the message router)."""

from __future__ import annotations

from collections.abc import Sequence

from caesar_accounting.handlers import HANDLERS, AccountingDeps, on_batch
from caesar_common.bus import BatchHandler, Handler, QueueSpec
from caesar_common.events import Envelope
from caesar_common.message_router import route_by_type

# Every state, not only terminal ones: which terminal event is the job's outcome depends
# on whether a later attempt had started when it arrived (the api's rule), and only the
# start events say so. A queue bound by an older release keeps its terminal-state
# bindings too; RabbitMQ delivers a message once per queue however many bindings match.
ACCOUNTING_QUEUE = QueueSpec(
    "accounting.events",
    bindings=("job.submitted", "job.state.*", "file.uploaded", "file.deleted"),
)


def events_handler(deps: AccountingDeps) -> Handler:
    return route_by_type(HANDLERS, deps)


def events_batch_handler(deps: AccountingDeps) -> BatchHandler:
    """Deliveries taken together: one read and one write for a whole batch of job events."""

    async def handle(envelopes: Sequence[Envelope]) -> None:
        await on_batch(envelopes, deps)

    return handle
