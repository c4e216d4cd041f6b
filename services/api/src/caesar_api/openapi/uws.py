"""Paths of the IVOA UWS 1.1 job lists: ``/uws/{app}/...`` (see ``docs/uws.md``).

Answers are XML (``text/xml``, UWS 1.1 documents) or plain text; errors are plain text.
State-changing requests answer 303 with a ``Location``. Parameters are form fields
(``application/x-www-form-urlencoded``), names matched without regard to case.
"""

from __future__ import annotations

from typing import Any, Final

from caesar_api.openapi.components import Schema
from caesar_api.openapi.models import FILE_ID_PATTERN, JOB_ID_PATTERN
from caesar_api.openapi.operations import error, operation, path_param, query_param
from caesar_api.settings import ApiSettings
from caesar_common.apps import app_names

TAG: Final = "uws"
UWS: Final = "/uws"
FORM: Final = "application/x-www-form-urlencoded"
TEXT: Schema = {"type": "string"}
PHASES: Final = [
    "PENDING",
    "QUEUED",
    "EXECUTING",
    "COMPLETED",
    "ERROR",
    "ABORTED",
    "UNKNOWN",
    "HELD",
    "SUSPENDED",
    "ARCHIVED",
]
INT32_MAX: Final = 2**31 - 1
LOCATION: Schema = {"Location": {"description": "Where to look next.", "schema": {"type": "string"}}}


def _text(description: str) -> Schema:
    return {"description": description, "content": {"text/plain": {"schema": TEXT}}}


def _xml(description: str) -> Schema:
    return {"description": description, "content": {"text/xml": {"schema": TEXT}}}


def _see_other(description: str) -> Schema:
    return {**_text(description), "headers": LOCATION}


def _form(properties: dict[str, Schema], required: list[str], *, extra: Schema | bool = False) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": extra}
    if required:
        schema["required"] = required
    return {"required": True, "content": {FORM: {"schema": schema}}}


APP_PARAM = path_param("app", "The app whose job list this is.", enum=app_names())
UWS_ID_PARAM = path_param(
    "job_id", "The UWS job id (the draft's id for a job created without PHASE=RUN).", JOB_ID_PATTERN
)
NOT_FOUND = "Unknown app, or no such job of the caller's in this app's list."
TIMEOUT = "The form did not arrive in time."


def _job_operation(
    operation_id: str,
    summary: str,
    responses: dict[str, Schema],
    *,
    request_body: Schema | None = None,
    **kw: Any,
) -> Schema:
    return operation(
        operation_id,
        summary,
        {**responses, "404": _text(NOT_FOUND)},
        tag=TAG,
        parameters=[APP_PARAM, UWS_ID_PARAM, *kw.pop("parameters", [])],
        request_body=request_body,
        **kw,
    )


def _posted_value(name: str, schema: Schema, what: str) -> dict[str, Schema]:
    return {
        "post": _job_operation(
            f"setUws{name.capitalize()}",
            f"Ask for another {what} (the service keeps its own)",
            {
                "303": _see_other("Accepted; the job shows the value in force."),
                "400": _text(f"{name.upper()} missing, given twice or malformed."),
                "408": _text(TIMEOUT),
            },
            request_body=_form({name.upper(): schema}, [name.upper()]),
            description=f"UWS 1.1 lets a service keep its own {what}; this one always does.",
        )
    }


def uws_paths(settings: ApiSettings) -> dict[str, Any]:
    """``/uws/{app}`` and the resources of its jobs, with the answers every one may give."""
    paths = _paths(settings)
    starting = _text("Service starting, not ready yet; retry after Retry-After seconds.")
    for item in paths.values():
        for op in item.values():
            op["responses"]["503"] = starting
            if settings.auth_enabled and "403" in op["responses"]:
                # The token's missing role is the auth middleware's JSON 403.
                denied = error("")["content"]
                op["responses"]["403"] = {
                    "description": op["responses"]["403"]["description"]
                    + " Or: the token lacks the api's role.",
                    "content": {**op["responses"]["403"]["content"], **denied},
                }
    return paths


