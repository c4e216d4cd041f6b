"""UWS use cases against in-memory fakes: drafts, PHASE=RUN, abort, parameters, lookup."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest
from vo_models.uws.types import ExecutionPhase

from caesar_api.domain.errors import ApiError
from caesar_api.service.jobs import JobQueries
from caesar_api.uws import service
from caesar_api.uws.params import JobParameters
from caesar_common.apps import APPS
from caesar_common.events import JobSubmitted
from caesar_common.store import Document
from tests.unit.fakes_api import FakeFiles, FakeJobs
from tests.unit.test_api_service import OWNER, stored_file

AEGEAN = APPS["aegean"]


class FakeDrafts:
    """The drafts collection in memory, with the same guards as the repository."""

    def __init__(self) -> None:
        self.records: dict[str, Document] = {}

    def _open(self, owner: str, draft_id: str) -> Document | None:
        draft = self.records.get(draft_id)
        if draft is None or draft["owner"] != owner or draft["job_id"] or draft["starting_at"]:
            return None
        return draft

    async def add(self, draft: Document) -> None:
        self.records[draft["_id"]] = copy.deepcopy(draft)

    async def get(self, owner: str, app: str, draft_id: str) -> Document | None:
        draft = self.records.get(draft_id)
        ok = draft is not None and draft["owner"] == owner and draft["app"] == app
        return copy.deepcopy(draft) if ok else None

    async def aliases(self, owner: str, job_ids: Iterable[str]) -> dict[str, Document]:
        ids = set(job_ids)
        return {
            d["job_id"]: copy.deepcopy(d)
            for d in self.records.values()
            if d["owner"] == owner and d["job_id"] in ids
        }

    async def unsubmitted(
        self, owner: str, app: str, *, after: datetime | None, aborted: bool | None, limit: int
    ) -> list[Document]:
        raise NotImplementedError  # the list runs on the real database (integration test)

    async def update_open(self, owner: str, draft_id: str, fields: dict[str, Any]) -> bool:
        draft = self._open(owner, draft_id)
        if draft is None or draft.get("aborted_at"):
            return False
        draft.update(copy.deepcopy(fields))
        return True

    async def claim(
        self, owner: str, draft_id: str, now: datetime, stale_before: datetime
    ) -> Document | None:
        draft = self.records.get(draft_id)
        if draft is None or draft["owner"] != owner or draft["job_id"] or draft.get("aborted_at"):
            return None
        if draft["starting_at"] is not None and draft["starting_at"] >= stale_before:
            return None
        draft["starting_at"] = now
        return copy.deepcopy(draft)

    async def release(self, draft_id: str) -> None:
        self.records[draft_id]["starting_at"] = None

    async def attach(self, draft_id: str, job_id: str) -> None:
        self.records[draft_id].update(job_id=job_id, starting_at=None)

    async def remove_open(self, owner: str, draft_id: str) -> bool:
        return self._open(owner, draft_id) is not None and self.records.pop(draft_id) is not None


class World:
    def __init__(self) -> None:
        self.jobs, self.files, self.drafts = FakeJobs(), FakeFiles(), FakeDrafts()
        self.ctx = service.UwsContext(
            jobs=cast(JobQueries, self.jobs),
            files=self.files,
            drafts=self.drafts,
            runnable_executors=("local",),
            jobs_root=Path("/nonexistent/jobs"),
            max_list=100,
            max_wait_s=1.0,
            poll_s=0.1,
        )

    def submitted(self) -> list[JobSubmitted]:
        return [m for m in self.jobs.published if isinstance(m, JobSubmitted)]

    async def create(self, owner: str = OWNER, **fields: Any) -> str:
        file_id = stored_file(self.files, owner=owner)
        params = JobParameters(**{"options": {"seedthr": 6.0}, "file_id": file_id, "run_id": "r1", **fields})
        return await service.create(self.ctx, AEGEAN, owner, params)


@pytest.fixture
def world() -> World:
    return World()


async def test_a_job_created_without_run_is_a_draft_nobody_hears_of(world: World) -> None:
    uws_id = await world.create()
    assert world.submitted() == []
    assert world.jobs.records == {}
    found = await service.find(world.ctx, AEGEAN, OWNER, uws_id)
    view = found.view(AEGEAN)
    assert view.phase is ExecutionPhase.PENDING
    assert view.run_id == "r1"


async def test_run_submits_the_draft_once_and_the_uws_id_stays(world: World) -> None:
    uws_id = await world.create()
    found = await service.find(world.ctx, AEGEAN, OWNER, uws_id)
    await service.start(world.ctx, AEGEAN, OWNER, found)
    await service.start(world.ctx, AEGEAN, OWNER, await service.find(world.ctx, AEGEAN, OWNER, uws_id))
    [event] = world.submitted()
    assert event.params["seedthr"] == 6.0
    assert event.tag == "r1"
    again = await service.find(world.ctx, AEGEAN, OWNER, uws_id)
    assert again.job is not None
    assert again.job["_id"] == event.job_id != uws_id
    assert again.view(AEGEAN).phase is ExecutionPhase.QUEUED
    assert again.view(AEGEAN).uws_id == uws_id
    # The job's own id reaches the same job, shown under the draft's id.
    alias = await service.find(world.ctx, AEGEAN, OWNER, event.job_id)
    assert alias.view(AEGEAN).uws_id == uws_id


async def test_create_with_phase_run_submits_at_once_under_the_job_id(world: World) -> None:
    uws_id = await world.create(run=True)
    [event] = world.submitted()
    assert event.job_id == uws_id
    assert world.drafts.records == {}


async def test_a_refused_job_is_a_403_and_nothing_is_kept(world: World) -> None:
    with pytest.raises(ApiError) as err:
        await world.create(options={"seedthr": "high"})
    assert err.value.http_status == 403
    assert "seedthr" in err.value.message
    foreign = stored_file(world.files, owner="bob")
    for run in (False, True):
        with pytest.raises(ApiError) as err:
            await service.create(world.ctx, AEGEAN, OWNER, JobParameters(file_id=foreign, run=run))
        assert err.value.http_status == 403
    with pytest.raises(ApiError) as err:
        await service.create(world.ctx, AEGEAN, OWNER, JobParameters())
    assert err.value.http_status == 400
    assert world.drafts.records == {}
    assert world.jobs.records == {}


async def test_a_refused_run_leaves_the_draft_pending_to_fix_and_run_again(world: World) -> None:
    uws_id = await world.create()
    world.files.records[world.drafts.records[uws_id]["file_id"]]["deleted"] = True
    with pytest.raises(ApiError) as err:
        await service.start(world.ctx, AEGEAN, OWNER, await service.find(world.ctx, AEGEAN, OWNER, uws_id))
    assert err.value.http_status == 403
    found = await service.find(world.ctx, AEGEAN, OWNER, uws_id)
    assert found.view(AEGEAN).phase is ExecutionPhase.PENDING
    fresh = stored_file(world.files)
    await service.update_parameters(world.ctx, AEGEAN, OWNER, found, JobParameters(file_id=fresh))
    await service.start(world.ctx, AEGEAN, OWNER, await service.find(world.ctx, AEGEAN, OWNER, uws_id))
    [event] = world.submitted()
    assert event.input.file_id == fresh


async def test_parameters_change_only_while_pending_and_are_validated(world: World) -> None:
    uws_id = await world.create()
    found = await service.find(world.ctx, AEGEAN, OWNER, uws_id)
    await service.update_parameters(
        world.ctx, AEGEAN, OWNER, found, JobParameters(options={"bkgbox": 50}, run_id="r2")
    )
    draft = world.drafts.records[uws_id]
    assert draft["params"] == {"seedthr": 6.0, "bkgbox": 50}
    assert draft["run_id"] == "r2"
    with pytest.raises(ApiError) as err:
        await service.update_parameters(
            world.ctx, AEGEAN, OWNER, found, JobParameters(options={"bkgbox": -1})
        )
    assert err.value.http_status == 403
    await service.start(world.ctx, AEGEAN, OWNER, found)
    with pytest.raises(ApiError) as err:
        await service.update_parameters(
            world.ctx, AEGEAN, OWNER, await service.find(world.ctx, AEGEAN, OWNER, uws_id), JobParameters()
        )
    assert err.value.http_status == 409


async def test_an_aborted_draft_never_runs(world: World) -> None:
    uws_id = await world.create()
    await service.abort(world.ctx, OWNER, await service.find(world.ctx, AEGEAN, OWNER, uws_id))
    found = await service.find(world.ctx, AEGEAN, OWNER, uws_id)
    assert found.view(AEGEAN).phase is ExecutionPhase.ABORTED
    await service.abort(world.ctx, OWNER, found)  # again: nothing changes
    with pytest.raises(ApiError) as err:
        await service.start(world.ctx, AEGEAN, OWNER, found)
    assert err.value.http_status == 409
    assert world.submitted() == []


async def test_abort_of_a_submitted_job_asks_for_a_cancel(world: World) -> None:
    uws_id = await world.create(run=True)
    await service.abort(world.ctx, OWNER, await service.find(world.ctx, AEGEAN, OWNER, uws_id))
    assert world.jobs.records[uws_id]["cancel_requested_at"] is not None


async def test_delete_of_a_draft_removes_it(world: World) -> None:
    uws_id = await world.create()
    await service.delete(world.ctx, AEGEAN, OWNER, await service.find(world.ctx, AEGEAN, OWNER, uws_id))
    assert world.drafts.records == {}
    with pytest.raises(ApiError) as err:
        await service.find(world.ctx, AEGEAN, OWNER, uws_id)
    assert err.value.http_status == 404


async def test_another_users_or_another_apps_job_is_a_404(world: World) -> None:
    draft_id = await world.create()
    job_id = await world.create(run=True)
    for owner, app, uws_id in (
        ("bob", AEGEAN, draft_id),
        ("bob", AEGEAN, job_id),
        (OWNER, APPS["sfind"], draft_id),
        (OWNER, APPS["sfind"], job_id),
        (OWNER, AEGEAN, "not-an-id"),
    ):
        with pytest.raises(ApiError) as err:
            await service.find(world.ctx, app, owner, uws_id)
        assert err.value.http_status == 404


async def test_a_running_job_that_does_not_stop_in_time_cannot_be_deleted(world: World) -> None:
    uws_id = await world.create(run=True)
    with pytest.raises(ApiError) as err:
        await service.delete(world.ctx, AEGEAN, OWNER, await service.find(world.ctx, AEGEAN, OWNER, uws_id))
    assert err.value.http_status == 409
    assert world.jobs.records[uws_id]["cancel_requested_at"] is not None
