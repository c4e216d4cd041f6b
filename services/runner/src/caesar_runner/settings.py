"""Runner settings (``CAESAR_*`` environment variables)."""

from __future__ import annotations

import os
import socket

from pydantic import Field

from caesar_common.settings import ServiceSettings


def _default_runner_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class RunnerSettings(ServiceSettings):
    http_port: int = Field(8082, title="HTTP port (health, readiness, metrics)")
    pool: str = Field("local", title="Executor pool this runner serves (its command queue is runner.<pool>)")
    slots: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), title="Jobs run at the same time")
    runner_id: str = Field(default_factory=_default_runner_id, title="Unique id of this runner process")
    heartbeat_interval_s: float = Field(5.0, title="Heartbeat period")
    cancel_poll_interval_s: float = Field(1.0, title="How often running jobs are checked for cancels")
    kill_grace_s: float = Field(10.0, title="SIGTERM to SIGKILL delay when stopping a job")
    max_open_files: int = Field(4096, title="RLIMIT_NOFILE of job processes")
    max_file_size_bytes: int = Field(64 * 2**30, title="RLIMIT_FSIZE of job processes")
