"""What a Job and its pods mean for an attempt (pure: dicts as the API server returns them).

The Job's own conditions say *whether* and *when* it ended; its pods say *why*: the
exit code of the container that failed, or the eviction, preemption or deletion that
killed a pod that was doing nothing wrong. The Job controller marks a Job ``Failed``
only once its pods are terminal, so the pods read after that moment hold the answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from caesar_common.jobstate import JobState
from caesar_runner.executors.base import Outcome
from caesar_runner.executors.kubernetes.jobspec import (
    ANNOTATION_JOB,
    JOB_NAME_LABELS,
    LABEL_ATTEMPT,
    LABEL_JOB,
    label_value,
)

Obj = Mapping[str, Any]

ERROR_LINE_MAX: Final = 300
STARTED_PHASES: Final = frozenset({"Running", "Succeeded", "Failed"})


@dataclass(frozen=True)
class Finished:
    """The Job's terminal condition (``Complete`` or ``Failed``)."""

    kind: str
    reason: str
    message: str
    at: datetime | None


def _status(obj: Obj) -> Obj:
    status = obj.get("status")
    return status if isinstance(status, Mapping) else {}


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 time of the API (``2026-11-30T20:00:00Z``), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def name_of(obj: Obj) -> str:
    return str(_meta(obj).get("name", ""))


def is_deleting(obj: Obj) -> bool:
    return bool(_meta(obj).get("deletionTimestamp"))


def finished(job: Obj) -> Finished | None:
    """The Job's ``Complete`` or ``Failed`` condition when it is true, else None.

    ``FailureTarget`` and ``SuccessCriteriaMet`` come earlier, while pods may still be
    terminating: the attempt has ended only with the final condition.
    """
    for cond in _status(job).get("conditions") or ():
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return Finished(
                str(cond["type"]),
                str(cond.get("reason") or ""),
                str(cond.get("message") or ""),
                parse_time(cond.get("lastTransitionTime")),
            )
    return None


def elapsed_s(job: Obj) -> float | None:
    """Run time from the Job's start to its end (queue time before the Job started is not)."""
    status = _status(job)
    start = parse_time(status.get("startTime"))
    done = finished(job)
    end = parse_time(status.get("completionTime")) or (done.at if done else None)
    if start is None or end is None or end < start:
        return None
    return (end - start).total_seconds()


def job_name_of_pod(pod: Obj) -> str | None:
    labels = _meta(pod).get("labels") or {}
    for key in JOB_NAME_LABELS:
        if labels.get(key):
            return str(labels[key])
    return None


def _container_statuses(pod: Obj) -> list[Obj]:
    status = _status(pod)
    return [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]


def has_started(job: Obj, pods: Iterable[Obj]) -> bool:
    """True once a container of the attempt runs (or ran), or the Job has ended.

    A pod stays ``Pending`` while its init containers run, so the first step running is
    seen in the container statuses, not the phase.
    """
    if finished(job) is not None:
        return True
    for pod in pods:
        if _status(pod).get("phase") in STARTED_PHASES:
            return True
        for container in _container_statuses(pod):
            state = container.get("state") or {}
            if "running" in state or "terminated" in state:
                return True
    return False


