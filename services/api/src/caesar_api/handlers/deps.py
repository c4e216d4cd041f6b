"""What the handlers need, chosen once at start-up (see ``entrypoints/http.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from caesar_api.adapters.files_repo import FilesRepository
from caesar_api.adapters.jobs_repo import JobsRepository
from caesar_api.adapters.storage import UploadStorage
from caesar_api.settings import ApiSettings
from caesar_common.bus import Bus
from caesar_common.outbox import OutboxRelay


@dataclass(frozen=True)
class Dependencies:
    """Settings, repositories, upload storage, the outbox relay and the bus of one api process."""

    settings: ApiSettings
    files: FilesRepository
    jobs: JobsRepository
    storage: UploadStorage
    relay: OutboxRelay
    bus: Bus
