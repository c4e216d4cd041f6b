"""UWS pure rules: phase mapping and filters, parameter parsing, WAIT, views and results."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from vo_models.uws.types import ExecutionPhase

from caesar_api.domain.errors import ApiError
from caesar_api.uws.params import (
    ListQuery,
    WaitRequest,
    coerce,
    parse_int,
    parse_list_query,
    parse_parameters,
    parse_time,
    parse_wait,
)
from caesar_api.uws.phases import (
    DELETED,
    LISTED_BY_DEFAULT,
    PHASE_OF_STATE,
    phase_filter,
    phase_of_job,
)
from caesar_api.uws.views import TAP_RESULT_ID, draft_view, error_text, job_view, result_links, xml_text
from caesar_api.uws.wait import next_pause, should_block, wait_for_change
from caesar_common.apps import APPS, get_app
from caesar_common.events import InputFile
from caesar_common.jobstate import JobState
from caesar_common.layout import JobManifest, ManifestFile

AEGEAN = APPS["aegean"]
FILE_ID = "0123456789abcdef0123456789abcdef"
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


# --- phases -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "phase"),
    [
        ("PENDING", "QUEUED"),
        ("QUEUED", "QUEUED"),
        ("HELD", "HELD"),
        ("STARTED", "EXECUTING"),
        ("RUNNING", "EXECUTING"),
        ("SUCCESS", "COMPLETED"),
        ("FAILURE", "ERROR"),
        ("TIMED-OUT", "ERROR"),
        ("ABORTED", "ERROR"),
        ("CANCELED", "ABORTED"),
    ],
)
def test_every_state_maps_to_its_phase(state: str, phase: str) -> None:
    assert phase_of_job({"state": state}) is ExecutionPhase(phase)


def test_the_mapping_covers_every_state() -> None:
    assert set(PHASE_OF_STATE) == set(JobState)


def test_a_deleted_job_is_archived_whatever_its_state() -> None:
    assert phase_of_job({"state": "SUCCESS", "deleted_at": T0}) is ExecutionPhase.ARCHIVED


def test_no_phase_filter_lists_every_state_but_deleted_and_drafts_too() -> None:
    wanted = phase_filter([])
    assert wanted.phases == LISTED_BY_DEFAULT
    assert ExecutionPhase.PENDING in wanted.phases
    assert wanted.states == {s.value for s in JobState}
    assert DELETED not in wanted.states


def test_repeated_phases_are_a_union_case_insensitive() -> None:
    wanted = phase_filter(["error", "ABORTED"])
    assert wanted.states == {"FAILURE", "TIMED-OUT", "ABORTED", "CANCELED"}
    assert wanted.phases == {ExecutionPhase.ERROR, ExecutionPhase.ABORTED}


def test_pending_alone_lists_drafts_and_no_job_and_archived_lists_deleted_jobs() -> None:
    assert phase_filter(["PENDING"]).states == frozenset()
    assert phase_filter(["ARCHIVED"]).states == {DELETED}
    assert phase_filter(["QUEUED"]).states == {"PENDING", "QUEUED"}


def test_an_unknown_phase_is_a_400_naming_the_known_ones() -> None:
    with pytest.raises(ApiError) as err:
        phase_filter(["RUNNING"])
    assert err.value.http_status == 400
    assert "EXECUTING" in err.value.message


# --- parameters -----------------------------------------------------------------------------


def test_parameters_are_typed_by_the_apps_option_table() -> None:
    params = parse_parameters(
        [("SeedThr", "5"), ("bkgbox", "100"), ("save-bkgmap", "TRUE"), ("inputfile", FILE_ID)], AEGEAN
    )
    assert params.options == {"seedthr": 5.0, "bkgbox": 100, "save-bkgmap": True}
    assert params.file_id == FILE_ID
    assert params.run is False
    AEGEAN.validate(params.options)  # what the parser makes, the app accepts


def test_control_parameters_phase_runid_and_a_path_input() -> None:
    params = parse_parameters(
        [("phase", "run"), ("RUNID", "survey-1"), ("INPUTFILE", f"/data/{FILE_ID}.fits")], AEGEAN
    )
    assert params.run is True
    assert params.run_id == "survey-1"
    assert params.file_id == FILE_ID
    assert params.options == {}


def test_unparseable_values_and_unknown_names_are_left_for_the_app_to_refuse() -> None:
    params = parse_parameters([("bkgbox", "big"), ("nosuch", "1")], AEGEAN)
    assert params.options == {"bkgbox": "big", "nosuch": "1"}


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ([("seedthr", "5"), ("SEEDTHR", "6")], "more than once"),
        ([("PHASE", "ABORT")], "only PHASE=RUN"),
        ([("inputfile", "/etc/passwd")], "Invalid inputfile"),
        ([("RUNID", "x" * 257)], "RUNID longer"),
    ],
)
def test_malformed_parameters_are_400s(fields: list[tuple[str, str]], needle: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_parameters(fields, AEGEAN)
    assert err.value.http_status == 400
    assert needle in err.value.message


def test_v1_non_option_inputs_other_than_the_file_are_ignored() -> None:
    assert parse_parameters([("envfile", "/x.sh"), ("run", "true")], AEGEAN).options == {}


def test_option_names_stay_unique_when_case_is_ignored() -> None:
    for app in APPS.values():
        names = [o.name.lower() for o in app.options]
        assert len(names) == len(set(names)), app.name


def test_coerce_follows_the_option_kind() -> None:
    assert coerce(AEGEAN.option("bkgbox"), " 7 ") == 7
    assert coerce(AEGEAN.option("bkgbox"), "7.0") == 7.0
    assert coerce(AEGEAN.option("seedthr"), "nan") != coerce(AEGEAN.option("seedthr"), "nan")  # a float NaN
    assert coerce(AEGEAN.option("save-bkgmap"), "0") is False
    assert coerce(AEGEAN.option("save-bkgmap"), "maybe") == "maybe"
    assert coerce(None, " as is ") == " as is "


def test_list_query_filters() -> None:
    query = parse_list_query(
        [("phase", "QUEUED"), ("PHASE", "EXECUTING"), ("AFTER", "2026-11-30T10:00:00Z"), ("LAST", "5")]
    )
    assert query == ListQuery(["QUEUED", "EXECUTING"], datetime(2026, 11, 30, 10, tzinfo=UTC), 5)
    for bad in ([("LAST", "0")], [("LAST", "x")], [("AFTER", "yesterday")], [("AFTER", "2026-11-30")]):
        with pytest.raises(ApiError) as err:
            parse_list_query(bad)
        assert err.value.http_status == 400


def test_times_take_everything_rfc3339_allows() -> None:
    assert parse_time("AFTER", "2026-11-30t10:00:00.5z") == datetime(
        2026, 11, 30, 10, 0, 0, 500000, tzinfo=UTC
    )
    assert parse_time("AFTER", "2026-11-30T10:00:00+01:00") == datetime(2026, 11, 30, 9, tzinfo=UTC)
    assert parse_time("AFTER", "2026-11-30T23:59:60Z").second == 59
    assert parse_time("AFTER", "0001-01-01T00:00:00+01:00").year == 1
    with pytest.raises(ApiError):
        parse_time("AFTER", "2026-13-01T00:00:00Z")


def test_int_bounds() -> None:
    assert parse_int("LAST", "3", minimum=1) == 3
    with pytest.raises(ApiError):
        parse_int("EXECUTIONDURATION", str(2**31), minimum=0)


# --- WAIT ---------------------------------------------------------------------------------


def test_wait_is_capped_by_the_server_maximum_and_minus_one_means_the_maximum() -> None:
    assert parse_wait([("WAIT", "30")], 60.0) == WaitRequest(30.0, None)
    assert parse_wait([("WAIT", "600")], 60.0).seconds == 60.0
    assert parse_wait([("wait", "-1"), ("phase", "queued")], 60.0) == WaitRequest(60.0, ExecutionPhase.QUEUED)
    assert parse_wait([], 60.0).seconds == 0
    for bad in ("-2", "1.5", "soon"):
        with pytest.raises(ApiError):
            parse_wait([("WAIT", bad)], 60.0)


def test_should_block_only_in_active_phases_and_while_still_in_the_named_one() -> None:
    wait = WaitRequest(10.0, None)
    assert should_block(ExecutionPhase.EXECUTING, wait)
    assert should_block(ExecutionPhase.PENDING, wait)
    assert not should_block(ExecutionPhase.COMPLETED, wait)
    assert not should_block(ExecutionPhase.HELD, wait)
    assert not should_block(ExecutionPhase.QUEUED, WaitRequest(0.0, None))
    assert not should_block(ExecutionPhase.EXECUTING, WaitRequest(10.0, ExecutionPhase.QUEUED))
    assert should_block(ExecutionPhase.QUEUED, WaitRequest(10.0, ExecutionPhase.QUEUED))


def test_next_pause_is_the_interval_cut_at_the_deadline() -> None:
    assert next_pause(now=0.0, deadline=10.0, poll_s=1.0) == 1.0
    assert next_pause(now=9.5, deadline=10.0, poll_s=1.0) == 0.5
    assert next_pause(now=11.0, deadline=10.0, poll_s=1.0) == 0.0


class FakeClock:
    """Time that moves only when the wait sleeps (through the signal)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def changed(self, job_id: str, timeout_s: float) -> None:
        self.pauses.append(timeout_s)
        self.now += timeout_s