def last_line(text: str) -> str:
    """The last non-blank line of ``text``, bounded (for a reason the user sees)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:ERROR_LINE_MAX] if lines else ""


@dataclass(frozen=True)
class FailedContainer:
    index: int
    container: str
    exit_code: int
    reason: str
    message: str


def failed_container(pods: Iterable[Obj], containers: Sequence[str]) -> FailedContainer | None:
    """The first container (in step order) that terminated with a non-zero exit code."""
    found: list[FailedContainer] = []
    for pod in pods:
        for status in _container_statuses(pod):
            terminated = (status.get("state") or {}).get("terminated") or {}
            code = terminated.get("exitCode")
            name = str(status.get("name", ""))
            if isinstance(code, int) and code != 0 and name in containers:
                found.append(
                    FailedContainer(
                        containers.index(name),
                        name,
                        code,
                        str(terminated.get("reason") or ""),
                        str(terminated.get("message") or ""),
                    )
                )
    return min(found, key=lambda f: f.index) if found else None


def disruption(pod: Obj, *, job_deleting: bool = False) -> str | None:
    """Why a pod was killed from outside (eviction, preemption, a lost node, a deletion).

    None when nothing but the job itself ended it. A pod being deleted along with its
    Job (TTL, cancel) is not a disruption of the attempt.
    """
    status = _status(pod)
    target = next(
        (
            cond
            for cond in status.get("conditions") or ()
            if cond.get("type") == "DisruptionTarget" and cond.get("status") == "True"
        ),
        None,
    )
    if status.get("phase") == "Failed" and status.get("reason"):
        # The kubelet sets a pod's reason only for its own verdicts (Evicted, OutOfcpu,
        # NodeAffinity, NodeShutdown...), never for a container's failure.
        message = status.get("message")
        said = f"{status['reason']}: {message}" if message else str(status["reason"])
        return f"{said} ({target.get('reason')})" if target and target.get("reason") else said
    if target is not None:
        detail = target.get("reason") or "DisruptionTarget"
        message = target.get("message")
        return f"{detail}: {message}" if message else str(detail)
    if is_deleting(pod) and not job_deleting:
        return "the pod was deleted"
    return None


def outcome_of(
    job: Obj,
    pods: Sequence[Obj],
    *,
    containers: Sequence[str],
    step_names: Sequence[str],
    wall_time_s: int,
    memory_mb: int,
) -> Outcome | None:
    """Our terminal state for the Job of an attempt, or None while it has not ended.

    ``containers`` are the Job's container names in step order and ``step_names`` the
    steps' names (same order), to name the step that failed.
    """
    done = finished(job)
    if done is None:
        return None
    if done.kind == "Complete":
        return Outcome(JobState.SUCCESS, 0, "")
    if done.reason == "DeadlineExceeded":
        return Outcome(JobState.TIMED_OUT, None, f"wall time of {wall_time_s} s exceeded")
    job_deleting = is_deleting(job)
    for pod in pods:
        why = disruption(pod, job_deleting=job_deleting)
        if why is not None:
            return Outcome(
                JobState.FAILURE, None, f"pod {name_of(pod)} was disrupted ({why}): a system failure", True
            )
    failed = failed_container(pods, containers)
    if failed is not None:
        step = step_names[failed.index] if failed.index < len(step_names) else failed.container
        if failed.reason == "OOMKilled":
            reason = f"step {step} ran out of memory: the {memory_mb} MB limit was exceeded"
        else:
            reason = f"step {step} (container {failed.container}) exited with code {failed.exit_code}"
            said = last_line(failed.message)
            if said:
                reason += f": {said}"
        return Outcome(JobState.FAILURE, failed.exit_code, reason)
    detail = f"{done.reason}: {done.message}" if done.message else done.reason or "no reason given"
    return Outcome(
        JobState.FAILURE, None, f"the Kubernetes Job failed with no container exit code ({detail})", True
    )


CANNOT_START: Final = frozenset({"ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError"})
"""Waiting reasons no amount of waiting cures (a deployment's mistake)."""
PULLING: Final = frozenset({"ErrImagePull", "ImagePullBackOff"})
"""Waiting reasons a registry outage can cause: given a grace before the attempt fails."""


@dataclass(frozen=True)
class Stuck:
    """A container that waits to start for a reason of the cluster, not of the job."""

    index: int
    container: str
    reason: str
    message: str

    @property
    def hopeless(self) -> bool:
        return self.reason in CANNOT_START


def stuck_container(pods: Iterable[Obj], containers: Sequence[str]) -> Stuck | None:
    """The first container (in step order) waiting for an image or a config that fails."""
    found: list[Stuck] = []
    for pod in pods:
        if is_deleting(pod):
            continue
        for status in _container_statuses(pod):
            waiting = (status.get("state") or {}).get("waiting") or {}
            reason = str(waiting.get("reason") or "")
            name = str(status.get("name", ""))
            if reason in CANNOT_START | PULLING and name in containers:
                found.append(Stuck(containers.index(name), name, reason, str(waiting.get("message") or "")))
    return min(found, key=lambda f: f.index) if found else None


def attempt_of(job: Obj, job_id: str) -> int | None:
    """The attempt number of one of ``job_id``'s Jobs, or None for any other Job."""
    meta = _meta(job)
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    if labels.get(LABEL_JOB) != label_value(job_id):
        return None
    if annotations.get(ANNOTATION_JOB, job_id) != job_id:
        return None  # another job whose id hashed alike
    try:
        return int(labels.get(LABEL_ATTEMPT, ""))
    except ValueError:
        return None


def stale_attempts(jobs: Iterable[Obj], job_id: str, attempt: int) -> list[str]:
    """Names of the live Jobs of older attempts of this job: a new attempt supersedes them."""
    stale = []
    for job in jobs:
        older = attempt_of(job, job_id)
        if older is not None and older < attempt and finished(job) is None and not is_deleting(job):
            stale.append(name_of(job))
    return sorted(stale)
