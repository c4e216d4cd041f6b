"""The one place that builds the api's dependencies from its settings.

``__main__``, the HTTP entrypoint and the integration tests all take their wiring from
here, so a test runs the same wiring as production: the collections with their indexes,
the ones with an outbox, the repositories, the token verifier, and what runs once
broker and database are up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from pymongo import IndexModel

from caesar_api.adapters.accounting import AccountingClient
from caesar_api.adapters.files_repo import FILES_INDEXES, FilesRepository
from caesar_api.adapters.jobs_repo import JOBS_INDEXES, JobsRepository
from caesar_api.adapters.pools_repo import PoolsRepository
from caesar_api.adapters.storage import UploadStorage
from caesar_api.auth import KeycloakKeys, TokenVerifier
from caesar_api.dependencies import Dependencies
from caesar_api.entrypoints.consumer import start_projection
from caesar_api.push.wiring import PUSH_INDEXES, push_of, start_push
from caesar_api.service.reannounce import reannounce_pending
from caesar_api.service.upload_gate import UploadGate
from caesar_api.settings import ApiSettings
from caesar_common.logging import get_logger
from caesar_common.periodic import run_every
from caesar_common.runtime import ServiceRuntime

log = get_logger(__name__)

SERVICE = "api"
FILES = "files"
JOBS = "jobs"
POOLS = "pools"
INDEXES: Mapping[str, Sequence[IndexModel]] = {
    FILES: FILES_INDEXES,
    JOBS: JOBS_INDEXES,
    POOLS: [],
    **PUSH_INDEXES,  # webhooks and their deliveries
}
OUTBOX_COLLECTIONS: Sequence[str] = (FILES, JOBS)


def create_runtime(settings: ApiSettings) -> ServiceRuntime[ApiSettings]:
    """A runtime with the api's collections, indexes and outboxes (tests use this)."""
    return ServiceRuntime(SERVICE, settings, indexes=INDEXES, outbox_collections=OUTBOX_COLLECTIONS)


def make_dependencies(runtime: ServiceRuntime[ApiSettings]) -> Dependencies:
    """Repositories on the runtime's database (publishing through its relay), storage, and
    the client of accounting's usage reports (no connection until the first report)."""
    settings = runtime.settings
    return Dependencies(
        settings=settings,
        files=FilesRepository(runtime.collection(FILES), runtime.name, runtime.relay),
        jobs=JobsRepository(runtime.collection(JOBS), runtime.name, runtime.relay),
        pools=PoolsRepository(runtime.collection(POOLS)),
        storage=UploadStorage(settings.data_root),
        bus=runtime.bus,
        uploads=UploadGate(settings.max_concurrent_uploads_per_user),
        accounting=AccountingClient(settings.accounting_url, settings.accounting_timeout_s),
        push=push_of(runtime),
    )


def make_token_verifier(settings: ApiSettings) -> TokenVerifier:
    """The verifier of Keycloak access tokens the settings describe (auth on only)."""
    return TokenVerifier(
        KeycloakKeys(settings.keycloak_url, settings.keycloak_realm, settings.keycloak_audience),
        issuer=settings.expected_issuer,
        audience=settings.keycloak_audience,
        admin_role=settings.admin_role,
        required_role=settings.user_role,
        leeway_s=settings.token_leeway_s,
        refresh_interval_s=settings.jwks_refresh_interval_s,
    )


async def build(runtime: ServiceRuntime[ApiSettings]) -> None:
    """Runs once broker and database are reachable: clean up, start consuming."""
    deps = make_dependencies(runtime)
    removed = await deps.storage.remove_stale_temporaries()
    if removed:
        log.info("stale partial uploads removed", count=removed)
    # The push feed first: by the time jobs move, this process's streams hear of it.
    await start_push(runtime, deps.push)
    await start_projection(runtime.bus, deps)
    after = timedelta(seconds=runtime.settings.reannounce_pending_after_s)

    async def reannounce() -> int:
        return await reannounce_pending(deps.jobs, datetime.now(UTC), after)

    runtime.spawn(
        run_every(after.total_seconds() / 4, reannounce, "reannounce-pending"), "reannounce-pending"
    )
