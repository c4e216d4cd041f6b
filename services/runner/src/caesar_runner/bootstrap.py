"""The one place that says what a runner process is made of.

``__main__`` and the integration tests both build the runner from here: its collections,
its executor (from ``CAESAR_EXECUTOR``), the consumers and the periodic loops.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

from pymongo import IndexModel

from caesar_common.apps import get_app
from caesar_common.apps.base import App
from caesar_common.periodic import run_every
from caesar_common.runtime import ServiceRuntime
from caesar_runner.adapters.claims import CANCELS, CLAIMS, FENCES, INDEXES, Claims
from caesar_runner.entrypoints.consumer import start_consumers
from caesar_runner.executors.base import Executor
from caesar_runner.executors.factory import build_executor
from caesar_runner.service.attempts import JobRunner, RunnerConfig
from caesar_runner.settings import RunnerSettings

SERVICE = "runner"
RUNNER_INDEXES: Mapping[str, Sequence[IndexModel]] = INDEXES
OUTBOX_COLLECTIONS: Sequence[str] = (CLAIMS, FENCES)


def runner_config(settings: RunnerSettings, bin_dir: Path | None = None) -> RunnerConfig:
    return RunnerConfig(
        runner_id=settings.runner_id,
        pool=settings.pool,
        slots=settings.slots,
        data_root=settings.data_root,
        jobs_root=settings.jobs_root,
        bin_dir=bin_dir or Path(sys.executable).parent,
        self_fence_s=settings.self_fence_s,
        fence_poll_interval_s=settings.fence_poll_interval_s,
        record_running_timeout_s=settings.record_running_timeout_s,
    )


async def build(
    runtime: ServiceRuntime[RunnerSettings],
    executor: Executor | None = None,
    find_app: Callable[[str], App | None] = get_app,
) -> JobRunner:
    """Wire a runner onto a connected runtime and start it; returns it (tests drive it).

    ``find_app`` is the app registry lookup; tests pass one that also knows test apps.
    """
    settings = runtime.settings
    config = runner_config(settings)
    if executor is None:
        executor = build_executor(settings, config.bin_dir)
    claims = Claims(runtime.collection(CLAIMS), runtime.collection(CANCELS), runtime.collection(FENCES))

    kick = partial(runtime.relay.kick, claims.collection)
    kick_fence = partial(runtime.relay.kick, runtime.collection(FENCES))
    runner = JobRunner(
        config, claims, kick, runtime.bus.publish, executor, find_app=find_app, kick_fence=kick_fence
    )
    runner.subscription = await start_consumers(runtime.bus, runner)
    runtime.spawn(
        run_every(settings.heartbeat_interval_s, runner.send_heartbeat, "heartbeat", first_after_s=0),
        "heartbeat",
    )
    runtime.spawn(
        run_every(settings.cancel_poll_interval_s, runner.apply_recorded_cancels, "cancels"), "cancels"
    )
    runtime.spawn(run_every(SELF_FENCE_CHECK_S, _self_fence_check(runner), "self-fence"), "self-fence")
    runtime.spawn(runner.resume_claims(), "resume")
    return runner


SELF_FENCE_CHECK_S = 1.0


def _self_fence_check(runner: JobRunner) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        runner.check_self_fence()

    return check


class RunnerProcess:
    """The runner's start and drain hooks for :func:`caesar_common.runtime.run_service`.

    ``executor``: built before the service connects anywhere (``__main__`` does), so a
    runner that must not run jobs (a root runner without usable job users) refuses to
    start at once, with the reason, instead of after reaching the broker.
    """

    def __init__(self, executor: Executor | None = None) -> None:
        self.runner: JobRunner | None = None
        self._executor = executor

    async def start(self, runtime: ServiceRuntime[RunnerSettings]) -> None:
        self.runner = await build(runtime, executor=self._executor)

    async def drain(self, runtime: ServiceRuntime[RunnerSettings]) -> None:
        if self.runner is None:
            return
        settings = runtime.settings
        await self.runner.drain(grace_s=settings.shutdown_grace_s, kill_grace_s=settings.kill_grace_s)
        await self.runner.executor.aclose()
