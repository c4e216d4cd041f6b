"""Paths of the Server-Sent Events streams: per job and per user."""

from __future__ import annotations

from typing import Any

from caesar_api.entrypoints.routes import V2
from caesar_api.openapi.components import Schema
from caesar_api.openapi.operations import JOB_ID_PARAM, RETRY_AFTER, operation, problem, query_param
from caesar_api.settings import ApiSettings
from caesar_common.jobstate import JobState

TAG = "jobs"
_STATES = "|".join(s.value for s in JobState)
JOB_EVENT_ID = rf"^\d{{1,6}}\.({_STATES})$"
USER_EVENT_ID = r"^\d{1,15}$"
STREAM: Schema = {"type": "string", "description": "text/event-stream frames (id:, event: state, data:)."}


def _stream_params(settings: ApiSettings, id_pattern: str, id_description: str) -> list[Schema]:
    return [
        query_param(
            "timeout_s",
            f"End the stream after this many seconds (default and maximum {settings.sse_max_stream_s:g}); "
            "reconnect with Last-Event-ID to go on.",
            {"type": "integer", "minimum": 1, "maximum": int(settings.sse_max_stream_s)},
        ),
        query_param(
            "last_event_id",
            f"{id_description} (for clients that cannot send the Last-Event-ID header).",
            {"type": "string", "pattern": id_pattern},
        ),
        {
            "name": "Last-Event-ID",
            "in": "header",
            "required": False,
            "description": f"{id_description}; wins over ?last_event_id=.",
            "schema": {"type": "string", "pattern": id_pattern},
        },
    ]


def _ok(description: str) -> Schema:
    return {"description": description, "content": {"text/event-stream": {"schema": STREAM}}}


def event_paths(settings: ApiSettings) -> dict[str, Any]:
    """``/api/v2/jobs/{job_id}/events`` and ``/api/v2/events``."""
    heartbeat = f"A ': keep-alive' comment every {settings.sse_heartbeat_s:g} s keeps proxies open."
    too_many = {
        **problem(f"The caller has {settings.sse_max_streams_per_user} streams open in this server process."),
        "headers": RETRY_AFTER,
    }
    return {
        f"{V2}/jobs/{{job_id}}/events": {
            "get": operation(
                "getJobEventsV2",
                "Follow a job's states (Server-Sent Events)",
                {
                    "200": _ok(
                        "Each state is an event: id <attempt>.<STATE>, event: state, data: the state name. "
                        "The stream starts with the current state (or the states after Last-Event-ID) and "
                        "ends after a final state. " + heartbeat
                    ),
                    "204": {"description": "Last-Event-ID names a final state: nothing follows."},
                    "400": problem("An invalid timeout_s or Last-Event-ID, or an unknown query parameter."),
                    "404": problem("Unknown job, not the caller's, or not a job id."),
                    "429": too_many,
                    "503": problem("The server is stopping; reconnect."),
                },
                tag=TAG,
                description=(
                    "A client reading too slowly is disconnected; it resumes with Last-Event-ID and "
                    "misses nothing."
                ),
                parameters=[
                    JOB_ID_PARAM,
                    *_stream_params(settings, JOB_EVENT_ID, "Resume after this event id (<attempt>.<STATE>)"),
                ],
            )
        },
        f"{V2}/events": {
            "get": operation(
                "getEventsV2",
                "Follow the states of all of the caller's jobs (Server-Sent Events)",
                {
                    "200": _ok(
                        'Each state is an event: id (milliseconds), event: state, data: {"job_id", "state", '
                        '"attempt", "at"}. From the moment of connecting, or replaying the states applied '
                        f"since Last-Event-ID (less {settings.sse_resume_margin_s:g} s: some may come twice, "
                        "none is lost). " + heartbeat
                    ),
                    "400": problem("An invalid timeout_s or Last-Event-ID, or an unknown query parameter."),
                    "429": too_many,
                    "503": problem("The server is stopping; reconnect."),
                },
                tag=TAG,
                description="Never ends by itself before timeout_s (or the server's maximum).",
                parameters=_stream_params(settings, USER_EVENT_ID, "Resume after this event id"),
            )
        },
    }
