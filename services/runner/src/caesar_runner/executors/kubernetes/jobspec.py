"""The batch/v1 Job of one attempt (pure: a dict, as the API server reads it).

Why it looks the way it does:

* One Job per attempt, named after the job and the attempt, so a restarted runner finds
  the Job it created (by name) instead of creating a second one, and a new attempt finds
  the Jobs of older attempts (by label) to delete them.
* No shell anywhere: each step is a container whose ``command`` is the step's argv.
  The steps before the last are init containers, which the kubelet runs in order and
  stops at the first failure; the last step is the main container. ``backoffLimit: 0``
  and ``restartPolicy: Never``: a failed attempt is the scheduler's to retry, as a new
  attempt with a directory of its own, never the Job controller's.
* The wall time is ``activeDeadlineSeconds``, enforced by the Job controller even while
  no runner is watching.
* The shared data and jobs volumes are mounted at the paths the runner sees, so the
  paths in the argv (the staged input's link, the job directory) mean the same in the
  pod. The data volume is read-only: the staged input is a symlink in the job directory
  to the upload, which the job only reads.
* The pod runs as a fixed non-root uid with a read-only root file system, no
  capabilities, no privilege escalation, the runtime's seccomp profile and no API
  token: a job is untrusted code working on a client's data.
* Label values are limited (63 characters of ``[A-Za-z0-9._-]``): ids that do not fit
  are slugged with a hash, and the exact values go into annotations.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final

from caesar_common.apps.base import Step
from caesar_runner.domain.process import sanitised_environment
from caesar_runner.executors.base import JobSpec

Manifest = dict[str, Any]

MANAGED_BY: Final = "caesar-rest"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_JOB: Final = "caesar-rest.io/job-id"
LABEL_ATTEMPT: Final = "caesar-rest.io/attempt"
LABEL_OWNER: Final = "caesar-rest.io/owner"
LABEL_POOL: Final = "caesar-rest.io/pool"
ANNOTATION_JOB: Final = "caesar-rest.io/job-id"
ANNOTATION_OWNER: Final = "caesar-rest.io/owner"
ANNOTATION_APP: Final = "caesar-rest.io/app"
JOB_NAME_LABELS: Final = ("batch.kubernetes.io/job-name", "job-name")
"""Labels the Job controller puts on a Job's pods (the second is the legacy one)."""

DATA_VOLUME: Final = "data"
JOBS_VOLUME: Final = "jobs"
TMP_VOLUME: Final = "tmp"

_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_HASH_CHARS: Final = 10


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_HASH_CHARS]


def _slug(text: str, allowed: str, limit: int) -> str:
    """``text`` with runs of other characters as ``-``, trimmed to ``limit`` and to alnum ends."""
    slug = re.sub(f"[^{allowed}]+", "-", text)[:limit]
    return slug.strip("-_.")


def label_value(text: str) -> str:
    """``text`` if it is a valid label value, else a readable slug plus a hash of it.

    The hash keeps two texts that slug alike (``a@b`` and ``a.b``) apart, so a selector
    on the value never mixes two owners.
    """
    if _LABEL_VALUE.fullmatch(text):
        return text
    slug = _slug(text, "A-Za-z0-9._-", 63 - _HASH_CHARS - 1)
    return f"{slug}-{_digest(text)}" if slug else _digest(text)


def job_name(job_id: str, attempt: int) -> str:
    """The Job's name: ``caesar-<job_id>-<attempt>``, or a hashed form when that is no DNS label.

    Job ids are lower-case UUIDs, which fit. The name must be a DNS-1123 label (the Job
    controller copies it into a label of the pods), at most 63 characters.
    """
    name = f"caesar-{job_id}-{attempt}"
    if _DNS_LABEL.fullmatch(name):
        return name
    tail = f"-{_digest(job_id)}-{attempt}"
    slug = _slug(job_id.lower(), "a-z0-9", 63 - len("caesar-") - len(tail))
    return f"caesar-{slug}{tail}" if slug else f"caesar{tail}"


def container_name(index: int, step: Step) -> str:
    """``00-bane``: the step's position and name, as the local executor names its logs."""
    prefix = f"{index:02d}"
    slug = _slug(step.name.lower(), "a-z0-9", 63 - len(prefix) - 1)
    return f"{prefix}-{slug}" if slug else prefix


