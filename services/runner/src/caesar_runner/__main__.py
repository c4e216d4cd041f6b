"""``python -m caesar_runner``: run jobs of one executor pool on this host."""

from __future__ import annotations

import sys

from caesar_common.runtime import run_service
from caesar_runner.adapters.jobuser_setup import JobUsersUnusable
from caesar_runner.bootstrap import OUTBOX_COLLECTIONS, RUNNER_INDEXES, SERVICE, RunnerProcess, runner_config
from caesar_runner.entrypoints.http import create_app
from caesar_runner.executors.factory import build_executor
from caesar_runner.settings import RunnerSettings

REFUSED = 2


def main() -> None:
    """Build the executor (or refuse), serve the operational routes, connect, consume."""
    settings = RunnerSettings()
    try:
        executor = build_executor(settings, runner_config(settings).bin_dir)
    except JobUsersUnusable as exc:
        print(f"caesar-runner: refusing to start: {exc}", file=sys.stderr, flush=True)
        sys.exit(REFUSED)
    process = RunnerProcess(executor)
    run_service(
        SERVICE,
        settings,
        process.start,
        indexes=RUNNER_INDEXES,
        outbox_collections=OUTBOX_COLLECTIONS,
        app=create_app(),
        on_shutdown=process.drain,
    )


if __name__ == "__main__":
    main()
