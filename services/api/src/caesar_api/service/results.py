"""Use case of job outputs: the files a finished job left, found through its manifest.

The v1 and v2 routes answer a job that has not ended differently (v1: 202 with the
state, v2: 409), so this module reports the fact and leaves the wording to them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from caesar_api.adapters.job_files import load_manifest
from caesar_api.domain.errors import ApiError
from caesar_api.service.jobs import owned_job
from caesar_api.service.ports import JobStore
from caesar_common.jobstate import JobState, is_terminal
from caesar_common.layout import JobManifest, attempt_dir, legacy_outputs, manifest_path
from caesar_common.store import Document


@dataclass(frozen=True)
class JobOutputs:
    """A job with its directory and manifest (``None``: it ended without outputs)."""

    job: Document
    job_dir: Path
    manifest: JobManifest | None

    @property
    def job_id(self) -> str:
        return str(self.job["_id"])

    @property
    def state(self) -> str:
        return str(self.job["state"])


class JobNotEnded(Exception):
    """The job is still on its way: outputs are not there yet."""

    def __init__(self, job: Document) -> None:
        super().__init__(job["_id"])
        self.job = job


def job_dir(jobs_root: Path, job: Document) -> Path:
    """The directory of the attempt whose outcome the job shows (blocking: call in a thread).

    Each attempt writes its own directory, so the files served always belong to the
    outcome shown, never to a slower attempt that was superseded (``result_attempt``:
    the earlier attempt whose outcome closed the job when its retry was withdrawn). Jobs that ran before
    per-attempt directories kept their files in the job directory itself.
    """
    owner, job_id = str(job["owner"]), str(job["_id"])
    shown = job.get("result_attempt") or job.get("attempt") or 1
    current = attempt_dir(jobs_root, owner, job_id, int(shown))
    if current.is_dir():
        return current
    legacy = legacy_outputs(jobs_root, owner, job_id)
    return legacy if manifest_path(legacy).is_file() else current


async def ended_job(
    jobs: JobStore, jobs_root: Path, owner: str, job_id: str, *, admin: bool = False
) -> tuple[Document, Path]:
    """The caller's job and its directory once it has ended; :class:`JobNotEnded` before."""
    job = await owned_job(jobs, owner, job_id, admin=admin)
    if job.get("deleted_at") is not None:
        # v2 DELETE removed the outputs and kept the record: gone for good, not "not found".
        raise ApiError(410, f"Job {job['_id']} was deleted: its outputs were removed")
    if not is_terminal(JobState(job["state"])):
        raise JobNotEnded(job)
    return job, await asyncio.to_thread(job_dir, jobs_root, job)


async def job_outputs(
    jobs: JobStore, jobs_root: Path, owner: str, job_id: str, *, admin: bool = False
) -> JobOutputs:
    """The caller's ended job with its manifest; :class:`JobNotEnded` while it runs."""
    job, directory = await ended_job(jobs, jobs_root, owner, job_id, admin=admin)
    manifest = await asyncio.to_thread(load_manifest, directory)
    return JobOutputs(job, directory, manifest)
