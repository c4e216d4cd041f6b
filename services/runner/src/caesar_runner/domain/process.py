"""How a job process is launched: environment, resource limits, outcome (pure)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from caesar_common.jobstate import JobState


def sanitised_environment(bin_dir: Path, job_dir: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """A minimal environment: nothing inherited from the runner, nothing from the client.

    ``extra`` comes from the app module (e.g. ``OMP_NUM_THREADS``), never from a request.
    """
    env = {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(job_dir),
        "TMPDIR": str(job_dir / "tmp"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
    }
    env.update(extra)
    return env


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int
    open_files: int
    file_size_bytes: int


def limited_argv(argv: Sequence[str], limits: Limits) -> list[str]:
    """Wrap ``argv`` so the kernel enforces limits and kills the job if the runner dies.

    ``setpriv --pdeathsig KILL`` ties the job to the runner (no orphan keeps running
    after a runner crash) and ``prlimit`` sets the limits; both exec the next program,
    so no shell is involved and the app keeps the pid we report.
    """
    return [
        "setpriv",
        "--pdeathsig",
        "KILL",
        "--",
        "prlimit",
        f"--cpu={limits.cpu_seconds}",
        f"--nofile={limits.open_files}",
        f"--fsize={limits.file_size_bytes}",
        "--core=0",
        "--",
        *argv,
    ]


def exit_code_of(wait_status: int) -> int:
    """Exit code, or minus the signal number for a process killed by a signal."""
    return os.waitstatus_to_exitcode(wait_status)


def outcome_of(exit_code: int) -> JobState:
    return JobState.SUCCESS if exit_code == 0 else JobState.FAILURE
