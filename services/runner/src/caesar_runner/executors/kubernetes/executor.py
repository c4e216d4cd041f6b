"""Runs each attempt as a Kubernetes batch/v1 Job (``CAESAR_EXECUTOR=kubernetes``).

Why it looks the way it does:

* The Job's name and labels identify the job and attempt (:mod:`.jobspec`): a
  restarted runner finds the Job it created and follows it instead of creating a second
  one, and a new attempt deletes the live Jobs of older attempts first.
* The Job is written to the attempt directory (``k8s-job.json``) before it is created.
  A runner that finds that file but no Job knows the Job existed and is gone (its TTL
  expired, or it was deleted) and reports a retryable failure rather than running the
  attempt twice.
* One shared list+watch of the pool's Jobs and Pods (:mod:`.watcher`) tells every
  running attempt about its Job; no attempt polls.
* A user's cancel deletes the Job (the garbage collector deletes its pods). Cancelling
  the runner's task (runner shutdown) leaves the Job running: the next runner process
  picks it up.
* While the API server is unreachable the attempt keeps waiting for a grace period,
  then fails retryable; the Job itself runs on, and the next attempt deletes it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

from lightkube import AsyncClient
from lightkube.core.client import LabelSelector
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod
from lightkube.types import CascadeType
from prometheus_client import Counter

from caesar_common.apps.base import ContainerApp
from caesar_common.apps.registry import get_app
from caesar_common.jobstate import JobState
from caesar_common.logging import get_logger
from caesar_runner.executors.base import ExecutionResult, JobSpec, Outcome, StartedCallback
from caesar_runner.executors.kubernetes.errors import (
    HTTPError,
    KubeForbidden,
    KubeUnavailable,
    is_transient,
    status_code,
)
from caesar_runner.executors.kubernetes.jobspec import (
    JOB_NAME_LABELS,
    LABEL_JOB,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    Manifest,
    PodSettings,
    container_names,
    job_manifest,
    job_name,
    label_value,
    selector,
)
from caesar_runner.executors.kubernetes.outcome import (
    Stuck,
    elapsed_s,
    failed_container,
    finished,
    has_started,
    last_line,
    name_of,
    outcome_of,
    stale_attempts,
    stuck_container,
)
from caesar_runner.executors.kubernetes.watcher import ClusterView
from caesar_runner.executors.local import last_error_line, open_new_log, prepare_job_dir, step_log

log = get_logger(__name__)

K8S_AUTH_FAILURES = Counter(
    "caesar_k8s_auth_failures_total",
    "Kubernetes API requests refused for the runner's credentials or RBAC (401/403)",
)

JOB_FILE: Final = "k8s-job.json"
LOG_STREAM: Final = "output"
"""Pod logs mix stdout and stderr: ``00-bane.output.log``."""
MAX_LOG_BYTES: Final = 16 * 2**20


@dataclass(frozen=True)
class _Created:
    at: float
    """When the Job was known to exist (monotonic)."""


@dataclass(frozen=True)
class _Ended:
    outcome: Outcome


def container_image_of(app_name: str) -> str | None:
    """The app's own image for a container app, None for the finders installed with us."""
    app = get_app(app_name)
    return app.container_image if isinstance(app, ContainerApp) else None


