"""A runner service started in the test process, as the executor tests drive it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caesar_common.bus import Bus
from caesar_common.events import Envelope, InputFile, RunJob
from caesar_common.runtime import ServiceRuntime
from caesar_runner.service.attempts import JobRunner
from caesar_runner.settings import RunnerSettings
from tests.integration.event_tap import EventTap


@dataclass
class RunnerUnderTest:
    """The runner's runtime and job runner, plus a bus the test publishes commands on."""

    runtime: ServiceRuntime[RunnerSettings]
    runner: JobRunner
    bus: Bus
    jobs_root: Path
    stopped: bool = False

    async def stop(self, *, crash: bool = False) -> None:
        """Stop the runner; ``crash`` abandons its attempts as a killed process would."""
        if self.stopped:
            return
        self.stopped = True
        if crash:
            tasks = [job.task for job in self.runner.running.values() if job.task is not None]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
        await self.bus.close()
        await self.runtime.shutdown(grace_s=5)
        await self.runner.executor.aclose()


def run_job(job_id: str, *, pool: str, file_id: str, app: str = "aegean", **overrides: Any) -> Envelope:
    """The scheduler's command to run ``job_id`` on ``pool`` (a small Aegean job by default)."""
    fields: dict[str, Any] = {
        "job_id": job_id,
        "owner": "anonymous",
        "app": app,
        "attempt": 1,
        "params": {"bkgbox": 40, "bkggrid": 10} if app == "aegean" else {},
        "input": InputFile(file_id=file_id, ext="fits"),
        "wall_time_s": 300,
        "pool": pool,
        "memory_mb": 1024,
    }
    fields.update(overrides)
    return Envelope.wrap(RunJob(**fields), "test")


def states_of(tap: EventTap, job_id: str) -> list[str]:
    """The states ``job_id`` went through, in the order the tap received them."""
    return [e.data["state"] for e in tap.received if e.subject == job_id]