def test_wait_returns_at_the_deadline_after_reading_at_the_poll_interval() -> None:
    clock = FakeClock()

    async def read() -> ExecutionPhase:
        return ExecutionPhase.QUEUED

    phase = asyncio.run(
        wait_for_change(read, ExecutionPhase.QUEUED, 3.5, poll_s=1.0, job_id="j", signal=clock, clock=clock)
    )
    assert phase is ExecutionPhase.QUEUED
    assert clock.pauses == [1.0, 1.0, 1.0, 0.5]


def test_wait_returns_as_soon_as_the_phase_changes() -> None:
    clock = FakeClock()
    phases = iter([ExecutionPhase.QUEUED, ExecutionPhase.EXECUTING])

    async def read() -> ExecutionPhase:
        return next(phases)

    phase = asyncio.run(
        wait_for_change(read, ExecutionPhase.QUEUED, 60.0, poll_s=1.0, job_id="j", signal=clock, clock=clock)
    )
    assert phase is ExecutionPhase.EXECUTING
    assert len(clock.pauses) == 2


# --- views and results ------------------------------------------------------------------------


def job(**fields: Any) -> dict[str, Any]:
    return {
        "_id": "11111111-2222-4333-8444-555555555555",
        "owner": "alice",
        "app": "aegean",
        "params": {"seedthr": 5.0},
        "input": {"file_id": FILE_ID, "ext": "fits"},
        "tag": "run-7",
        "submitted_at": T0,
        "state": "SUCCESS",
        "attempt": 1,
        **fields,
    }


