"""``python -m caesar_accounting``: run the accounting service."""

from __future__ import annotations

from caesar_accounting.bootstrap import INDEXES, OUTBOX_COLLECTIONS, SERVICE, build
from caesar_accounting.entrypoints.http import create_app
from caesar_accounting.settings import AccountingSettings
from caesar_common.runtime import run_service


def main() -> None:
    run_service(
        SERVICE,
        AccountingSettings(),
        build,
        indexes=INDEXES,
        outbox_collections=OUTBOX_COLLECTIONS,
        app=create_app(),
    )


if __name__ == "__main__":
    main()
