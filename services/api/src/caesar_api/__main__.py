"""``python -m caesar_api``: run the api service until SIGTERM."""

from __future__ import annotations

from caesar_api.bootstrap import INDEXES, OUTBOX_COLLECTIONS, SERVICE, build
from caesar_api.entrypoints.http import create_app
from caesar_api.settings import ApiSettings
from caesar_common.runtime import run_service


def main() -> None:
    """Serve HTTP at once; connect, start the projection, then report ready."""
    settings = ApiSettings()
    run_service(
        SERVICE,
        settings,
        build,
        indexes=INDEXES,
        outbox_collections=OUTBOX_COLLECTIONS,
        app=create_app(settings),
    )


if __name__ == "__main__":
    main()
