"""``python -m caesar_scheduler``: admit, queue fairly and dispatch jobs to runner pools."""

from __future__ import annotations

from caesar_common.runtime import run_service
from caesar_scheduler.bootstrap import INDEXES, OUTBOX_COLLECTIONS, SERVICE, build
from caesar_scheduler.entrypoints.http import create_app
from caesar_scheduler.settings import SchedulerSettings


def main() -> None:
    run_service(
        SERVICE,
        SchedulerSettings(),
        build,
        indexes=INDEXES,
        outbox_collections=OUTBOX_COLLECTIONS,
        app=create_app(),
    )


if __name__ == "__main__":
    main()
