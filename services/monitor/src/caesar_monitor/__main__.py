"""``python -m caesar_monitor``: run the monitor service."""

from __future__ import annotations

from caesar_common.runtime import run_service
from caesar_monitor.bootstrap import INDEXES, OUTBOX_COLLECTIONS, SERVICE, build
from caesar_monitor.entrypoints.http import create_app
from caesar_monitor.settings import MonitorSettings


def main() -> None:
    run_service(
        SERVICE,
        MonitorSettings(),
        build,
        indexes=INDEXES,
        outbox_collections=OUTBOX_COLLECTIONS,
        app=create_app(),
    )


if __name__ == "__main__":
    main()
