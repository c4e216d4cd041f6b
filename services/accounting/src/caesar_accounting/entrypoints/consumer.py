"""The ``accounting.events`` queue and its bus handler (the message router)."""

from __future__ import annotations

from caesar_accounting.handlers import HANDLERS, AccountingDeps
from caesar_common.bus import Handler, QueueSpec
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
