"""The ``accounting.events`` queue and its bus handler (the message router)."""

from __future__ import annotations

from caesar_accounting.handlers import HANDLERS, AccountingDeps
from caesar_common.bus import Handler, QueueSpec
from caesar_common.message_router import route_by_type

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


def events_handler(deps: AccountingDeps) -> Handler:
    return route_by_type(HANDLERS, deps)
