"""The v2 job list's filters and the queue position's query (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from caesar_api.domain.errors import ApiError
from caesar_api.domain.v2_query import (
    DELETED,
    STATE_NAMES,
    JobFilter,
    is_waiting,
    job_filter,
    jobs_query,
    parse_since,
    parse_states,
    waiting_ahead_query,
)

T0 = datetime(2026, 11, 30, 17, 4, 5, tzinfo=UTC)


def test_states_may_repeat_or_be_comma_separated_in_any_case() -> None:
    assert parse_states(["RUNNING", "success,queued"]) == frozenset({"RUNNING", "SUCCESS", "QUEUED"})
    assert parse_states(["TIMED_OUT", "timed-out", "deleted"]) == frozenset({"TIMED-OUT", DELETED})
    assert parse_states([" PENDING , ", ""]) == frozenset({"PENDING"})


def test_no_state_means_no_filter() -> None:
    assert parse_states([]) is None
    assert parse_states(["", ","]) is None


def test_an_unknown_state_is_a_400_naming_the_known_ones() -> None:
    with pytest.raises(ApiError) as caught:
        parse_states(["RUNNING,DONE"])
    assert caught.value.http_status == 400
    assert "DONE" in caught.value.message
    assert all(name in caught.value.message for name in STATE_NAMES)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-30T17:04:05+00:00", T0),
        ("2026-11-30T17:04:05Z", T0),
        ("2026-11-30t17:04:05z", T0),
        ("2026-11-30T18:04:05+01:00", T0),
        ("2026-11-30T17:04:05", T0),  # no offset: UTC
        ("2026-11-30", datetime(2026, 11, 30, tzinfo=UTC)),
    ],
)
def test_since_is_an_iso_time_in_utc(raw: str, expected: datetime) -> None:
    since = parse_since(raw)
    assert since == expected
    assert since is not None
    assert since.utcoffset() == timedelta(0)


@pytest.mark.parametrize("raw", ["yesterday", "", "2026-13-01", "1700000000", "2026-11-30T25:00"])
def test_a_bad_since_is_a_400(raw: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_since(raw)
    assert caught.value.http_status == 400


def test_no_since_is_none() -> None:
    assert parse_since(None) is None


def test_query_always_names_the_owner() -> None:
    assert jobs_query("alice", JobFilter()) == {"owner": "alice"}


def test_query_of_every_filter() -> None:
    wanted = job_filter(["SUCCESS,FAILURE"], "aegean", T0)
    assert jobs_query("alice", wanted) == {
        "owner": "alice",
        "app": "aegean",
        "submitted_at": {"$gte": T0},
        "state": {"$in": ["FAILURE", "SUCCESS"]},
        "deleted_at": None,  # a deleted SUCCESS is shown as DELETED, not SUCCESS
    }


def test_deleted_is_the_deleted_at_mark_whatever_the_stored_state() -> None:
    assert jobs_query("alice", job_filter(["DELETED"], None, None)) == {
        "owner": "alice",
        "deleted_at": {"$ne": None},
    }
    both = jobs_query("alice", job_filter(["DELETED", "CANCELED"], None, None))
    assert both == {
        "owner": "alice",
        "$or": [{"state": {"$in": ["CANCELED"]}, "deleted_at": None}, {"deleted_at": {"$ne": None}}],
    }


def test_job_filter_checks_the_states_it_is_given() -> None:
    with pytest.raises(ApiError):
        job_filter(["nope"], None, None)
    assert job_filter(None, "", None) == JobFilter()


def _job(state: str, pool: str = "local", **extra: object) -> dict[str, object]:
    return {"_id": "j", "state": state, "pool": pool, "submitted_at": T0, **extra}


@pytest.mark.parametrize("state", ["PENDING", "QUEUED"])
def test_a_waiting_job_counts_the_older_waiting_jobs_of_its_pool(state: str) -> None:
    assert is_waiting(_job(state))
    assert waiting_ahead_query(_job(state)) == {
        "state": {"$in": ["PENDING", "QUEUED"]},
        "pool": "local",
        "submitted_at": {"$lt": T0},
    }


def test_a_pending_job_without_a_pool_counts_among_those_without_one() -> None:
    query = waiting_ahead_query({"state": "PENDING", "pool": "", "submitted_at": T0})
    assert query is not None
    assert query["pool"] == ""
    query = waiting_ahead_query({"state": "PENDING", "submitted_at": T0})
    assert query is not None
    assert query["pool"] == ""


@pytest.mark.parametrize("state", ["HELD", "STARTED", "RUNNING", "SUCCESS", "FAILURE", "CANCELED"])
def test_a_job_that_does_not_wait_has_no_position(state: str) -> None:
    assert not is_waiting(_job(state))
    assert waiting_ahead_query(_job(state)) is None


def test_a_deleted_job_has_no_position() -> None:
    assert waiting_ahead_query(_job("QUEUED", deleted_at=T0)) is None


def test_since_keeps_the_offset_free_equivalent() -> None:
    later = parse_since("2026-11-30T19:04:05+02:00")
    assert later == T0
    assert later is not None
    assert later.tzinfo is UTC
    assert parse_since("2026-11-30T17:04:05-00:00") == T0.astimezone(UTC)
