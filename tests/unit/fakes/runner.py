"""Fakes of the runner's claim store, executor and command consumer."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterable, Sequence
from typing import Any

from caesar_common.events import Envelope
from caesar_common.jobstate import JobState
from caesar_common.store import Document
from caesar_runner.domain.claim import Fence
from caesar_runner.executors.base import ExecutionResult, JobSpec, StartedCallback


class FakeClaimStore:
    """Claims in a dict; inserts refuse duplicates and updates are guarded by state."""

    def __init__(self) -> None:
        self.failing = 0
        """How many of the next writes (claim, update, ping) fail, as a database outage would."""
        self.docs: dict[str, Document] = {}
        self.events: list[Envelope] = []
        """Every event written to a claim's outbox, in order (what the relay would publish)."""
        self.cancels: set[str] = set()
        self.pending: set[str] = set()
        """Claim keys whose outbox the (absent) relay has not cleared yet."""
        self.fences: dict[str, Fence] = {}

    def _maybe_fail(self) -> None:
        if self.failing:
            self.failing -= 1
            raise ConnectionError("database unreachable")

    async def unpublished(self, runner_id: str) -> list[tuple[str, int]]:
        """Claims whose events the relay has not published: none, unless a test says so."""
        self._maybe_fail()
        return [
            (d["job_id"], d["attempt"])
            for key, d in self.docs.items()
            if key in self.pending and d["runner_id"] == runner_id
        ]

    async def claim(self, doc: Document, events: Sequence[Envelope]) -> bool:
        self._maybe_fail()
        if doc["_id"] in self.docs:
            return False
        self.docs[doc["_id"]] = copy.deepcopy(doc)
        self.events.extend(events)
        return True

    async def update(
        self, cid: str, expect_state: str, changes: dict[str, Any], events: Sequence[Envelope]
    ) -> bool:
        self._maybe_fail()
        doc = self.docs.get(cid)
        if doc is None or doc["state"] != expect_state:
            return False
        doc.update(copy.deepcopy(changes))
        self.events.extend(events)
        return True

    async def open_claims(self, runner_id: str, pool: str | None = None) -> list[Document]:
        return [
            copy.deepcopy(d)
            for d in self.docs.values()
            if d["runner_id"] == runner_id
            and d["state"] in (JobState.STARTED.value, JobState.RUNNING.value)
            and (pool is None or d["pool"] == pool)
        ]

    async def take_fence(self, job_id: str, attempt: int) -> Fence:
        """As the repository: first attempts write nothing; a retry takes an open, older fence."""
        self._maybe_fail()
        if attempt == 1:
            return Fence(holder=1)
        fence = self.fences.get(job_id)
        if fence is None or (fence.holder < attempt and not fence.closed):
            self.fences[job_id] = Fence(holder=attempt)
        return self.fences[job_id]

    async def close_fence(
        self, job_id: str, attempt: int, runner_id: str, events: Sequence[Envelope]
    ) -> Fence:
        self._maybe_fail()
        fence = self.fences.get(job_id)
        if fence is None or fence.holder <= attempt:
            self.fences[job_id] = Fence(holder=attempt, closed=True)
            self.events.extend(events)  # the fence's outbox: published like a claim's
        return self.fences[job_id]

    async def record_cancel(self, job_id: str) -> None:
        self.cancels.add(job_id)

    async def is_canceled(self, job_id: str) -> bool:
        return job_id in self.cancels

    async def canceled_among(self, job_ids: Iterable[str]) -> set[str]:
        return self.cancels & set(job_ids)

    def states(self, job_id: str) -> list[tuple[int, str]]:
        """``(attempt, state)`` of every event about ``job_id``, in order."""
        return [(e.data["attempt"], e.data["state"]) for e in self.events if e.subject == job_id]


class FakeExecutor:
    """Runs nothing: each attempt 'starts' at once and ends when the test says so.

    ``finish(key, result)`` ends the attempt ``<job_id>:<attempt>``; a cancel ends it as
    CANCELED, like a real executor killing its processes.
    """

    kind = "local"
    pool = "local"

    def __init__(self, *, reattaches: bool = False, fail_with: Exception | None = None) -> None:
        self.reattaches = reattaches
        self.fail_with = fail_with
        self.started: list[str] = []
        self._outcomes: dict[str, asyncio.Future[ExecutionResult]] = {}
        self._running = asyncio.Condition()

    def _future(self, key: str) -> asyncio.Future[ExecutionResult]:
        return self._outcomes.setdefault(key, asyncio.get_running_loop().create_future())

    async def run(self, spec: JobSpec, on_started: StartedCallback, cancel: asyncio.Event) -> ExecutionResult:
        key = f"{spec.job_id}:{spec.attempt}"
        if self.fail_with is not None:
            raise self.fail_with
        await on_started(4242)
        async with self._running:
            self.started.append(key)
            self._running.notify_all()
        outcome = self._future(key)
        canceled: asyncio.Future[Any] = asyncio.ensure_future(cancel.wait())
        pending: set[asyncio.Future[Any]] = {outcome, canceled}
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        canceled.cancel()
        if outcome.done():
            return outcome.result()
        return ExecutionResult(JobState.CANCELED, None, 0.1, 0.0, 0, "canceled by the user")

    async def wait_started(self, key: str) -> None:
        async with self._running:
            await self._running.wait_for(lambda: key in self.started)

    def finish(self, key: str, result: ExecutionResult) -> None:
        self._future(key).set_result(result)

    async def aclose(self) -> None:
        return None


class FakeConsumer:
    """The command consumer's pause state and prefetch, as the runner leaves them."""

    def __init__(self) -> None:
        self.paused = False
        self.prefetch = 0

    async def set_prefetch(self, prefetch: int) -> None:
        await asyncio.sleep(0)  # a broker round trip: other coroutines run meanwhile
        self.prefetch = prefetch

    async def pause(self) -> None:
        await asyncio.sleep(0)
        self.paused = True

    async def resume(self) -> None:
        await asyncio.sleep(0)
        self.paused = False


def success(elapsed_s: float = 1.0) -> ExecutionResult:
    return ExecutionResult(JobState.SUCCESS, 0, elapsed_s, 0.5, 1 << 20)
