"""SSE framing and the event ids a client resumes from (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from caesar_api.push.domain.sse import (
    KEEP_ALIVE,
    BadEventId,
    event_frame,
    job_event_id,
    parse_job_event_id,
    parse_user_event_id,
    retry_frame,
    user_event_id,
)
from caesar_common.jobstate import JobPosition, JobState


def test_a_frame_has_id_event_and_one_data_line_per_line() -> None:
    frame = event_frame("1.RUNNING", "a\nb\r\nc")
    assert frame == b"id: 1.RUNNING\nevent: state\ndata: a\ndata: b\ndata: c\n\n"


def test_a_frame_refuses_an_id_that_would_break_the_stream() -> None:
    with pytest.raises(ValueError, match="one line"):
        event_frame("1\n2", "x")
    with pytest.raises(ValueError, match="one line"):
        event_frame("1\x002", "x")


def test_keep_alive_and_retry_are_comment_and_field_lines() -> None:
    assert KEEP_ALIVE == b": keep-alive\n\n"
    assert retry_frame(2000) == b"retry: 2000\n\n"


@pytest.mark.parametrize("state", list(JobState))
def test_job_ids_round_trip_every_state(state: JobState) -> None:
    position = JobPosition(3, state)
    assert parse_job_event_id(job_event_id(position)) == position


@pytest.mark.parametrize(
    "value", ["", "1", "RUNNING", "1.running", "1.NOPE", "-1.RUNNING", "1234567.RUNNING"]
)
def test_job_ids_this_server_never_sent_are_refused(value: str) -> None:
    with pytest.raises(BadEventId):
        parse_job_event_id(value)


def test_user_ids_are_milliseconds_and_round_trip() -> None:
    at = datetime(2026, 11, 30, 17, 4, 5, 123000, tzinfo=UTC)
    assert user_event_id(at) == "1796058245123"
    assert parse_user_event_id(user_event_id(at)) == at
    # Exact to the millisecond (a float product would turn some of them into the one before).
    for ms in range(0, 1000, 7):
        t = at.replace(microsecond=ms * 1000)
        assert user_event_id(t).endswith(f"{ms:03d}")


@pytest.mark.parametrize("value", ["", "x", "1.5", "-3", "1" * 16])
def test_user_ids_this_server_never_sent_are_refused(value: str) -> None:
    with pytest.raises(BadEventId):
        parse_user_event_id(value)
