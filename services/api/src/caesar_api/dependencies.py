"""What routes and message handlers need, chosen once by :mod:`caesar_api.bootstrap`."""

from __future__ import annotations

from dataclasses import dataclass, field

from caesar_api.adapters.accounting import AccountingClient
from caesar_api.adapters.files_repo import FilesRepository
from caesar_api.adapters.jobs_repo import JobsRepository
from caesar_api.adapters.pools_repo import PoolsRepository
from caesar_api.adapters.storage import UploadStorage
from caesar_api.push.wiring import Push
from caesar_api.service.upload_gate import UploadGate
from caesar_api.settings import ApiSettings
from caesar_common.bus import Bus
from caesar_common.quotas import QuotaPolicy


@dataclass(frozen=True)
class Dependencies:
    """Settings, repositories, upload storage, the bus, the uploads in progress and the
    accounting client of one api process."""

    settings: ApiSettings
    files: FilesRepository
    jobs: JobsRepository
    pools: PoolsRepository
    storage: UploadStorage
    bus: Bus
    uploads: UploadGate
    accounting: AccountingClient
    push: Push
    """SSE hub, webhooks and their delivery loop: one per process (caesar_api.push)."""
    quotas: QuotaPolicy = field(default_factory=QuotaPolicy)
    """The quota policy (CAESAR_QUOTAS_FILE): the storage limit of each upload."""