def container_names(steps: Sequence[Step]) -> list[str]:
    return [container_name(index, step) for index, step in enumerate(steps)]


def selector(pool: str) -> dict[str, str]:
    """The labels of every Job (and pod) of a pool: what the executor watches."""
    return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_POOL: label_value(pool)}


def attempt_labels(job_id: str, attempt: int, owner: str, pool: str) -> dict[str, str]:
    return {
        **selector(pool),
        LABEL_JOB: label_value(job_id),
        LABEL_ATTEMPT: str(attempt),
        LABEL_OWNER: label_value(owner),
    }


@dataclass(frozen=True)
class VolumeSettings:
    """A shared volume: a PersistentVolumeClaim mounted where the runner sees it."""

    claim: str
    mount_path: Path
    sub_path: str = ""
    read_only: bool = False


@dataclass(frozen=True)
class PodSettings:
    """What a deployment decides about its job pods (from ``CAESAR_K8S_*``)."""

    namespace: str
    pool: str
    default_image: str
    data: VolumeSettings
    jobs: VolumeSettings
    bin_dir: Path
    images: Mapping[str, str] = field(default_factory=dict)
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    run_as_user: int = 10001
    run_as_group: int = 10001
    fs_group: int | None = 10001
    ttl_after_finished_s: int = 3600
    termination_grace_s: int = 10
    tmp_size_mb: int = 1024
    pod_annotations: Mapping[str, str] = field(default_factory=dict)
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    service_account: str = ""


def app_image(settings: PodSettings, app: str, container_image: str | None) -> str:
    """The image of an app's steps: the deployment's mapping, the app's own, else the default."""
    return settings.images.get(app) or container_image or settings.default_image


def step_image(settings: PodSettings, app: str, container_image: str | None, step: Step) -> str:
    """The image one step runs in.

    A step whose program is under the runner's ``bin_dir`` (the catalogue finalize step)
    is ours: it runs in the default image, which has the service installed there, even
    in the job of a container app.
    """
    image = app_image(settings, app, container_image)
    program = PurePosixPath(step.argv[0])
    if container_image is not None and program.is_relative_to(PurePosixPath(settings.bin_dir)):
        return settings.default_image
    return image


def step_environment(settings: PodSettings, spec: JobSpec, step: Step, image: str) -> dict[str, str]:
    """The local executor's sanitised environment; nothing of the runner's own.

    In a foreign image (a container app) ``PATH`` is left to the image: its tools are
    found on the image's own ``PATH``, which ours would replace.
    """
    env = sanitised_environment(settings.bin_dir, spec.job_dir, step.env)
    if image != settings.default_image:
        env.pop("PATH", None)
    for key in env:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"step {step.name}: invalid environment variable name {key!r}")
    return env


def resources(cores: int, memory_mb: int) -> dict[str, dict[str, str]]:
    """Requests equal to limits: the pod gets exactly what the scheduler counted on."""
    amounts = {"cpu": str(max(1, cores)), "memory": f"{max(1, memory_mb)}Mi"}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _volumes(settings: PodSettings) -> tuple[list[Manifest], list[Manifest]]:
    """The pod's volumes and every container's mounts; one volume per distinct claim."""
    volumes: list[Manifest] = []
    mounts: list[Manifest] = []
    by_claim: dict[str, str] = {}
    for name, volume in ((DATA_VOLUME, settings.data), (JOBS_VOLUME, settings.jobs)):
        if not volume.claim:
            raise ValueError(f"no PersistentVolumeClaim is configured for the {name} volume")
        if volume.claim not in by_claim:
            by_claim[volume.claim] = name
            volumes.append({"name": name, "persistentVolumeClaim": {"claimName": volume.claim}})
        mount: Manifest = {
            "name": by_claim[volume.claim],
            "mountPath": str(volume.mount_path),
            "readOnly": volume.read_only,
        }
        if volume.sub_path:
            mount["subPath"] = volume.sub_path
        mounts.append(mount)
    volumes.append({"name": TMP_VOLUME, "emptyDir": {"sizeLimit": f"{max(1, settings.tmp_size_mb)}Mi"}})
    mounts.append({"name": TMP_VOLUME, "mountPath": "/tmp"})  # noqa: S108 - the pod's own emptyDir
    return volumes, mounts


