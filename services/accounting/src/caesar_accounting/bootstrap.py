"""The one place where accounting's real dependencies are chosen and wired."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import partial

from pymongo import IndexModel

from caesar_accounting.adapters.files import FILE_USAGE, FILE_USAGE_INDEXES, FileUsageRepository
from caesar_accounting.adapters.jobs import JOB_USAGE, JOB_USAGE_INDEXES, JobUsageRepository
from caesar_accounting.adapters.quota_owners import (
    QUOTA_OWNERS,
    QUOTA_OWNERS_INDEXES,
    QuotaOwnerRepository,
    QuotaUsageReader,
)
from caesar_accounting.entrypoints.consumer import ACCOUNTING_QUEUE, events_batch_handler, events_handler
from caesar_accounting.handlers import AccountingDeps
from caesar_accounting.service.quotas import QuotaJudge, QuotaWatch
from caesar_accounting.service.usage import refresh_bytes_stored
from caesar_accounting.settings import AccountingSettings
from caesar_common.periodic import run_every
from caesar_common.quotas import load_policy
from caesar_common.runtime import ServiceRuntime

SERVICE = "accounting"
INDEXES: Mapping[str, Sequence[IndexModel]] = {
    JOB_USAGE: JOB_USAGE_INDEXES,
    FILE_USAGE: FILE_USAGE_INDEXES,
    QUOTA_OWNERS: QUOTA_OWNERS_INDEXES,
}
# QuotaChanged events live in the outbox of the user's quota document.
OUTBOX_COLLECTIONS: list[str] = [QUOTA_OWNERS]


def quota_watch(runtime: ServiceRuntime[AccountingSettings]) -> QuotaWatch | None:
    """The quota judge, where a policy that limits anything is configured."""
    policy = load_policy(runtime.settings.quotas_file)
    if not policy.limits_anything:
        return None
    owners = QuotaOwnerRepository(runtime.collection(QUOTA_OWNERS))
    reader = QuotaUsageReader(runtime.collection(JOB_USAGE), runtime.collection(FILE_USAGE))
    judge = QuotaJudge(
        policy=policy,
        owners=owners,
        usage_of=reader.usage,
        kick=partial(runtime.relay.kick, owners.collection),
        clock=lambda: datetime.now(UTC),
    )
    return QuotaWatch(judge, recheck_s=runtime.settings.quota_recheck_s)


def make_deps(runtime: ServiceRuntime[AccountingSettings], quota: QuotaWatch | None = None) -> AccountingDeps:
    return AccountingDeps(
        jobs=JobUsageRepository(runtime.collection(JOB_USAGE)),
        files=FileUsageRepository(runtime.collection(FILE_USAGE)),
        quota=quota,
    )


async def build(runtime: ServiceRuntime[AccountingSettings]) -> None:
    """Consume ``accounting.events``, keep the bytes-stored gauge fresh and judge quotas."""
    quota = quota_watch(runtime)
    deps = make_deps(runtime, quota)
    if quota is not None:
        runtime.spawn(quota.run(), "quotas")
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
