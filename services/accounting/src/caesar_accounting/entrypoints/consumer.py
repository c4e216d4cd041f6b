"""The ``accounting.events`` queue and the dispatcher from envelopes to handlers."""

from __future__ import annotations

from caesar_accounting.handlers import HANDLERS, AccountingDeps
from caesar_common.bus import Handler, QueueSpec
from caesar_common.events import Envelope, decode
from caesar_common.logging import get_logger

log = get_logger(__name__)

# Only final states matter to accounting; STARTED/RUNNING/QUEUED/HELD are not bound.
ACCOUNTING_QUEUE = QueueSpec(
    "accounting.events",
    bindings=(
        "job.submitted",
        "job.state.success",
        "job.state.failure",
        "job.state.timed-out",
        "job.state.canceled",
        "job.state.aborted",
        "file.uploaded",
        "file.deleted",
    ),
)


def dispatcher(deps: AccountingDeps) -> Handler:
    async def dispatch(envelope: Envelope) -> None:
        try:
            message = decode(envelope)
        except KeyError:
            log.info("unknown event type ignored", type=envelope.type, event_id=envelope.id)
            return
        handler = HANDLERS.get(type(message))
        if handler is None:
            log.info("event without accounting handler ignored", type=envelope.type)
            return
        await handler(message, envelope, deps)

    return dispatch
