"""The one place where accounting's real dependencies are chosen and wired."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

from pymongo import IndexModel

from caesar_accounting.adapters.files import FILE_USAGE, FILE_USAGE_INDEXES, FileUsageRepository
from caesar_accounting.adapters.jobs import JOB_USAGE, JOB_USAGE_INDEXES, JobUsageRepository
from caesar_accounting.entrypoints.consumer import ACCOUNTING_QUEUE, events_batch_handler, events_handler
from caesar_accounting.handlers import AccountingDeps
from caesar_accounting.service.usage import refresh_bytes_stored
from caesar_accounting.settings import AccountingSettings
from caesar_common.periodic import run_every
from caesar_common.runtime import ServiceRuntime

SERVICE = "accounting"
INDEXES: Mapping[str, Sequence[IndexModel]] = {
    JOB_USAGE: JOB_USAGE_INDEXES,
    FILE_USAGE: FILE_USAGE_INDEXES,
}
# Accounting publishes nothing yet (QuotaChanged will need an outbox collection).
OUTBOX_COLLECTIONS: list[str] = []


def make_deps(runtime: ServiceRuntime[AccountingSettings]) -> AccountingDeps:
    return AccountingDeps(
        jobs=JobUsageRepository(runtime.collection(JOB_USAGE)),
        files=FileUsageRepository(runtime.collection(FILE_USAGE)),
    )


async def build(runtime: ServiceRuntime[AccountingSettings]) -> None:
    """Consume ``accounting.events`` and keep the bytes-stored gauge fresh."""
    deps = make_deps(runtime)
    await refresh_bytes_stored(deps.files)
    await runtime.bus.consume(
        ACCOUNTING_QUEUE, events_handler(deps), prefetch=256, batch=events_batch_handler(deps)
    )
    runtime.spawn(
        run_every(
            runtime.settings.metrics_interval_s, partial(refresh_bytes_stored, deps.files), "bytes-stored"
        ),
        "bytes-stored",
    )
