"""The one place that says what the api process is made of.

``__main__`` and the integration tests both build the service from these, so a test
runs the same wiring as production: the collections with their indexes, the ones with
an outbox, and what runs once broker and database are up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pymongo import IndexModel

from caesar_api.adapters.files_repo import FILES_INDEXES
from caesar_api.adapters.jobs_repo import JOBS_INDEXES
from caesar_api.adapters.storage import UploadStorage
from caesar_api.entrypoints.consumer import start_projection
from caesar_api.settings import ApiSettings
from caesar_common.logging import get_logger
from caesar_common.runtime import ServiceRuntime

log = get_logger(__name__)

SERVICE = "api"
INDEXES: Mapping[str, Sequence[IndexModel]] = {"files": FILES_INDEXES, "jobs": JOBS_INDEXES}
OUTBOX_COLLECTIONS: Sequence[str] = ("files", "jobs")


def create_runtime(settings: ApiSettings) -> ServiceRuntime[ApiSettings]:
    """A runtime with the api's collections, indexes and outboxes (tests use this)."""
    return ServiceRuntime(SERVICE, settings, indexes=INDEXES, outbox_collections=OUTBOX_COLLECTIONS)


async def build(runtime: ServiceRuntime[ApiSettings]) -> None:
    """Runs once broker and database are reachable: clean up, start consuming."""
    removed = await UploadStorage(runtime.settings.data_root).remove_stale_temporaries()
    if removed:
        log.info("stale partial uploads removed", count=removed)
    await start_projection(runtime)
