"""One plain async function per message type, and the table that routes them.

Each is idempotent by construction: the repositories write each fact once (guarded on
its field being unset, or on the revision the decision was made from), and the use
cases in :mod:`caesar_accounting.service` count a metric only when their write was the
first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from caesar_accounting.service.ports import FileUsageStore, JobUsageStore
from caesar_accounting.service.quotas import QuotaWatch
from caesar_accounting.service.usage import (
    record_deletion,
    record_state,
    record_states_together,
    record_upload,
    refresh_bytes_stored,
)
from caesar_common.events import (
    Envelope,
    FileDeleted,
    FileUploaded,
    JobStateChanged,
    JobSubmitted,
)
from caesar_common.message_router import HandlerTable, decode_known, route_by_type

__all__ = ["HANDLERS", "AccountingDeps", "on_batch", "refresh_bytes_stored"]


@dataclass
class AccountingDeps:
    """What the handlers need; chosen once, in ``bootstrap``."""

    jobs: JobUsageStore
    files: FileUsageStore
    quota: QuotaWatch | None = None
    """Judges the owners whose usage moved (None: no quota policy)."""


async def _touched(deps: AccountingDeps, messages: Sequence[object]) -> None:
    """Remember submitters' roles and have the owners concerned judged against quotas."""
    if deps.quota is None:
        return
    for message in messages:
        if isinstance(message, JobSubmitted):
            await deps.quota.judge.remember_roles(message.owner, message.roles)
    deps.quota.touch(str(getattr(m, "owner", "")) for m in messages if getattr(m, "owner", ""))


async def on_job_submitted(message: JobSubmitted, envelope: Envelope, deps: AccountingDeps) -> None:
    await deps.jobs.record_submission(message)
    await _touched(deps, [message])


async def on_job_state_changed(message: JobStateChanged, envelope: Envelope, deps: AccountingDeps) -> None:
    await record_state(message, deps.jobs)
    await _touched(deps, [message])


async def on_file_uploaded(message: FileUploaded, envelope: Envelope, deps: AccountingDeps) -> None:
    await record_upload(message, deps.files)
    await _touched(deps, [message])


async def on_file_deleted(message: FileDeleted, envelope: Envelope, deps: AccountingDeps) -> None:
    # FileDeleted carries no timestamp of its own; the envelope's creation time is it.
    await record_deletion(message, envelope.time, deps.files)
    await _touched(deps, [message])


async def on_batch(envelopes: Sequence[Envelope], deps: AccountingDeps) -> None:
    """A batch of deliveries: submissions and state events in bulk, file events one by one.

    Submissions and state events of one job touch different fields, so writing all
    submissions first changes nothing; state events keep their delivery order.
    """
    submissions: list[JobSubmitted] = []
    states: list[JobStateChanged] = []
    route = route_by_type(HANDLERS, deps)
    others: list[Envelope] = []
    for envelope in envelopes:
        message = decode_known(envelope)
        if isinstance(message, JobSubmitted):
            submissions.append(message)
        elif isinstance(message, JobStateChanged):
            states.append(message)
        else:
            others.append(envelope)
    await deps.jobs.record_submissions(submissions)
    await record_states_together(states, deps.jobs)
    await _touched(deps, [*submissions, *states])
    for envelope in others:
        await route(envelope)


HANDLERS: HandlerTable[AccountingDeps] = {
    JobSubmitted: on_job_submitted,
    JobStateChanged: on_job_state_changed,
    FileUploaded: on_file_uploaded,
    FileDeleted: on_file_deleted,
}