CONTAINER_SECURITY: Final[Mapping[str, Any]] = {
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
}


def _container(
    settings: PodSettings,
    spec: JobSpec,
    container_image: str | None,
    index: int,
    step: Step,
    mounts: list[Manifest],
) -> Manifest:
    if not step.argv:
        raise ValueError(f"step {step.name} has an empty argv")
    image = step_image(settings, spec.app, container_image, step)
    env = step_environment(settings, spec, step, image)
    return {
        "name": container_name(index, step),
        "image": image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": list(step.argv),
        "workingDir": str(spec.job_dir),
        "env": [{"name": key, "value": value} for key, value in env.items()],
        "resources": resources(spec.cores, spec.memory_mb),
        "securityContext": copy.deepcopy(dict(CONTAINER_SECURITY)),
        "volumeMounts": [dict(mount) for mount in mounts],
        # The kubelet copies the tail of a failed container's log into its status: the
        # reason of a failure survives even where the log API cannot be reached.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _check_paths(settings: PodSettings, spec: JobSpec) -> None:
    """The job directory must be on the jobs volume, or the pod could not see it."""
    jobs_root = settings.jobs.mount_path
    if not spec.job_dir.is_absolute() or not spec.job_dir.is_relative_to(jobs_root):
        raise ValueError(f"job directory {spec.job_dir} is not under the jobs volume {jobs_root}")


def job_manifest(settings: PodSettings, spec: JobSpec, container_image: str | None) -> Manifest:
    """The batch/v1 Job of one attempt; see the module docstring for its choices.

    ``container_image`` is the app's own image (a container app), None for the finders
    installed with the service.

    Raises
    ------
    ValueError
        For an attempt that cannot be expressed as a Job (no steps, a job directory off
        the jobs volume, an unusable environment variable name).
    """
    if not spec.steps:
        raise ValueError("an attempt needs at least one step")
    _check_paths(settings, spec)
    name = job_name(spec.job_id, spec.attempt)
    labels = attempt_labels(spec.job_id, spec.attempt, spec.owner, settings.pool)
    annotations = {ANNOTATION_JOB: spec.job_id, ANNOTATION_OWNER: spec.owner, ANNOTATION_APP: spec.app}
    volumes, mounts = _volumes(settings)
    containers = [
        _container(settings, spec, container_image, i, step, mounts) for i, step in enumerate(spec.steps)
    ]
    pod_security: Manifest = {
        "runAsNonRoot": True,
        "runAsUser": settings.run_as_user,
        "runAsGroup": settings.run_as_group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if settings.fs_group is not None:
        pod_security["fsGroup"] = settings.fs_group
        # Only the volume's root is checked: a recursive chown of the shared volumes at
        # every pod start would take minutes on a large jobs volume.
        pod_security["fsGroupChangePolicy"] = "OnRootMismatch"
    pod_spec: Manifest = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": max(0, settings.termination_grace_s),
        "securityContext": pod_security,
        "containers": containers[-1:],
        "volumes": volumes,
    }
    if len(containers) > 1:
        pod_spec["initContainers"] = containers[:-1]
    if settings.service_account:
        pod_spec["serviceAccountName"] = settings.service_account
    if settings.node_selector:
        pod_spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in settings.tolerations]
    if settings.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": secret} for secret in settings.image_pull_secrets]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": dict(labels),
            "annotations": dict(annotations),
        },
        "spec": {
            "backoffLimit": 0,
            "completions": 1,
            "parallelism": 1,
            "activeDeadlineSeconds": max(1, spec.wall_time_s),
            "ttlSecondsAfterFinished": max(0, settings.ttl_after_finished_s),
            "template": {
                "metadata": {
                    # Ours last: a deployment's extra labels cannot take a pod out of the
                    # executor's watch or put it into another job's.
                    "labels": {**settings.pod_labels, **labels},
                    "annotations": {**settings.pod_annotations, **annotations},
                },
                "spec": pod_spec,
            },
        },
    }