class KubernetesExecutor:
    """The ``k8s`` executor: one batch/v1 Job per attempt, followed by a shared watch."""

    kind = "k8s"
    reattaches = True  # a restarted runner follows the Jobs it created (JobRunner.resume_claims)

    def __init__(
        self,
        client: AsyncClient,
        settings: PodSettings,
        *,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        unavailable_grace_s: float = 600.0,
        watch_timeout_s: int = 240,
        log_timeout_s: float = 10.0,
        image_pull_grace_s: float = 300.0,
    ) -> None:
        self.pool = settings.pool or self.kind
        self._client = client
        self._settings = settings
        self.namespace = settings.namespace
        self._backoff = backoff_s
        self._max_backoff = max_backoff_s
        self._grace = unavailable_grace_s
        self._log_timeout = log_timeout_s
        self._pull_grace = image_pull_grace_s
        self.view = ClusterView(
            client,
            settings.namespace,
            selector(self.pool),
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
            watch_timeout_s=watch_timeout_s,
        )

    # -- one attempt --------------------------------------------------------------------

    async def run(self, spec: JobSpec, on_started: StartedCallback, cancel: asyncio.Event) -> ExecutionResult:
        t0 = time.monotonic()
        name = job_name(spec.job_id, spec.attempt)
        try:
            manifest = job_manifest(self._settings, spec, container_image_of(spec.app))
        except ValueError as exc:
            return self._result(
                t0, Outcome(JobState.FAILURE, None, f"no Kubernetes Job for this attempt: {exc}")
            )
        self.view.start()
        try:
            found = await self._find_or_create(spec, name, manifest, cancel)
        except KubeForbidden as exc:
            return self._result(t0, self._forbidden(str(exc)))
        except KubeUnavailable as exc:
            reason = f"could not create the Kubernetes Job: {exc}"
            return self._result(t0, Outcome(JobState.FAILURE, None, reason, True))
        except HTTPError as exc:
            reason = f"Kubernetes rejected the Job ({status_code(exc)}): {exc}"
            return self._result(t0, Outcome(JobState.FAILURE, None, reason))
        if isinstance(found, _Ended):
            return self._result(t0, found.outcome)
        return await self._follow(spec, name, found.at, on_started, cancel, t0)

    def _forbidden(self, detail: str) -> Outcome:
        K8S_AUTH_FAILURES.inc()
        log.error("the Kubernetes API refused the runner: check its ServiceAccount and Role", error=detail)
        return Outcome(
            JobState.FAILURE, None, f"the Kubernetes API refused the runner's credentials: {detail}"
        )

    async def _find_or_create(
        self, spec: JobSpec, name: str, manifest: Manifest, cancel: asyncio.Event
    ) -> _Created | _Ended:
        """The Job of this attempt: an existing one (restart) or a new one.

        Retries while the API server is unreachable or overloaded, for up to the grace
        period; after a failed create it looks again before creating, since the create
        may have been stored even though the answer did not reach us.
        """
        deadline = time.monotonic() + self._grace
        delay = self._backoff
        labels: LabelSelector = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_JOB: label_value(spec.job_id)}
        while True:
            try:
                jobs = [
                    job.to_dict()
                    async for job in self._client.list(Job, namespace=self.namespace, labels=labels)
                ]
                for stale in stale_attempts(jobs, spec.job_id, spec.attempt):
                    log.info(
                        "deleting the Kubernetes Job of an older attempt", job_id=spec.job_id, k8s_job=stale
                    )
                    await self._delete(stale)
                if any(name_of(job) == name for job in jobs):
                    log.info("found the Kubernetes Job of this attempt", job_id=spec.job_id, k8s_job=name)
                    return _Created(time.monotonic())
                if await asyncio.to_thread((spec.job_dir / JOB_FILE).exists):
                    reason = (
                        f"the Kubernetes Job {name} is gone "
                        "(deleted, or its TTL expired before its end was seen)"
                    )
                    return _Ended(Outcome(JobState.FAILURE, None, reason, True))
                if cancel.is_set() or (
                    spec.before_step is not None and not await asyncio.to_thread(spec.before_step)
                ):
                    return _Ended(Outcome(JobState.CANCELED, None, "canceled by the user"))
                try:
                    await asyncio.to_thread(_prepare_dir, spec.job_dir, manifest)
                except OSError as exc:
                    reason = f"the attempt directory is not usable: {exc}"
                    return _Ended(Outcome(JobState.FAILURE, None, reason, True))
                self.view.forget(name)
                await self._client.create(cast(Job, Job.from_dict(manifest)))
                log.info("created the Kubernetes Job", job_id=spec.job_id, attempt=spec.attempt, k8s_job=name)
                return _Created(time.monotonic())
            except HTTPError as exc:  # ApiError too
                code = status_code(exc)
                if code in (401, 403):
                    raise KubeForbidden(str(exc)) from exc
                # 409: created meanwhile (by our own request whose answer was lost): the
                # next listing finds it; a foreign Job of that name fails after the grace.
                if not is_transient(code):
                    raise
                if time.monotonic() >= deadline:
                    raise KubeUnavailable(f"{type(exc).__name__}: {exc}") from exc
                log.warning("Kubernetes API failing; retrying", error=repr(exc))
            with suppress(TimeoutError):
                await asyncio.wait_for(cancel.wait(), timeout=delay)
            delay = min(delay * 2, self._max_backoff)

    async def _delete(self, name: str) -> None:
        """Delete a Job with its pods (in the background); a Job already gone is fine."""
        try:
            await self._client.delete(Job, name, namespace=self.namespace, cascade=CascadeType.BACKGROUND)
        except HTTPError as exc:
            if status_code(exc) != 404:
                raise

    async def _delete_retrying(self, name: str) -> None:
        deadline = time.monotonic() + self._grace
        delay = self._backoff
        while True:
            try:
                await self._delete(name)
                return
            except HTTPError as exc:
                code = status_code(exc)
                if code in (401, 403):
                    raise KubeForbidden(str(exc)) from exc
                if not is_transient(code) or time.monotonic() >= deadline:
                    raise
                log.warning("could not delete the Kubernetes Job; retrying", k8s_job=name, error=repr(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)

    async def _follow(
        self,
        spec: JobSpec,
        name: str,
        created_at: float,
        on_started: StartedCallback,
        cancel: asyncio.Event,
        t0: float,
    ) -> ExecutionResult:
        """Wait for the watch's news of this Job; delete it on cancel; map its end."""
        containers = container_names(spec.steps)
        started = False
        pulling_since: float | None = None
        while True:
            tick = self.view.next_change()
            job = self.view.job(name)
            if job is not None:
                pods = self.view.pods_of(name)
                if not started and has_started(job, pods):
                    started = True
                    await on_started(None)
                if finished(job) is not None:
                    return await self._ended(spec, job, containers, t0)
                stuck = stuck_container(pods, containers)
                if stuck is None:
                    pulling_since = None
                else:
                    if pulling_since is None:
                        pulling_since = time.monotonic()
                    if stuck.hopeless or time.monotonic() - pulling_since > self._pull_grace:
                        return await self._give_up(spec, name, stuck, t0)
            elif self.view.gone(name, created_at):
                reason = f"the Kubernetes Job {name} was deleted by someone else"
                return self._result(t0, Outcome(JobState.FAILURE, None, reason, True))
            if self.view.forbidden is not None:
                return self._result(t0, self._forbidden(self.view.forbidden))
            if self.view.outage_s() > self._grace:
                reason = (
                    f"the Kubernetes API failing for {self.view.outage_s():.0f} s: {self.view.last_error}"
                )
                return self._result(t0, Outcome(JobState.FAILURE, None, reason, True))
            if cancel.is_set():
                log.info("deleting the Kubernetes Job (cancel)", job_id=spec.job_id, k8s_job=name)
                try:
                    await self._delete_retrying(name)
                except KubeForbidden as exc:
                    return self._result(t0, self._forbidden(str(exc)))
                except HTTPError as exc:
                    log.warning("could not delete the Kubernetes Job", k8s_job=name, error=repr(exc))
                    return self._result(
                        t0, Outcome(JobState.CANCELED, None, "canceled by the user (the Job may still run)")
                    )
                return self._result(t0, Outcome(JobState.CANCELED, None, "canceled by the user"))
            waiters = [asyncio.ensure_future(tick.wait()), asyncio.ensure_future(cancel.wait())]
            try:
                await asyncio.wait(waiters, timeout=self._max_backoff, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def _give_up(self, spec: JobSpec, name: str, stuck: Stuck, t0: float) -> ExecutionResult:
        """Delete a Job whose step cannot start (no image, a bad config): waiting until the
        wall time would only hide the reason."""
        step = spec.steps[stuck.index].name
        detail = f"{stuck.reason}: {stuck.message}" if stuck.message else stuck.reason
        reason = f"step {step} (container {stuck.container}) could not start ({detail})"
        log.error("a job step cannot start; deleting its Kubernetes Job", job_id=spec.job_id, reason=reason)
        try:
            await self._delete_retrying(name)
        except (KubeForbidden, HTTPError) as exc:
            log.warning("could not delete the Kubernetes Job", k8s_job=name, error=repr(exc))
        return self._result(t0, Outcome(JobState.FAILURE, None, reason))

    async def _ended(
        self, spec: JobSpec, job: dict[str, Any], containers: Sequence[str], t0: float
    ) -> ExecutionResult:
        """The outcome of a finished Job, from its pods as they are now (read once)."""
        name = name_of(job)
        pods = await self._current_pods(name)
        outcome = outcome_of(
            job,
            pods,
            containers=containers,
            step_names=[step.name for step in spec.steps],
            wall_time_s=spec.wall_time_s,
            memory_mb=spec.memory_mb,
        )
        assert outcome is not None
        await self._save_logs(spec, pods, containers)
        failed = failed_container(pods, containers)
        if outcome.state is JobState.FAILURE and failed is not None and not last_line(failed.message):
            path = step_log(spec.job_dir, failed.index, spec.steps[failed.index], LOG_STREAM)
            said = await asyncio.to_thread(last_error_line, path)
            if said:
                outcome = Outcome(
                    outcome.state, outcome.exit_code, f"{outcome.reason}: {said}", outcome.retryable
                )
        log.info("Kubernetes Job ended", job_id=spec.job_id, k8s_job=name, state=outcome.state.value)
        return self._result(t0, outcome, job)

    async def _current_pods(self, name: str) -> list[dict[str, Any]]:
        """The Job's pods listed now, plus the deleted ones the watch remembers.

        The Job and Pod watches are separate streams: the Job's end may arrive before
        the news of the pod that caused it, so the pods are read once more.
        """
        known = {name_of(pod): pod for pod in self.view.pods_of(name)}
        try:
            labels: LabelSelector = {JOB_NAME_LABELS[0]: name}
            async for pod in self._client.list(Pod, namespace=self.namespace, labels=labels):
                data = pod.to_dict()
                known[name_of(data)] = data
        except HTTPError as exc:
            log.warning(
                "could not list the Job's pods; using the watched ones", k8s_job=name, error=repr(exc)
            )
        return list(known.values())

    async def _save_logs(
        self, spec: JobSpec, pods: Sequence[dict[str, Any]], containers: Sequence[str]
    ) -> None:
        """Each step's log into the attempt directory, best effort (the node may be gone)."""
        if not pods:
            return
        pod = max(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp", "")))
        ran = _containers_that_ran(pod)
        try:
            async with asyncio.timeout(self._log_timeout):
                for index, container in enumerate(containers):
                    if container not in ran:
                        continue
                    chunks: list[str] = []
                    size = 0
                    async for line in self._client.log(
                        name_of(pod), namespace=self.namespace, container=container
                    ):
                        size += len(line)
                        if size > MAX_LOG_BYTES:
                            break
                        chunks.append(line)
                    path = step_log(spec.job_dir, index, spec.steps[index], LOG_STREAM)
                    await asyncio.to_thread(_write_log, path, "".join(chunks))
        except (TimeoutError, HTTPError, OSError) as exc:
            log.debug("no pod logs", job_id=spec.job_id, error=repr(exc))

    @staticmethod
    def _result(t0: float, outcome: Outcome, job: dict[str, Any] | None = None) -> ExecutionResult:
        """Elapsed time from the Job's start and end when known (queue wait is not run time)."""
        elapsed = elapsed_s(job) if job is not None else None
        return ExecutionResult(
            outcome.state,
            outcome.exit_code,
            elapsed if elapsed is not None else time.monotonic() - t0,
            0.0,
            0,
            outcome.reason,
            retryable=outcome.retryable,
        )

    async def aclose(self) -> None:
        """Stop the watch and close the HTTP client; the Jobs keep running."""
        await self.view.close()
        await self._client.close()


def _containers_that_ran(pod: dict[str, Any]) -> set[str]:
    status = pod.get("status") or {}
    ran = set()
    for container in (*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())):
        state = container.get("state") or {}
        if "terminated" in state or "running" in state:
            ran.add(str(container.get("name")))
    return ran


def _prepare_dir(job_dir: Path, manifest: Manifest) -> None:
    """Private modes, the steps' scratch directory and the Job's record, before the Job exists."""
    job_dir.mkdir(parents=True, exist_ok=True)
    prepare_job_dir(job_dir)
    record = job_dir / JOB_FILE
    tmp = job_dir / f".{JOB_FILE}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(record)


def _write_log(path: Path, text: str) -> None:
    """A new log file (:func:`open_new_log`: never through a symlink)."""
    with os.fdopen(open_new_log(path), "w", encoding="utf-8") as fh:
        fh.write(text)
