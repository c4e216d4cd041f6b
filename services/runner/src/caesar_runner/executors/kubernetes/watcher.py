"""One list+watch of a pool's Jobs and one of their Pods, shared by every attempt.

Why: a poll per running attempt would put load on the API server that grows with the
number of jobs; a watch costs one connection per resource kind whatever the number.
Each stream lists first (a consistent read, and its ``resourceVersion``), then watches
from there; on ``410 Gone`` (the version is too old) or any error it lists again, after
a back-off while the API server is failing. An idle watch is restarted from the last
version seen, which also guards against a connection that died silently.

The view keeps the pods of a Job after they are deleted (marked with a
``deletionTimestamp``) while the Job exists: a pod deleted by someone else must still be
seen as the reason its Job failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Final

from lightkube import AsyncClient
from lightkube.core.client import LabelSelector
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod
from prometheus_client import Counter

from caesar_common.logging import get_logger
from caesar_common.runtime import stop_tasks
from caesar_runner.executors.kubernetes.errors import HTTPError, status_code
from caesar_runner.executors.kubernetes.outcome import job_name_of_pod

log = get_logger(__name__)

K8S_WATCH_RESTARTS = Counter(
    "caesar_k8s_watch_relists_total",
    "Times the Kubernetes executor listed Jobs or Pods again (410 Gone, errors)",
    ["resource"],
)

GONE_MEMORY_S: Final = 3600.0
CLOSE_GRACE_S: Final = 5.0
DELETED_MARK: Final = "1970-01-01T00:00:00Z"
Obj = dict[str, Any]


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _mark_deleted(obj: Obj) -> Obj:
    meta = obj.setdefault("metadata", {})
    meta.setdefault("deletionTimestamp", DELETED_MARK)
    return obj


@dataclass
class _Stream:
    resource: type[Job] | type[Pod]
    label: str
    objects: dict[str, Obj] = field(default_factory=dict)
    listed_at: float = float("-inf")
    """When the last successful list started (monotonic)."""
    failing_since: float | None = None


class ClusterView:
    """The current Jobs and Pods of a pool, kept up to date by two watch tasks."""

    def __init__(
        self,
        client: AsyncClient,
        namespace: str,
        labels: Mapping[str, str],
        *,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        watch_timeout_s: int = 240,
    ) -> None:
        self._client = client
        self._namespace = namespace
        self._labels: LabelSelector = dict(labels)
        self._backoff = backoff_s
        self._max_backoff = max_backoff_s
        self._watch_timeout = max(1, watch_timeout_s)
        self._jobs = _Stream(Job, "jobs")
        self._pods = _Stream(Pod, "pods")
        self._gone: dict[str, float] = {}
        self._tick = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.forbidden: str | None = None
        """The API server's refusal (401/403) of a list or watch, until one succeeds."""
        self.last_error = ""
        self.relists = 0

    # -- reading ------------------------------------------------------------------------

    def next_change(self) -> asyncio.Event:
        """Set at the next change; take it *before* reading, then wait on it."""
        return self._tick

    def job(self, name: str) -> Obj | None:
        return self._jobs.objects.get(name)

    def pods_of(self, job_name: str) -> list[Obj]:
        return [pod for pod in self._pods.objects.values() if job_name_of_pod(pod) == job_name]

    def gone(self, name: str, since: float) -> bool:
        """True if the Job ``name``, known to exist at ``since``, no longer does."""
        if name in self._jobs.objects:
            return False
        return self._gone.get(name, float("-inf")) >= since or self._jobs.listed_at > since

    def outage_s(self) -> float:
        """How long the API server has been failing (0 when it answers)."""
        since = [s.failing_since for s in (self._jobs, self._pods) if s.failing_since is not None]
        return time.monotonic() - min(since) if since else 0.0

    @property
    def synced(self) -> bool:
        return self._jobs.listed_at > float("-inf") and self._pods.listed_at > float("-inf")

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the watch tasks (again, if they ended); idempotent."""
        if self._tasks and not any(task.done() for task in self._tasks):
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._follow(stream), name=f"k8s-watch-{stream.label}")
            for stream in (self._jobs, self._pods)
        ]

    async def close(self) -> None:
        await stop_tasks(self._tasks, CLOSE_GRACE_S)
        self._tasks = []

    # -- the streams --------------------------------------------------------------------

    def _notify(self) -> None:
        self._tick.set()
        self._tick = asyncio.Event()

    async def _follow(self, stream: _Stream) -> None:
        delay = self._backoff
        while True:
            try:
                version = await self._list(stream)
                stream.failing_since = None
                self.forbidden = None
                delay = self._backoff
                while True:
                    version = await self._watch(stream, version)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure: list again, after a back-off
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # a cancel a library turned into another error: still a cancel
                code = status_code(exc)
                if code == 410:
                    log.info("watch expired (410 Gone); listing again", resource=stream.label)
                    continue
                if stream.failing_since is None:
                    stream.failing_since = time.monotonic()
                    log.warning(
                        "Kubernetes list/watch failed; backing off", resource=stream.label, error=repr(exc)
                    )
                self.last_error = f"{type(exc).__name__}: {exc}"
                if code in (401, 403):
                    self.forbidden = f"the API server refused to list/watch {stream.label} ({code}): {exc}"
                    log.error("the runner may not watch its Jobs/Pods: check its RBAC", error=str(exc))
                elif code is None and not isinstance(exc, HTTPError | OSError):
                    log.exception("Kubernetes watch error", resource=stream.label, error=repr(exc))
                self._notify()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)

    async def _list(self, stream: _Stream) -> str:
        started = time.monotonic()
        listing = self._client.list(stream.resource, namespace=self._namespace, labels=self._labels)
        objects = {}
        async for obj in listing:
            data = obj.to_dict()
            objects[_name(data)] = data
        version = listing.resourceVersion
        self.relists += 1
        K8S_WATCH_RESTARTS.labels(stream.label).inc()
        self.replace_listing(stream.label, objects, started)
        return version

    async def _watch(self, stream: _Stream, version: str) -> str:
        """Follow changes from ``version``; return the last version when the watch goes idle.

        lightkube reconnects a watch the server closed by itself; the idle limit (with no
        event for longer than the server's own timeout) catches a connection that died
        without a word. ``asyncio.timeout``, not ``wait_for``: on Python 3.11 the latter
        can lose a cancel that lands as the next event arrives.
        """
        loop = asyncio.get_running_loop()
        idle_s = self._watch_timeout + 15
        events = self._client.watch(
            stream.resource,
            namespace=self._namespace,
            labels=self._labels,
            server_timeout=self._watch_timeout,
            resource_version=version,
        )
        try:
            async with asyncio.timeout(idle_s) as idle:
                async for kind, obj in events:
                    data = obj.to_dict()
                    version = str((data.get("metadata") or {}).get("resourceVersion") or version)
                    self.apply_event(stream.label, kind, data)
                    idle.reschedule(loop.time() + idle_s)
        except TimeoutError:
            pass
        finally:
            with suppress(Exception):
                await events.aclose()  # type: ignore[attr-defined]
        return version

    # -- bookkeeping (no I/O) -------------------------------------------------------------

    def _stream(self, resource: str) -> _Stream:
        return self._jobs if resource == self._jobs.label else self._pods

    def apply_event(self, resource: str, kind: str, data: Obj) -> None:
        """One watch event (``ADDED``, ``MODIFIED``, ``DELETED``) of ``jobs`` or ``pods``."""
        stream = self._stream(resource)
        name = _name(data)
        if kind in ("ADDED", "MODIFIED"):
            stream.objects[name] = data
        elif kind == "DELETED":
            if stream is self._jobs:
                stream.objects.pop(name, None)
                self._job_gone(name)
            elif job_name_of_pod(data) in self._jobs.objects:
                stream.objects[name] = _mark_deleted(data)
            else:
                stream.objects.pop(name, None)
        self._notify()

    def replace_listing(self, resource: str, objects: dict[str, Obj], listed_at: float) -> None:
        """A fresh listing (started at ``listed_at``): what vanished meanwhile was deleted."""
        stream = self._stream(resource)
        old = stream.objects
        stream.objects = objects
        stream.listed_at = listed_at
        if stream is self._jobs:
            for name in old.keys() - objects.keys():
                self._job_gone(name)
        else:
            for name in old.keys() - objects.keys():
                pod = old[name]
                if job_name_of_pod(pod) in self._jobs.objects:
                    objects[name] = _mark_deleted(pod)
        self._notify()

    def _job_gone(self, name: str) -> None:
        now = time.monotonic()
        self._gone[name] = now
        for old, at in list(self._gone.items()):
            if now - at > GONE_MEMORY_S:
                del self._gone[old]
        for pod_name, pod in list(self._pods.objects.items()):
            if job_name_of_pod(pod) == name and (pod.get("metadata") or {}).get("deletionTimestamp"):
                del self._pods.objects[pod_name]

    def forget(self, name: str) -> None:
        """Drop an old deletion of ``name`` (a Job of that name is about to be created)."""
        self._gone.pop(name, None)