def _paths(settings: ApiSettings) -> dict[str, Any]:
    job = f"{UWS}/{{app}}/{{job_id}}"
    create_form = _form(
        {
            "inputfile": {
                "type": "string",
                "pattern": FILE_ID_PATTERN,
                "description": "An uploaded file's id.",
            },
            "PHASE": {"type": "string", "enum": ["RUN"], "description": "RUN: submit the job at once."},
            "RUNID": {
                "type": "string",
                "maxLength": 256,
                "description": "The client's label (the job's tag).",
            },
        },
        ["inputfile"],
        extra={"type": "string", "description": "An option of the app (see GET /api/v2/apps/{name})."},
    )
    refused = _text(
        "The job is refused: an option the app does not accept, a file that is not the caller's, "
        "or an app this deployment cannot run (UWS 1.1: 403 for a rejected job)."
    )
    return {
        f"{UWS}/{{app}}": {
            "get": operation(
                "listUwsJobs",
                "UWS job list",
                {
                    "200": _xml("uws:jobs, newest first (at most the server's page maximum)."),
                    "400": _text("Unknown PHASE, malformed AFTER or LAST."),
                    "404": _text("Unknown app."),
                },
                tag=TAG,
                description="Without PHASE every job but the ARCHIVED (deleted) ones is listed.",
                parameters=[
                    APP_PARAM,
                    {
                        "name": "PHASE",
                        "in": "query",
                        "required": False,
                        "description": "Keep jobs in any of these phases (repeat the parameter).",
                        "schema": {"type": "array", "items": {"type": "string", "enum": PHASES}},
                        "style": "form",
                        "explode": True,
                    },
                    query_param(
                        "AFTER",
                        "Keep jobs created after this instant.",
                        {"type": "string", "format": "date-time"},
                    ),
                    query_param(
                        "LAST",
                        "Keep the most recently created jobs, this many.",
                        {"type": "integer", "minimum": 1, "maximum": INT32_MAX},
                    ),
                ],
            ),
            "post": operation(
                "createUwsJob",
                "Create a UWS job",
                {
                    "303": _see_other("Created; Location is the job."),
                    "400": _text("A parameter given twice, a PHASE other than RUN, a malformed inputfile."),
                    "403": refused,
                    "404": _text("Unknown app."),
                    "408": _text(TIMEOUT),
                },
                tag=TAG,
                description=(
                    "Form fields: inputfile (required), the app's options, RUNID, and PHASE=RUN to submit "
                    "it at once; without PHASE=RUN the job stays PENDING (nothing runs) until "
                    "POST .../phase PHASE=RUN."
                ),
                parameters=[APP_PARAM],
                request_body=create_form,
            ),
        },
        job: {
            "get": _job_operation(
                "getUwsJob",
                "A UWS job (optionally blocking)",
                {"200": _xml("uws:job."), "400": _text("Malformed WAIT or unknown PHASE.")},
                parameters=[
                    query_param(
                        "WAIT",
                        f"Block up to this many seconds (-1: the server maximum, "
                        f"{settings.uws_max_wait_s:g} s) while the job is PENDING, QUEUED or EXECUTING.",
                        {"type": "integer", "minimum": -1, "maximum": INT32_MAX},
                    ),
                    query_param(
                        "PHASE",
                        "With WAIT: answer at once unless the job is in this phase.",
                        {"enum": PHASES},
                    ),
                ],
            ),
            "post": _job_operation(
                "postUwsJob",
                "Delete a UWS job (ACTION=DELETE)",
                {
                    "303": _see_other("Deleted; Location is the job list."),
                    "400": _text("ACTION missing or not DELETE."),
                    "408": _text(TIMEOUT),
                    "409": _text("The job is still stopping; retry."),
                },
                request_body=_form({"ACTION": {"type": "string", "enum": ["DELETE"]}}, ["ACTION"]),
            ),
            "delete": _job_operation(
                "deleteUwsJob",
                "Delete a UWS job",
                {
                    "303": _see_other("Deleted; Location is the job list."),
                    "409": _text("The job is still stopping; retry."),
                },
                description=(
                    "A running job is canceled first. A job that ran is kept as ARCHIVED (outputs removed)."
                ),
            ),
        },
        f"{job}/phase": {
            "get": _job_operation("getUwsPhase", "The job's phase", {"200": _text("The phase name.")}),
            "post": _job_operation(
                "setUwsPhase",
                "Run or abort the job",
                {
                    "303": _see_other("Done; Location is the job."),
                    "400": _text("PHASE missing, given twice, or not RUN/ABORT."),
                    "403": refused,
                    "408": _text(TIMEOUT),
                    "409": _text("The job was aborted before it ran, or is being started."),
                },
                request_body=_form({"PHASE": {"type": "string", "enum": ["RUN", "ABORT"]}}, ["PHASE"]),
            ),
        },
        f"{job}/parameters": {
            "get": _job_operation(
                "getUwsParameters", "The job's parameters", {"200": _xml("uws:parameters.")}
            ),
            "post": _job_operation(
                "setUwsParameters",
                "Change a PENDING job's parameters",
                {
                    "303": _see_other("Changed; Location is the job."),
                    "400": _text("A parameter given twice, a PHASE, a malformed inputfile."),
                    "403": refused,
                    "408": _text(TIMEOUT),
                    "409": _text("The job is no longer PENDING."),
                },
                request_body=_form(
                    {
                        "inputfile": {"type": "string", "pattern": FILE_ID_PATTERN},
                        "RUNID": {"type": "string", "maxLength": 256},
                    },
                    [],
                    extra={"type": "string", "description": "An option of the app."},
                ),
            ),
        },
        f"{job}/results": {
            "get": _job_operation(
                "getUwsResults",
                "The job's results",
                {"200": _xml("uws:results: catalogues, preview and logs (links to the v2 result routes).")},
            )
        },
        f"{job}/error": {
            "get": _job_operation(
                "getUwsError",
                "What went wrong",
                {"200": _text("The error of a job in phase ERROR.")},
                description="404 too for a job whose phase is not ERROR.",
            )
        },
        f"{job}/executionduration": {
            "get": _job_operation(
                "getUwsExecutionDuration",
                "The wall-time limit",
                {"200": _text("Seconds (the app's wall time).")},
            ),
            **_posted_value(
                "executionduration",
                {"type": "integer", "minimum": 0, "maximum": INT32_MAX},
                "execution duration",
            ),
        },
        f"{job}/destruction": {
            "get": _job_operation(
                "getUwsDestruction", "The destruction time", {"200": _text("Empty: jobs are not destroyed.")}
            ),
            **_posted_value("destruction", {"type": "string", "format": "date-time"}, "destruction time"),
        },
        f"{job}/quote": {
            "get": _job_operation("getUwsQuote", "The quote", {"200": _text("Empty: not predicted.")})
        },
        f"{job}/owner": {
            "get": _job_operation("getUwsOwner", "The job's owner", {"200": _text("The owner id.")})
        },
    }
