"""The executor a runner process uses, chosen by ``CAESAR_EXECUTOR``.

The one place that maps an executor name to its construction from settings; everything
else asks the executor what it can do (:class:`~caesar_runner.executors.base.Executor`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from caesar_runner.adapters.jobuser_setup import job_users_for
from caesar_runner.adapters.slurmrestd import SlurmRestClient, TokenSource, api_version
from caesar_runner.executors.base import Executor
from caesar_runner.executors.local import LocalExecutor
from caesar_runner.executors.slurm import SlurmExecutor
from caesar_runner.settings import RunnerSettings


def _local(settings: RunnerSettings, bin_dir: Path) -> Executor:
    return LocalExecutor(
        bin_dir,
        slots=settings.slots,
        kill_grace_s=settings.kill_grace_s,
        max_open_files=settings.max_open_files,
        max_file_size_bytes=settings.max_file_size_bytes,
        fence_s=settings.self_fence_s,
        job_users=job_users_for(settings, bin_dir),
    )


def _slurm(settings: RunnerSettings, bin_dir: Path) -> Executor:
    tokens = TokenSource(settings.slurm_token.get_secret_value(), settings.slurm_token_file)
    client = SlurmRestClient(
        settings.slurm_url, api_version(settings.slurm_api_version), settings.slurm_user, tokens
    )
    return SlurmExecutor(
        client,
        bin_dir,
        partition=settings.slurm_partition,
        account=settings.slurm_account,
        poll_interval_s=settings.slurm_poll_interval_s,
        max_poll_interval_s=settings.slurm_max_poll_interval_s,
        unavailable_grace_s=settings.slurm_unavailable_grace_s,
    )


def _kubernetes(settings: RunnerSettings, bin_dir: Path) -> Executor:
    # Imported here: lightkube is needed only by runners of this executor.
    from caesar_runner.executors.kubernetes.factory import kubernetes_executor

    return kubernetes_executor(settings, bin_dir)


EXECUTORS: dict[str, Callable[[RunnerSettings, Path], Executor]] = {
    "local": _local,
    "slurm": _slurm,
    "kubernetes": _kubernetes,
}


def build_executor(settings: RunnerSettings, bin_dir: Path) -> Executor:
    """The executor named by the settings (the settings class already refused others).

    Raises :class:`~caesar_runner.adapters.jobuser_setup.JobUsersUnusable` when a root
    runner cannot run its local jobs as job users: it must not start then.
    """
    return EXECUTORS[settings.executor](settings, bin_dir)
