"""Runner settings (``CAESAR_*`` environment variables)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from caesar_common.settings import ServiceSettings
from caesar_runner.domain.jobusers import UidRange


def _default_runner_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class RunnerSettings(ServiceSettings):
    http_port: int = Field(8082, title="HTTP port (health, readiness, metrics)")
    pool: str = Field(
        "", title="Executor pool this runner serves (its command queue is runner.<pool>); default: executor"
    )
    slots: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), title="Jobs run at the same time")
    runner_id: str = Field(default_factory=_default_runner_id, title="Unique id of this runner process")
    heartbeat_interval_s: float = Field(5.0, title="Heartbeat period")
    cancel_poll_interval_s: float = Field(1.0, title="How often running jobs are checked for cancels")
    shutdown_grace_s: float = Field(
        60.0,
        title="SIGTERM grace for running jobs",
        description="How long running jobs may finish at shutdown before they are handed back for retry.",
    )
    kill_grace_s: float = Field(10.0, title="SIGTERM to SIGKILL delay when stopping a job")
    self_fence_s: float = Field(
        20.0,
        title="Stop running jobs after this long without a heartbeat sent or the database reached",
        description="Shorter than the monitor's runner timeout (30 s by default): a runner cut off "
        "from the broker or the database stops its local jobs (reported retryable once it can) "
        "before the monitor gives up on it and the scheduler starts the next attempt elsewhere. "
        "Executors whose jobs outlive the runner (Slurm) are not fenced this way.",
    )
    fence_poll_interval_s: float = Field(
        2.0, title="How often a running attempt checks that no later attempt of its job has started"
    )
    record_running_timeout_s: float = Field(
        30.0, title="How long recording RUNNING may be retried before the job's processes are killed"
    )
    max_open_files: int = Field(4096, title="RLIMIT_NOFILE of job processes")
    max_file_size_bytes: int = Field(64 * 2**30, title="RLIMIT_FSIZE of job processes")
    # -- job users (local executor, runner started as root) ------------------------------
    job_uids: str = Field(
        "60600-60727",
        title="Numeric uids (first-last) a root runner runs jobs as, one per running attempt",
        description="Used only when the runner runs as root: each attempt runs as a uid of this "
        "range that no other attempt on the host holds, with the job group as its only group, "
        "so a job can read its input and write its attempt directory and nothing of other "
        "jobs, uploads or the service. The uids need no passwd entries; a uid that is a real "
        "account (primary group other than the job group) makes the runner refuse to start. "
        "Runners of one host may share the range (uids are locked host-wide); it needs at "
        "least as many uids as slots.",
    )
    job_group: str = Field(
        "caesar-job",
        title="Group of the job users (must exist: scripts/jobuser.sh creates it)",
    )
    job_users_state_dir: Path = Field(
        Path("/var/lib/caesar-runner/job-users"),
        title="Host-local directory of the job users' locks and hand-over records (root only)",
        description="Must be on local disk and the same for every runner of the host.",
    )
    jobs_run_as_runner: bool = Field(
        False,
        title="UNSAFE: run jobs as the runner's own user even when the runner is root",
        description="Only for a host where no job users can be set up and every client is "
        "trusted: a job running as root can read every upload and secret and take the host.",
    )
    executor: Literal["local", "slurm", "kubernetes"] = Field(
        "local",
        title="Executor kind",
        description="How jobs run: local processes, Slurm batch jobs through slurmrestd, or "
        "Kubernetes Jobs. The pool defaults to the executor kind (k8s for kubernetes).",
    )
    # -- Slurm executor (executor=slurm) ---------------------------------------------------
    slurm_url: str = Field("http://127.0.0.1:6820", title="slurmrestd base URL")
    slurm_api_version: str = Field("v0.0.38", title="slurmrestd OpenAPI version (22.05: v0.0.38)")
    slurm_user: str = Field(
        "",
        title="Slurm user the jobs run as (X-SLURM-USER-NAME)",
        description="Required with executor=slurm, and no default: jobs must never run as root "
        "because a setting was forgotten.",
    )
    slurm_token: SecretStr = Field(SecretStr(""), title="JWT for slurmrestd (scontrol token)")
    slurm_token_file: Path | None = Field(
        None, title="File holding the JWT; re-read when it changes (takes precedence over slurm_token)"
    )
    slurm_partition: str = Field("", title="Partition to submit to (empty: the cluster's default)")
    slurm_account: str = Field("", title="Account to charge (empty: the user's default)")
    slurm_poll_interval_s: float = Field(2.0, title="Job state poll period (one listing for all jobs)")
    slurm_max_poll_interval_s: float = Field(30.0, title="Poll period ceiling while backing off")
    slurm_unavailable_grace_s: float = Field(
        600.0, title="How long slurmrestd may fail before running jobs are failed (retryable)"
    )

    # -- Kubernetes executor (executor=kubernetes) -----------------------------------------
    k8s_kubeconfig: Path | None = Field(
        None, title="kubeconfig file of the runner (unset: the pod's own service account, in-cluster)"
    )
    k8s_context: str = Field("", title="Context of the kubeconfig to use (empty: its current context)")
    k8s_namespace: str = Field(
        "", title="Namespace of the job pods (empty: the kubeconfig's, or the runner pod's own)"
    )
    k8s_default_image: str = Field(
        "",
        title="Image of the installed finders' jobs (the runner's own image)",
        description="Required with executor=kubernetes: the apps installed with the service "
        "(aegean, bdsf, sfind) run from it, at the same bin_dir as in the runner.",
    )
    k8s_images: dict[str, str] = Field(
        default_factory=dict,
        title="Image per app (JSON object), overriding the default image and a container app's own",
    )
    k8s_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", title="imagePullPolicy of the job containers"
    )
    k8s_image_pull_secrets: list[str] = Field(
        default_factory=list, title="Names of the Secrets the job pods pull images with (JSON list)"
    )
    k8s_data_claim: str = Field("caesar-data", title="PersistentVolumeClaim of the uploads (data_root)")
    k8s_data_sub_path: str = Field("", title="subPath of the uploads in their claim (empty: its root)")
    k8s_jobs_claim: str = Field(
        "caesar-jobs", title="PersistentVolumeClaim of the job directories (jobs_root)"
    )
    k8s_jobs_sub_path: str = Field(
        "", title="subPath of the job directories in their claim (empty: its root)"
    )
    k8s_run_as_user: int = Field(
        10001, ge=1, title="uid of the job pods (the runner's own, so it can read the outputs)"
    )
    k8s_run_as_group: int = Field(10001, ge=0, title="gid of the job pods")
    k8s_fs_group: int | None = Field(10001, ge=0, title="fsGroup of the job pods (unset: none)")
    k8s_ttl_after_finished_s: int = Field(
        3600,
        ge=0,
        title="How long a finished Job is kept (ttlSecondsAfterFinished)",
        description="Longer than a runner restart takes: a restarted runner learns the outcome "
        "from the Job; a Job gone before that is reported as a retryable failure.",
    )
    k8s_tmp_size_mb: int = Field(1024, ge=1, title="Size limit of the pods' /tmp (emptyDir)")
    k8s_pod_annotations: dict[str, str] = Field(
        default_factory=dict, title="Extra annotations of the job pods (JSON object)"
    )
    k8s_pod_labels: dict[str, str] = Field(
        default_factory=dict, title="Extra labels of the job pods (JSON object)"
    )
    k8s_node_selector: dict[str, str] = Field(
        default_factory=dict, title="nodeSelector of the job pods (JSON object)"
    )
    k8s_tolerations: list[dict[str, Any]] = Field(
        default_factory=list, title="Tolerations of the job pods (JSON list of toleration objects)"
    )
    k8s_service_account: str = Field(
        "",
        title="ServiceAccount of the job pods (empty: the namespace's default; its token is never mounted)",
    )
    k8s_unavailable_grace_s: float = Field(
        600.0, title="How long the Kubernetes API may fail before running jobs are failed (retryable)"
    )
    k8s_backoff_s: float = Field(1.0, gt=0, title="First retry delay while the Kubernetes API fails")
    k8s_max_backoff_s: float = Field(30.0, gt=0, title="Retry delay ceiling while the Kubernetes API fails")
    k8s_watch_timeout_s: int = Field(240, ge=1, title="Server-side timeout of one watch request")
    k8s_log_timeout_s: float = Field(10.0, ge=0, title="Time allowed to copy a finished job's pod logs")
    k8s_image_pull_grace_s: float = Field(
        300.0,
        ge=0,
        title="How long a job's image may fail to pull before the attempt fails",
        description="An image that can never start (an invalid name, a missing Secret) fails "
        "the attempt at once; a pull error may be a registry outage and gets this grace.",
    )

    @field_validator("job_uids")
    @classmethod
    def _uid_range(cls, value: str) -> str:
        """A malformed range fails at start, whether or not the runner is root."""
        return str(UidRange.parse(value))

    @model_validator(mode="after")
    def _slurm_defaults(self) -> RunnerSettings:
        """A Slurm runner serves ``runner.slurm`` and keeps its id unless told otherwise."""
        if not self.pool:
            self.pool = "k8s" if self.executor == "kubernetes" else self.executor
        if self.executor == "kubernetes" and not self.k8s_default_image:
            raise ValueError("CAESAR_K8S_DEFAULT_IMAGE is required with the kubernetes executor")
        if self.executor == "kubernetes" and "runner_id" not in self.model_fields_set:
            # Stable across restarts, as for Slurm: a restarted runner resumes its Jobs.
            self.runner_id = f"{socket.gethostname()}-k8s"
        if self.executor == "slurm" and not self.slurm_user:
            raise ValueError("CAESAR_SLURM_USER is required with the slurm executor (there is no default)")
        if self.executor == "slurm" and "runner_id" not in self.model_fields_set:
            # Stable across restarts (not host-pid): a restarted Slurm runner finds the
            # claims of the jobs it left running on the cluster and resumes them.
            self.runner_id = f"{socket.gethostname()}-slurm"
        return self
