"""The v2 job use cases against in-memory fakes: submit, filtered list, delete, queue position."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from caesar_api.adapters.pagination import Page
from caesar_api.domain.errors import ApiError
from caesar_api.domain.v2_requests import InvalidBody, V2JobBody, option_errors, parse_job_body
from caesar_api.service import jobs as job_cases
from caesar_common.apps import get_app
from caesar_common.ids import new_job_id
from caesar_common.store import Document
from tests.unit.fakes_api import FakeFiles, FakeJobs, _page
from tests.unit.test_api_service import RUNNABLE, stored_file

OWNER = "alice"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _holds(have: Any, op: str, value: Any) -> bool:
    if op == "$in":
        return bool(have in value)
    if op == "$lt":
        return have is not None and bool(have < value)
    if op == "$gte":
        return have is not None and bool(have >= value)
    if op == "$ne":
        return bool(have != value)
    raise AssertionError(f"operator {op} not faked")


def matches(doc: Document, query: Document) -> bool:
    """The subset of MongoDB filters the v2 queries use ($in, $lt, $gte, $ne, $or, $and, equality)."""
    for key, want in query.items():
        if key == "$or":
            if not any(matches(doc, q) for q in want):
                return False
            continue
        if key == "$and":
            if not all(matches(doc, q) for q in want):
                return False
            continue
        have = doc.get(key)
        if isinstance(want, dict):
            if not all(_holds(have, op, value) for op, value in want.items()):
                return False
        elif have != want:
            return False
    return True


class FakeJobQueries(FakeJobs):
    """:class:`FakeJobs` with the v2 reads and the delete mark."""

    async def find_page(self, query: Document, limit: int, after: Document | None) -> Page:
        return _page([j for j in self.records.values() if matches(j, query)], "submitted_at", limit, after)

    async def stream_owned(self, owner: str, batch_size: int) -> AsyncIterator[Document]:
        for job in (await self.list(owner, len(self.records) + 1, None)).items:
            yield job

    async def count(self, query: Document) -> int:
        return sum(matches(j, query) for j in self.records.values())

    async def mark_deleted(self, job: Document, deleted_at: datetime) -> bool:
        stored = self._still_at(job)
        if stored is None or stored.get("deleted_at") is not None:
            return False
        stored.update(deleted_at=deleted_at, updated_at=deleted_at)
        return True


def add_job(jobs: FakeJobQueries, *, state: str = "PENDING", owner: str = OWNER, **extra: Any) -> str:
    job_id = new_job_id()
    minute = len(jobs.records)
    jobs.records[job_id] = {
        "_id": job_id,
        "owner": owner,
        "app": "aegean",
        "params": {},
        "input": {"file_id": "0" * 32, "ext": "fits"},
        "tag": "",
        "submitted_at": T0 + timedelta(minutes=minute),
        "state": state,
        "attempt": 0 if state == "PENDING" else 1,
        "retryable": False,
        "reason": "",
        "pool": "" if state == "PENDING" else "local",
        "updated_at": T0,
        **extra,
    }
    return job_id


# -- submit ---------------------------------------------------------------------------


async def submit_v2(jobs: FakeJobQueries, files: FakeFiles, body: dict[str, Any]) -> Document:
    return await job_cases.submit_v2(
        parse_job_body(body), OWNER, jobs=jobs, files=files, runnable_executors=RUNNABLE
    )


async def test_submit_records_the_job_as_v1_does() -> None:
    jobs, files = FakeJobQueries(), FakeFiles()
    file_id = stored_file(files)
    job = await submit_v2(
        jobs, files, {"app": "aegean", "file_id": file_id, "options": {"seedthr": 6}, "tag": "t"}
    )
    assert job["state"] == "PENDING"
    assert job["params"] == {"seedthr": 6}
    assert job["input"]["file_id"] == file_id
    assert job["tag"] == "t"
    assert len(jobs.published) == 1


async def test_every_schema_problem_is_reported_at_its_pointer() -> None:
    jobs, files = FakeJobQueries(), FakeFiles()
    file_id = stored_file(files)
    with pytest.raises(InvalidBody) as caught:
        await submit_v2(
            jobs, files, {"app": "aegean", "file_id": file_id, "options": {"seedthr": "high", "bogus": 1}}
        )
    paths = {e.path for e in caught.value.errors}
    assert paths == {"/options", "/options/seedthr"}
    assert caught.value.http_status == 422
    assert any("bogus" in e.message for e in caught.value.errors)
    assert jobs.records == {}


async def test_cross_field_rules_are_422_too() -> None:
    jobs, files = FakeJobQueries(), FakeFiles()
    file_id = stored_file(files)
    with pytest.raises(InvalidBody) as caught:
        await submit_v2(
            jobs, files, {"app": "aegean", "file_id": file_id, "options": {"seedthr": 3, "mergethr": 4}}
        )
    assert [e.path for e in caught.value.errors] == ["/options"]
    assert "mergethr" in caught.value.errors[0].message


async def test_unknown_app_is_422_and_unknown_file_404() -> None:
    jobs, files = FakeJobQueries(), FakeFiles()
    file_id = stored_file(files)
    with pytest.raises(InvalidBody) as caught:
        await submit_v2(jobs, files, {"app": "nope", "file_id": file_id})
    assert [e.path for e in caught.value.errors] == ["/app"]
    with pytest.raises(ApiError) as missing:
        await submit_v2(jobs, files, {"app": "aegean", "file_id": "f" * 32})
    assert missing.value.http_status == 404
    foreign = stored_file(files, owner="bob")
    with pytest.raises(ApiError) as other:
        await submit_v2(jobs, files, {"app": "aegean", "file_id": foreign})
    assert other.value.http_status == 404
    assert jobs.records == {}


async def test_a_file_the_app_cannot_use_is_422_on_file_id() -> None:
    jobs, files = FakeJobQueries(), FakeFiles()
    png = stored_file(files, ext="png", fits=None)
    with pytest.raises(InvalidBody) as caught:
        await submit_v2(jobs, files, {"app": "aegean", "file_id": png})
    assert [e.path for e in caught.value.errors] == ["/file_id"]


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ([], [""]),
        ({}, ["/app", "/file_id"]),
        (
            {"app": 3, "file_id": "x", "options": [], "tag": 5, "extra": 1},
            ["/extra", "/app", "/file_id", "/options", "/tag"],
        ),
        ({"app": "aegean", "file_id": "0" * 32, "tag": "x" * 300}, ["/tag"]),
    ],
)
def test_body_shape_problems_are_all_listed(body: object, paths: list[str]) -> None:
    with pytest.raises(InvalidBody) as caught:
        parse_job_body(body)
    assert [e.path for e in caught.value.errors] == paths


def test_a_well_formed_body() -> None:
    assert parse_job_body({"app": "aegean", "file_id": "0" * 32, "tag": None}) == V2JobBody(
        "aegean", "0" * 32, {}, ""
    )


def test_option_errors_follow_the_published_schema_and_cut_long_values() -> None:
    app = get_app("aegean")
    assert app is not None
    assert option_errors(app, {"seedthr": 6}) == []
    [error] = option_errors(app, {"seedthr": "x" * 5000})
    assert error.path == "/options/seedthr"
    assert len(error.message) < 400


# -- filtered list --------------------------------------------------------------------


async def test_list_filtered_by_state_app_and_since_newest_first() -> None:
    jobs = FakeJobQueries()
    old = add_job(jobs, state="SUCCESS")
    running = add_job(jobs, state="RUNNING")
    done = add_job(jobs, state="SUCCESS")
    gone = add_job(jobs, state="SUCCESS", deleted_at=T0)
    add_job(jobs, state="SUCCESS", owner="bob")

    async def ids(**kw: Any) -> list[str]:
        args: dict[str, Any] = {"states": None, "app": None, "since": None, "limit": 10, "after_id": None}
        args.update(kw)
        page = await job_cases.list_filtered(jobs, OWNER, **args)
        return [j["_id"] for j in page.items]

    assert await ids() == [gone, done, running, old]
    assert await ids(states=["SUCCESS"]) == [done, old]
    assert await ids(states=["DELETED"]) == [gone]
    assert await ids(states=["RUNNING", "DELETED"]) == [gone, running]
    assert await ids(app="pybdsf") == []
    assert await ids(since=T0 + timedelta(minutes=1)) == [gone, done, running]
    assert await ids(states=["SUCCESS"], limit=1) == [done]
    assert await ids(states=["SUCCESS"], limit=1, after_id=done) == [old]


async def test_list_filtered_refuses_a_foreign_or_unknown_cursor_and_unknown_state() -> None:
    jobs = FakeJobQueries()
    foreign = add_job(jobs, owner="bob")
    for after in (foreign, new_job_id(), "nope"):
        with pytest.raises(ApiError) as caught:
            await job_cases.list_filtered(
                jobs, OWNER, states=None, app=None, since=None, limit=5, after_id=after
            )
        assert caught.value.http_status == 400
    with pytest.raises(ApiError):
        await job_cases.list_filtered(
            jobs, OWNER, states=["DONE"], app=None, since=None, limit=5, after_id=None
        )


# -- delete ---------------------------------------------------------------------------


async def test_delete_removes_the_outputs_and_keeps_the_record(tmp_path: Path) -> None:
    jobs = FakeJobQueries()
    job_id = add_job(jobs, state="SUCCESS")
    outputs = tmp_path / OWNER / job_id / "attempts" / "1"
    outputs.mkdir(parents=True)
    (outputs / "catalog.json").write_text("{}")
    neighbour = tmp_path / OWNER / "other.txt"
    neighbour.write_text("stays")

    deleted = await job_cases.delete(jobs, OWNER, job_id, jobs_root=tmp_path)

    assert deleted["deleted_at"] is not None
    assert jobs.records[job_id]["deleted_at"] == deleted["deleted_at"]
    assert jobs.records[job_id]["state"] == "SUCCESS"
    assert not (tmp_path / OWNER / job_id).exists()
    assert neighbour.read_text() == "stays"
    again = await job_cases.delete(jobs, OWNER, job_id, jobs_root=tmp_path)
    assert again["deleted_at"] == deleted["deleted_at"]


async def test_delete_without_outputs_is_fine(tmp_path: Path) -> None:
    jobs = FakeJobQueries()
    job_id = add_job(jobs, state="ABORTED")
    assert (await job_cases.delete(jobs, OWNER, job_id, jobs_root=tmp_path))["deleted_at"] is not None


@pytest.mark.parametrize("state", ["PENDING", "HELD", "QUEUED", "STARTED", "RUNNING"])
async def test_a_job_that_has_not_ended_cannot_be_deleted(tmp_path: Path, state: str) -> None:
    jobs = FakeJobQueries()
    job_id = add_job(jobs, state=state)
    with pytest.raises(ApiError) as caught:
        await job_cases.delete(jobs, OWNER, job_id, jobs_root=tmp_path)
    assert caught.value.http_status == 409
    assert jobs.records[job_id].get("deleted_at") is None


async def test_a_provisional_failure_cannot_be_deleted(tmp_path: Path) -> None:
    jobs = FakeJobQueries()
    job_id = add_job(jobs, state="FAILURE", retryable=True)
    with pytest.raises(ApiError) as caught:
        await job_cases.delete(jobs, OWNER, job_id, jobs_root=tmp_path)
    assert caught.value.http_status == 409


async def test_another_users_job_is_not_found(tmp_path: Path) -> None:
    jobs = FakeJobQueries()
    job_id = add_job(jobs, state="SUCCESS", owner="bob")
    with pytest.raises(ApiError) as caught:
        await job_cases.delete(jobs, OWNER, job_id, jobs_root=tmp_path)
    assert caught.value.http_status == 404
    assert (await job_cases.delete(jobs, "bob", job_id, jobs_root=tmp_path))["deleted_at"] is not None


async def test_a_job_moved_between_the_read_and_the_mark_is_read_again(tmp_path: Path) -> None:
    """A RUNNING job that ends while the delete looks at it: the guarded mark misses, the re-read decides."""
    jobs = FakeJobQueries()
    job_id = add_job(jobs, state="SUCCESS")
    seen: list[str] = []

    def racing(stored: Document) -> None:
        if not seen:
            seen.append("moved")
            stored["state"] = "FAILURE"  # another writer, between the read and the mark

    jobs.before_write = racing
    deleted = await job_cases.delete(jobs, OWNER, job_id, jobs_root=tmp_path)
    assert deleted["state"] == "FAILURE"
    assert seen == ["moved"]


# -- queue position -------------------------------------------------------------------


async def test_queue_position_counts_older_waiting_jobs_of_every_owner_in_the_pool() -> None:
    jobs = FakeJobQueries()
    first = add_job(jobs, state="QUEUED", owner="bob")
    add_job(jobs, state="RUNNING")
    add_job(jobs, state="QUEUED", pool="slurm")
    second = add_job(jobs, state="QUEUED")
    pending = add_job(jobs, state="PENDING")
    third = add_job(jobs, state="QUEUED")

    async def place(job_id: str) -> int | None:
        return await job_cases.queue_position(jobs, jobs.records[job_id])

    assert await place(first) == 1
    assert await place(second) == 2
    assert await place(third) == 3
    assert await place(pending) == 1  # no pool yet: among the PENDING ones
    running = next(j for j in jobs.records if jobs.records[j]["state"] == "RUNNING")
    assert await place(running) is None
