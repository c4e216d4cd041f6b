"""A runner service started in the test process, as the executor tests drive it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from caesar_common.bus import Bus
from caesar_common.runtime import ServiceRuntime
from caesar_runner.service.attempts import JobRunner
from caesar_runner.settings import RunnerSettings


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
