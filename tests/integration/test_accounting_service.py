"""Accounting on the real broker and database: duplicates and retries never double count."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from caesar_accounting.adapters.files import FILE_USAGE
from caesar_accounting.adapters.jobs import JOB_USAGE
from caesar_accounting.bootstrap import INDEXES, OUTBOX_COLLECTIONS, SERVICE, build
from caesar_accounting.entrypoints.consumer import ACCOUNTING_QUEUE
from caesar_accounting.entrypoints.http import create_app
from caesar_accounting.settings import AccountingSettings
from caesar_common.bus import Bus
from caesar_common.events import (
    Envelope,
    FileDeleted,
    FileUploaded,
    InputFile,
    JobStateChanged,
    JobSubmitted,
    Message,
    OutputFile,
)
from caesar_common.ids import new_file_id, new_job_id
from caesar_common.jobstate import JobState
from caesar_common.runtime import ServiceRuntime, add_operational_routes
from tests.conftest import Vhost
from tests.integration.conftest import ServiceStarter
from tests.integration.service_support import eventually, handled, sample

pytestmark = pytest.mark.integration

DAY1 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


@pytest.fixture
async def accounting(
    amqp_url: str, mongo_url: str, db_prefix: str, start_service: ServiceStarter
) -> ServiceRuntime[AccountingSettings]:
    settings = AccountingSettings(
        amqp_url=amqp_url,
        mongo_url=mongo_url,
        mongo_db_prefix=db_prefix,
        http_port=0,
        metrics_interval_s=0.2,
    )
    return await start_service(
        SERVICE, settings, build, indexes=INDEXES, outbox_collections=OUTBOX_COLLECTIONS
    )


def submitted(job_id: str, owner: str, app: str, when: datetime) -> JobSubmitted:
    return JobSubmitted(
        job_id=job_id,
        owner=owner,
        app=app,
        params={},
        input=InputFile(file_id="a" * 32, ext="fits"),
        wall_time_s=600,
        submitted_at=when,
    )


def ended(
    job_id: str,
    owner: str,
    app: str,
    state: JobState,
    *,
    attempt: int = 1,
    retryable: bool = False,
    wall: float = 10.0,
    cpu: float = 4.0,
    rss: int = 1000,
) -> JobStateChanged:
    return JobStateChanged(
        job_id=job_id,
        owner=owner,
        app=app,
        attempt=attempt,
        state=state,
        retryable=retryable,
        changed_at=datetime.now(UTC),
        elapsed_s=wall,
        cpu_s=cpu,
        peak_rss_bytes=rss,
        outputs=[OutputFile(name="catalogue.json", size_bytes=100)],
    )


async def test_totals_equal_the_truth_despite_duplicates_retries_and_reordering(
    accounting: ServiceRuntime[AccountingSettings], bus: Bus, vhost: Vhost
) -> None:
    app = f"app-{uuid.uuid4().hex[:8]}"
    other_app = f"app-{uuid.uuid4().hex[:8]}"
    retried, failed, canceled, active, bobs = (new_job_id() for _ in range(5))
    kept, removed, bobs_file = new_file_id(), new_file_id(), new_file_id()
    jobs_before = sample("caesar_accounting_jobs_total", app=app, outcome="success")
    cpu_before = sample("caesar_accounting_cpu_seconds_total", app=app)
    wall_before = sample("caesar_accounting_wall_seconds_total", app=app)

    messages: list[Message] = [
        submitted(retried, "alice", app, DAY1),
        ended(retried, "alice", app, JobState.FAILURE, retryable=True, cpu=99.0, wall=99.0),
        ended(retried, "alice", app, JobState.SUCCESS, attempt=2, cpu=6.0, wall=20.0, rss=5000),
        submitted(failed, "alice", app, DAY1),
        ended(failed, "alice", app, JobState.FAILURE, cpu=1.0, wall=2.0),
        submitted(canceled, "alice", other_app, DAY2),
        ended(canceled, "alice", other_app, JobState.CANCELED, cpu=0.0, wall=0.0, rss=0),
        submitted(active, "alice", app, DAY2),
        submitted(bobs, "bob", app, DAY2),
        ended(bobs, "bob", app, JobState.SUCCESS, cpu=3.0, wall=5.0),
        FileUploaded(
            file_id=kept,
            owner="alice",
            filename="a.fits",
            ext="fits",
            size_bytes=1000,
            sha256="0" * 64,
            uploaded_at=DAY1,
        ),
        FileUploaded(
            file_id=removed,
            owner="alice",
            filename="b.fits",
            ext="fits",
            size_bytes=500,
            sha256="1" * 64,
            uploaded_at=DAY2,
        ),
        FileDeleted(file_id=removed, owner="alice", size_bytes=500),
        FileUploaded(
            file_id=bobs_file,
            owner="bob",
            filename="c.fits",
            ext="fits",
            size_bytes=70,
            sha256="2" * 64,
            uploaded_at=DAY2,
        ),
    ]
    envelopes = [Envelope.wrap(m, "test") for m in messages]
    storm = envelopes * 3  # every event delivered three times
    random.Random(20260504).shuffle(storm)  # one fixed disorder: a failure reproduces
    handled_before = handled(ACCOUNTING_QUEUE.name)
    for envelope in storm:
        await bus.publish(envelope)
    # Every copy handled and acked (the broker's queue depth lags: it can read 0 before
    # the messages are even counted), so nothing in flight can change the totals.
    await eventually(
        lambda: handled(ACCOUNTING_QUEUE.name) >= handled_before + len(storm), what="all handled"
    )

    jobs = {d["_id"]: d async for d in accounting.collection(JOB_USAGE).find({})}
    assert jobs[retried]["outcome"] == "SUCCESS"
    assert jobs[retried]["attempt"] == 2
    assert jobs[retried]["day"] == "2026-05-04"
    assert jobs[active].get("outcome") is None
    files = {d["_id"]: d async for d in accounting.collection(FILE_USAGE).find({})}
    assert files[removed]["deleted_at"] is not None
    assert files[kept]["deleted_at"] is None

    app_ = create_app()
    add_operational_routes(app_, accounting)
    async with TestServer(app_) as server, aiohttp.ClientSession() as http:
        async with http.get(server.make_url("/usage"), params={"owner": "alice"}) as resp:
            assert resp.status == 200
            alice = await resp.json()
        async with http.get(server.make_url("/usage/all")) as resp:
            assert resp.status == 200
            everyone = await resp.json()
        async with http.get(server.make_url("/usage"), params={"owner": "../x"}) as resp:
            assert resp.status == 400

    totals = alice["totals"]
    assert totals["njobs"] == 4
    assert totals["njobs_completed"] == 1
    assert totals["njobs_failed"] == 1
    assert totals["njobs_canceled"] == 1
    assert totals["njobs_active"] == 1
    assert totals["cpu_s"] == 7.0  # 6 (attempt 2) + 1; the lost attempt is not accounted
    assert totals["wall_s"] == 22.0
    assert totals["peak_rss_bytes"] == 5000
    assert totals["bytes_stored"] == 1000
    assert totals["nfiles"] == 1
    assert alice["by_app"][app]["njobs"] == 3
    assert alice["by_app"][other_app]["njobs_canceled"] == 1
    assert alice["by_day"]["2026-05-04"]["njobs"] == 2
    assert alice["by_day"]["2026-05-05"]["njobs"] == 2
    assert alice["by_day"]["2026-05-04"]["bytes_stored"] == 1000
    assert "timestamp" in alice

    assert everyone["nusers"] == 2
    assert everyone["totals"]["njobs"] == 5
    assert everyone["totals"]["njobs_completed"] == 2
    assert everyone["totals"]["bytes_stored"] == 1070

    # Each final outcome counted once, whatever the number of deliveries.
    assert sample("caesar_accounting_jobs_total", app=app, outcome="success") - jobs_before == 2
    assert sample("caesar_accounting_jobs_total", app=app, outcome="failure") == 1
    assert sample("caesar_accounting_jobs_total", app=other_app, outcome="canceled") == 1
    assert sample("caesar_accounting_cpu_seconds_total", app=app) - cpu_before == 10.0
    assert sample("caesar_accounting_wall_seconds_total", app=app) - wall_before == 27.0

    async def gauge_right() -> bool:
        return sample("caesar_accounting_bytes_stored") == 1070

    await eventually(gauge_right)


async def test_deletion_overtaking_its_upload_is_not_stored(
    accounting: ServiceRuntime[AccountingSettings], bus: Bus
) -> None:
    file_id = new_file_id()
    await bus.publish(Envelope.wrap(FileDeleted(file_id=file_id, owner="carol", size_bytes=42), "test"))

    async def deleted() -> bool:
        doc = await accounting.collection(FILE_USAGE).find_one({"_id": file_id})
        return doc is not None and doc.get("deleted_at") is not None

    await eventually(deleted)
    upload = FileUploaded(
        file_id=file_id,
        owner="carol",
        filename="x.fits",
        ext="fits",
        size_bytes=42,
        sha256="3" * 64,
        uploaded_at=DAY1,
    )
    await bus.publish(Envelope.wrap(upload, "test"))

    async def uploaded() -> bool:
        doc = await accounting.collection(FILE_USAGE).find_one({"_id": file_id})
        return doc is not None and doc.get("uploaded_at") is not None

    await eventually(uploaded)
    doc = await accounting.collection(FILE_USAGE).find_one({"_id": file_id})
    assert doc is not None
    assert (doc["owner"], doc["size_bytes"], doc["day"]) == ("carol", 42, "2026-05-04")
    assert doc["deleted_at"] is not None

    async def nothing_stored() -> bool:
        return sample("caesar_accounting_bytes_stored") == 0

    await eventually(nothing_stored)


def more_handled(than: float) -> bool:
    return handled("accounting.events") > than


async def test_the_counted_outcome_is_the_apis_and_lost_attempts_are_billed_apart(
    accounting: ServiceRuntime[AccountingSettings], bus: Bus
) -> None:
    """Attempt 1 lost (retryable, 5 s CPU), attempt 2 succeeds (3 s), then attempt 1's late
    true outcome (SUCCESS, 4 s): SUCCESS of attempt 2 is counted with 3 s, and attempt 1's
    4 s (its true outcome's figures replace the provisional verdict's) are reported apart."""
    owner = f"dave-{uuid.uuid4().hex[:8]}"
    app = f"app-{uuid.uuid4().hex[:8]}"
    job_id = new_job_id()
    sequence = [
        submitted(job_id, owner, app, DAY1),
        ended(job_id, owner, app, JobState.FAILURE, attempt=1, retryable=True, cpu=5.0, wall=6.0),
        ended(job_id, owner, app, JobState.SUCCESS, attempt=2, cpu=3.0, wall=7.0),
        ended(job_id, owner, app, JobState.SUCCESS, attempt=1, cpu=4.0, wall=8.0),
    ]
    for message in sequence:  # one at a time: the order is the test
        before = handled("accounting.events")
        await bus.publish(Envelope.wrap(message, "test"))
        await eventually(partial(more_handled, before), what=f"{type(message).__name__} handled")

    doc = await accounting.collection(JOB_USAGE).find_one({"_id": job_id})
    assert doc is not None
    assert (doc["outcome"], doc["attempt"], doc["cpu_s"]) == ("SUCCESS", 2, 3.0)
    assert doc["attempts"]["1"]["cpu_s"] == 4.0
    assert doc["attempts"]["2"]["cpu_s"] == 3.0

    app_ = create_app()
    add_operational_routes(app_, accounting)
    async with (
        TestServer(app_) as server,
        aiohttp.ClientSession() as http,
        http.get(server.make_url("/usage"), params={"owner": owner}) as resp,
    ):
        assert resp.status == 200
        totals = (await resp.json())["totals"]
    assert (totals["njobs"], totals["njobs_completed"], totals["njobs_active"]) == (1, 1, 0)
    assert (totals["cpu_s"], totals["wall_s"]) == (3.0, 7.0)
    assert (totals["attempts"], totals["lost_attempts"]) == (2, 1)
    assert (totals["cpu_s_lost_attempts"], totals["wall_s_lost_attempts"]) == (4.0, 8.0)


async def test_the_report_over_a_range_splits_active_jobs_into_pending_and_running(
    accounting: ServiceRuntime[AccountingSettings], bus: Bus
) -> None:
    """On the real database: the report reads each job's position (the api's) and day."""
    owner = f"erin-{uuid.uuid4().hex[:8]}"
    app = f"app-{uuid.uuid4().hex[:8]}"
    queued, running, done, earlier = (new_job_id() for _ in range(4))

    def moved(job_id: str, state: JobState) -> JobStateChanged:
        return JobStateChanged(job_id=job_id, owner=owner, app=app, attempt=1, state=state, changed_at=DAY2)

    sequence: list[Message] = [
        submitted(queued, owner, app, DAY2),
        moved(queued, JobState.QUEUED),
        submitted(running, owner, app, DAY2),
        moved(running, JobState.QUEUED),
        moved(running, JobState.STARTED),
        moved(running, JobState.RUNNING),
        submitted(done, owner, app, DAY2),
        ended(done, owner, app, JobState.SUCCESS, wall=12.0),
        submitted(earlier, owner, app, DAY1),
        ended(earlier, owner, app, JobState.FAILURE),
    ]
    before = handled(ACCOUNTING_QUEUE.name)
    for message in sequence:
        await bus.publish(Envelope.wrap(message, "test"))
    await eventually(lambda: handled(ACCOUNTING_QUEUE.name) >= before + len(sequence), what="all handled")

    app_ = create_app()
    add_operational_routes(app_, accounting)
    day2 = DAY2.date().isoformat()
    async with TestServer(app_) as server, aiohttp.ClientSession() as http:
        params = {"group_by": "day", "owner": owner, "from": day2, "to": day2}
        async with http.get(server.make_url("/usage/report"), params=params) as resp:
            assert resp.status == 200
            report = await resp.json()
        async with http.get(
            server.make_url("/usage/report"), params={"from": "2026-05-09", "to": "x"}
        ) as resp:
            assert resp.status == 400
            assert "to must be a date" in (await resp.json())["error"]

    assert [row["day"] for row in report["rows"]] == [day2]
    totals = report["totals"]
    assert (totals["njobs"], totals["njobs_pending"], totals["njobs_running"], totals["njobs_completed"]) == (
        3,
        1,
        1,
        1,
    )
    assert totals["wall_s_completed"] == 12.0
