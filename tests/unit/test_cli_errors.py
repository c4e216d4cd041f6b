"""``caesar`` errors: the server's problem details become readable messages and stable exit codes."""

from __future__ import annotations

import json

import pytest

from caesar_cli.codes import EXIT_CODES_HELP, ExitCode, exit_code_for_status
from caesar_cli.errors import http_error, problem_message
from caesar_cli.timespec import since_param


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, ExitCode.USAGE),
        (409, ExitCode.USAGE),
        (413, ExitCode.USAGE),
        (422, ExitCode.USAGE),
        (401, ExitCode.AUTH),
        (403, ExitCode.AUTH),
        (404, ExitCode.NOT_FOUND),
        (410, ExitCode.NOT_FOUND),
        (500, ExitCode.SERVER),
        (503, ExitCode.SERVER),
    ],
)
def test_status_to_exit_code(status: int, code: ExitCode) -> None:
    assert exit_code_for_status(status) == code


def test_exit_codes_are_documented_in_the_help_text() -> None:
    for code in ExitCode:
        assert f"{int(code)} " in EXIT_CODES_HELP


def test_problem_details_show_the_detail_and_each_field_error() -> None:
    body = {
        "type": "about:blank",
        "title": "Unprocessable Content",
        "status": 422,
        "detail": "The options do not fit the app's schema",
        "errors": [
            {"path": "/options/bkgbox", "message": "3 is less than the minimum of 5"},
            {"path": "", "message": "'app' is a required property"},
        ],
    }
    assert problem_message(422, json.dumps(body).encode(), "Unprocessable Content") == (
        "HTTP 422 Unprocessable Content: The options do not fit the app's schema\n"
        "  /options/bkgbox: 3 is less than the minimum of 5\n"
        "  (body): 'app' is a required property"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"status": "Job not found!"}', "HTTP 404: Job not found!"),  # the v1 shape
        (b'{"title": "Not Found"}', "HTTP 404: Not Found"),
        (b"<html>bad gateway</html>", "HTTP 404: <html>bad gateway</html>"),
        (b"", "HTTP 404"),
        (b"[1]", "HTTP 404: [1]"),
    ],
)
def test_other_error_bodies(body: bytes, expected: str) -> None:
    assert problem_message(404, body) == expected


def test_unauthorized_points_at_login() -> None:
    err = http_error(401, b'{"detail": "Missing bearer token"}')
    assert err.code == ExitCode.AUTH
    assert "caesar login" in err.message
    assert "Missing bearer token" in err.message


def test_since_accepts_ages_and_iso_times() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
    assert since_param("30m", now) == "2026-11-30T11:30:00+00:00"
    assert since_param("2d", now) == "2026-11-28T12:00:00+00:00"
    assert since_param("1w", now) == "2026-11-23T12:00:00+00:00"
    assert since_param("2026-11-01", now) == "2026-11-01T00:00:00+00:00"
    assert since_param("2026-11-01T05:00:00+02:00", now) == "2026-11-01T05:00:00+02:00"
    with pytest.raises(ValueError, match="--since"):
        since_param("yesterday", now)
