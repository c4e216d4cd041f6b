"""How a job process is launched: environment, resource limits, outcome (pure)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from caesar_common.jobstate import JobState
from caesar_common.layout import JOB_TMP_DIR
from caesar_runner.domain.jobusers import JobUser, setpriv_user_options


def sanitised_environment(bin_dir: Path, job_dir: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """A minimal environment: nothing inherited from the runner, nothing from the client.

    ``extra`` comes from the app module (e.g. ``OMP_NUM_THREADS``), never from a request.
    ``HOME`` is the job's private scratch directory, like ``TMPDIR``: the ``.cache/`` and
    ``.config/`` that matplotlib and astropy create there are not outputs of the job, and
    neither the manifest nor the archive carries them.
    """
    scratch = job_dir / JOB_TMP_DIR
    env = {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
    }
    env.update(extra)
    return env


# Address-space limit: virtual memory is far larger than what a process touches
# (thread stacks, malloc arenas, mapped libraries), so the limit is a multiple of the
# app's memory hint with a floor: it stops a runaway allocation from taking the host
# down, not a finder that is merely hungry.
ADDRESS_SPACE_FACTOR = 4
MIN_ADDRESS_SPACE_BYTES = 8 * 2**30
# Job directories: the owner (the service account) only, plus its group for reading
# outputs (the api may run under another uid in the same group); never others.
JOB_DIR_MODE = 0o750
JOB_TMP_MODE = 0o700


def address_space_bytes(memory_mb: int) -> int:
    """The ``RLIMIT_AS`` for a job whose app hinted ``memory_mb``: generous headroom."""
    return max(MIN_ADDRESS_SPACE_BYTES, ADDRESS_SPACE_FACTOR * max(0, memory_mb) * 2**20)


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int
    open_files: int
    file_size_bytes: int
    address_space_bytes: int | None = None


def limited_argv(argv: Sequence[str], limits: Limits, user: JobUser | None = None) -> list[str]:
    """Wrap ``argv`` so the kernel enforces limits and kills the job if the runner dies.

    ``setpriv --pdeathsig KILL`` ties the job to the runner (no orphan keeps running
    after a runner crash) and ``prlimit`` sets the limits; both exec the next program,
    so no shell is involved and the app keeps the pid we report. With a ``user`` (a root
    runner), ``setpriv`` also becomes that job user before anything of the job runs.
    """
    return [
        "setpriv",
        *(setpriv_user_options(user) if user is not None else []),
        "--pdeathsig",
        "KILL",
        "--",
        "prlimit",
        f"--cpu={limits.cpu_seconds}",
        f"--nofile={limits.open_files}",
        f"--fsize={limits.file_size_bytes}",
        *([f"--as={limits.address_space_bytes}"] if limits.address_space_bytes else []),
        "--core=0",
        "--",
        *argv,
    ]


def exit_code_of(wait_status: int) -> int:
    """Exit code, or minus the signal number for a process killed by a signal."""
    return os.waitstatus_to_exitcode(wait_status)


def outcome_of(exit_code: int) -> JobState:
    return JobState.SUCCESS if exit_code == 0 else JobState.FAILURE
