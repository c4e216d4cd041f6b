"""One plain async function per message the runner consumes."""

from __future__ import annotations

from caesar_common.events import Envelope, JobCancelRequested, RunJob
from caesar_common.message_router import HandlerTable
from caesar_runner.service.attempts import JobRunner


async def on_run_job(message: RunJob, envelope: Envelope, runner: JobRunner) -> None:
    """Claim the attempt (before the command is acked) and start it."""
    await runner.start_attempt(message)


async def on_cancel_requested(message: JobCancelRequested, envelope: Envelope, runner: JobRunner) -> None:
    await runner.cancel(message.job_id)


HANDLERS: HandlerTable[JobRunner] = {
    RunJob: on_run_job,
    JobCancelRequested: on_cancel_requested,
}
