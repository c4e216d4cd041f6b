"""``python -m caesar_runner``: run jobs of one executor pool on this host."""

from __future__ import annotations

from caesar_common.runtime import run_service
from caesar_runner.bootstrap import OUTBOX_COLLECTIONS, RUNNER_INDEXES, SERVICE, RunnerProcess
from caesar_runner.entrypoints.http import create_app
from caesar_runner.settings import RunnerSettings


def main() -> None:
    """Serve the operational routes at once; connect, start consuming, then report ready."""
    process = RunnerProcess()
    run_service(
        SERVICE,
        RunnerSettings(),
        process.start,
        indexes=RUNNER_INDEXES,
        outbox_collections=OUTBOX_COLLECTIONS,
        app=create_app(),
        on_shutdown=process.drain,
    )


if __name__ == "__main__":
    main()