def test_a_job_created_as_a_draft_keeps_the_drafts_id_and_creation_time() -> None:
    draft = {"_id": "draft-id", "created_at": datetime(2026, 11, 30, 11, tzinfo=UTC)}
    view = job_view(job(started_at=T0, ended_at=T0), AEGEAN, draft)
    assert view.uws_id == "draft-id"
    assert view.creation_time == draft["created_at"]
    assert view.parameters == [("seedthr", "5.0"), ("inputfile", FILE_ID)]
    assert view.run_id == "run-7"
    assert view.execution_duration == AEGEAN.default_wall_time_s
    assert job_view(job(), AEGEAN).uws_id == job()["_id"]


def test_a_failure_has_a_fatal_error_summary_and_an_error_text() -> None:
    view = job_view(job(state="FAILURE", exit_code=2), AEGEAN)
    assert view.error is not None
    assert view.error.fatal
    assert "return code 2" in view.error.message
    assert "exit code: 2" in (error_text(view) or "")
    lost = job_view(job(state="FAILURE", retryable=True, reason="runner lost"), AEGEAN)
    assert lost.error is not None
    assert not lost.error.fatal
    assert job_view(job(state="CANCELED"), AEGEAN).error is None
    assert error_text(job_view(job(), AEGEAN)) is None


def test_drafts_are_pending_until_aborted() -> None:
    draft: dict[str, Any] = {
        "_id": "d",
        "owner": "alice",
        "params": {"save-bkgmap": True},
        "file_id": FILE_ID,
        "run_id": "",
        "created_at": T0,
    }
    view = draft_view(draft, AEGEAN)
    assert view.phase is ExecutionPhase.PENDING
    assert view.parameters == [("save-bkgmap", "true"), ("inputfile", FILE_ID)]
    assert view.run_id is None
    assert draft_view({**draft, "aborted_at": T0}, AEGEAN).phase is ExecutionPhase.ABORTED


def test_text_xml_cannot_hold_is_replaced() -> None:
    assert xml_text("a\x00b\x1b") == "a\ufffdb\ufffd"
    assert job_view(job(tag="t\x01"), AEGEAN).run_id == "t\ufffd"


def manifest(**catalog: Any) -> JobManifest:
    return JobManifest(
        job_id="j",
        attempt=1,
        app="aegean",
        app_version="1",
        parameters={},
        input=InputFile(file_id=FILE_ID, ext="fits", size_bytes=1, sha256=""),
        runner_id="r",
        started_at=T0,
        finished_at=T0,
        state=JobState.SUCCESS,
        exit_code=0,
        elapsed_s=1.0,
        cpu_s=1.0,
        peak_rss_bytes=1,
        files=[
            ManifestFile(name="sources.fits", size_bytes=100),
            ManifestFile(name="preview.png", size_bytes=20),
            ManifestFile(name="aegean.stdout.log", size_bytes=3),
        ],
        catalog=catalog or None,
    )


def test_results_list_every_catalogue_format_the_preview_and_the_logs() -> None:
    record = {
        "catalogs": {
            "sources": {
                "canonical": "sources.fits",
                "files": {"fits": "sources.fits"},
                "derived": {"votable": "sources.vot", "csv": "sources.csv"},
            }
        },
        "preview": "preview.png",
    }
    links = result_links("JOB", manifest(**record), "http://h:1")
    by_id = {link.id: link for link in links}
    assert [link.id for link in links] == [
        "sources-votable",
        TAP_RESULT_ID,
        "sources-fits",
        "sources-csv",
        "preview",
        "log-aegean.stdout.log",
    ]
    assert by_id["sources-fits"].size == 100
    assert by_id["sources-fits"].href == "http://h:1/api/v2/jobs/JOB/catalog?format=fits&kind=sources"
    assert by_id[TAP_RESULT_ID].href == by_id["sources-votable"].href
    assert by_id["preview"].href == "http://h:1/api/v2/jobs/JOB/preview.png"
    assert by_id["log-aegean.stdout.log"].href == "http://h:1/api/v2/jobs/JOB/files/aegean.stdout.log"
    assert result_links("JOB", None, "http://h") == []
    assert [link.id for link in result_links("JOB", manifest(), "http://h")] == ["log-aegean.stdout.log"]


def test_get_app_is_the_registry() -> None:
    assert get_app("aegean") is AEGEAN
