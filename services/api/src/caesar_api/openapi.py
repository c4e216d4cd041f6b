"""The OpenAPI document of the api service, served at ``/openapi.json``.

OpenAPI 3.0.3 rather than 3.1: the Swagger UI bundled for offline ``/docs``
(swagger-ui 4.x) renders 3.0 only. Every route the aiohttp router has is described
here, operational ones included; a unit test keeps the two in step.
"""

from __future__ import annotations

from typing import Any

from caesar_api.auth.public import is_public
from caesar_api.settings import ApiSettings
from caesar_common.jobstate import JobState

V1 = "/caesar/api/v1.0"
FILE_ID_PATTERN = "^[0-9a-f]{32}$"
JOB_ID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> Schema:
    return _json(_ref("Status"), description)


def _path_param(name: str, description: str, pattern: str | None = None) -> Schema:
    schema: Schema = {"type": "string"}
    if pattern:
        schema["pattern"] = pattern
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


FILE_ID = _path_param("file_id", "File uuid (32 lowercase hex characters).", FILE_ID_PATTERN)
JOB_ID = _path_param("job_id", "Job id (a dashed uuid).", JOB_ID_PATTERN)
PAGE_PARAMS = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "Items per page (default and maximum are deployment settings).",
        "schema": {"type": "integer", "minimum": 1},
    },
    {
        "name": "after",
        "in": "query",
        "required": False,
        "description": "Id of the last item of the previous page (from the Link header).",
        "schema": {"type": "string"},
    },
]
NEXT_LINK = {
    "Link": {
        "description": 'RFC 8288 link to the next page (rel="next"), present when one exists.',
        "schema": {"type": "string"},
    }
}


def _op(
    summary: str,
    responses: dict[str, Schema],
    *,
    tag: str,
    operation_id: str,
    description: str = "",
    parameters: list[Schema] | None = None,
    request_body: Schema | None = None,
) -> Schema:
    op: Schema = {"summary": summary, "tags": [tag], "operationId": operation_id}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if request_body:
        op["requestBody"] = request_body
    op["responses"] = responses
    return op


def _schemas(settings: ApiSettings) -> dict[str, Schema]:
    states = [s.value for s in JobState]
    return {
        "Status": {
            "type": "object",
            "description": "A message (every error has this shape).",
            "required": ["status"],
            "properties": {"status": {"type": "string"}},
        },
        "Upload": {
            "type": "object",
            "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary", "description": "The file."},
                "tag": {"type": "string", "maxLength": 256, "description": "Free label."},
            },
        },
        "UploadResult": {
            "type": "object",
            "required": ["date", "filename_orig", "format", "size", "status", "tag", "uuid"],
            "properties": {
                "date": {"type": "string", "description": "Upload time, ISO 8601 in UTC."},
                "filename_orig": {"type": "string"},
                "format": {"type": "string", "enum": list(settings.allowed_formats)},
                "size": {"type": "number", "description": "Size in MiB."},
                "status": {"type": "string"},
                "tag": {"type": "string"},
                "uuid": {"type": "string", "pattern": FILE_ID_PATTERN},
            },
        },
        "FileRecord": {
            "type": "object",
            "properties": {
                "fileid": {"type": "string", "pattern": FILE_ID_PATTERN},
                "filename_orig": {"type": "string"},
                "fileext": {"type": "string"},
                "filesize": {"type": "number", "description": "Size in MiB."},
                "filedate": {"type": "string"},
                "tag": {"type": "string"},
            },
        },
        "FileList": {
            "type": "object",
            "required": ["file_ids", "files"],
            "properties": {
                "file_ids": {"type": "array", "items": {"type": "string"}},
                "files": {"type": "array", "items": _ref("FileRecord")},
            },
        },
        "AppList": {
            "type": "object",
            "properties": {"apps": {"type": "array", "items": {"type": "string"}}},
        },
        "AppOption": {
            "type": "object",
            "required": ["description", "mandatory", "type"],
            "properties": {
                "description": {"type": "string"},
                "mandatory": {"type": "boolean"},
                "type": {"type": "string", "enum": ["int", "float", "str", "none"]},
                "default": {},
                "min": {"type": "number"},
                "max": {"type": "number"},
                "enum": {"type": "boolean"},
                "allowed_values": {"type": "array", "items": {"type": "string"}},
                "category": {"type": "string"},
                "subcategory": {"type": "string"},
                "advanced": {"type": "integer", "enum": [0, 1]},
            },
        },
        "AppDescription": {
            "type": "object",
            "description": "The app's options keyed by option name.",
            "additionalProperties": _ref("AppOption"),
        },
        "JobRequest": {
            "type": "object",
            "required": ["app", "job_inputs"],
            "properties": {
                "app": {"type": "string", "example": "aegean"},
                "job_inputs": {
                    "type": "object",
                    "description": (
                        "App options (see /app/{name}/describe). May hold 'inputfile' "
                        "(a file uuid, or a path named <uuid>.<ext>: only the name is "
                        "used); 'envfile' is ignored, 'run' is accepted and ignored."
                    ),
                    "additionalProperties": True,
                    "example": {"seedthr": 5},
                },
                "data_inputs": {"type": "string", "description": "The input file uuid."},
                "tag": {"type": "string", "maxLength": 256},
            },
        },
        "JobAccepted": {
            "type": "object",
            "properties": {
                "app": {"type": "string"},
                "job_id": {"type": "string", "pattern": JOB_ID_PATTERN},
                "job_inputs": {"type": "object", "additionalProperties": True},
                "data_inputs": {"type": "string", "pattern": FILE_ID_PATTERN},
                "state": {"type": "string", "enum": states},
                "status": {"type": "string"},
                "submit_date": {"type": "string"},
                "tag": {"type": "string"},
            },
        },
        "JobStatus": {
            "type": "object",
            "properties": {
                "elapsed_time": {"type": "string", "description": "Seconds, '' if unknown."},
                "exit_status": {"type": "integer", "nullable": True},
                "exit_code": {"type": "integer", "nullable": True},
                "job_id": {"type": "string"},
                "pid": {"type": "string", "description": "'' if unknown."},
                "pool": {"type": "string", "description": "Executor pool (local, slurm) once chosen."},
                "state": {"type": "string", "enum": states},
                "status": {"type": "string"},
                "tag": {"type": "string"},
            },
        },
        "JobSummary": {
            "allOf": [
                _ref("JobStatus"),
                {
                    "type": "object",
                    "properties": {
                        "app": {"type": "string"},
                        "data_inputs": {"type": "string"},
                        "job_inputs": {"type": "object", "additionalProperties": True},
                        "submit_date": {"type": "string"},
                    },
                },
            ]
        },
        "JobNotCompleted": {
            "type": "object",
            "properties": {
                "job_id": {"type": "string"},
                "state": {"type": "string", "enum": states},
                "status": {"type": "string"},
            },
        },
        "Health": {"type": "object", "properties": {"status": {"type": "string"}}},
        "Readiness": {
            "type": "object",
            "properties": {
                "status": {"type": "string", "enum": ["ready", "not ready"]},
                "broker": {"type": "boolean"},
                "database": {"type": "boolean"},
            },
        },
    }


def build_openapi(settings: ApiSettings) -> dict[str, Any]:
    """The whole document; limits shown in descriptions come from ``settings``."""
    not_found_file = _error("Unknown file, not the caller's, or not a file uuid.")
    not_found_job = _error("Unknown job, not the caller's, or not a job id.")
    bad = _error("Invalid request; the message says why.")
    file_ops = "files"
    job_ops = "jobs"
    app_ops = "apps"
    ops = "operations"

    download = _op(
        "Download a file",
        {
            "200": {
                "description": "The file as an attachment named <uuid>.<ext>.",
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            },
            "404": not_found_file,
        },
        tag=file_ops,
        operation_id="downloadFile",
        parameters=[FILE_ID],
    )
    delete = _op(
        "Delete a file",
        {"200": _json(_ref("Status"), "Deleted."), "404": not_found_file},
        tag=file_ops,
        operation_id="deleteFile",
        parameters=[FILE_ID],
    )
    cancel = _op(
        "Cancel a job",
        {
            "200": _json(_ref("Status"), "Cancel requested, or the job had already ended."),
            "404": not_found_job,
        },
        tag=job_ops,
        operation_id="cancelJob",
        description="Works in every state before the end, PENDING and QUEUED included.",
        parameters=[JOB_ID],
    )
    health = _op(
        "Liveness",
        {"200": _json(_ref("Health"), "The process is up.")},
        tag=ops,
        operation_id="healthz",
    )
    ready = _op(
        "Readiness",
        {
            "200": _json(_ref("Readiness"), "Broker and database reachable."),
            "503": _json(_ref("Readiness"), "Not ready yet."),
        },
        tag=ops,
        operation_id="readyz",
    )
    metrics = _op(
        "Prometheus metrics",
        {
            "200": {
                "description": "Text exposition format.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
        tag=ops,
        operation_id="metrics",
    )

    def head(op: Schema) -> Schema:
        return {**op, "operationId": op["operationId"] + "Head", "summary": op["summary"] + " (headers only)"}

    paths: dict[str, Any] = {
        f"{V1}/upload": {
            "post": _op(
                "Upload a file",
                {
                    "200": _json(_ref("UploadResult"), "Stored."),
                    "400": _error("No file part, empty filename, or a .fits that is not FITS."),
                    "413": _error(f"Larger than {settings.max_upload_bytes} bytes."),
                    "415": _error("Format not allowed."),
                    "507": _error("No room to store it (disk full or quota); nothing was kept."),
                },
                tag=file_ops,
                operation_id="uploadFile",
                description=(
                    "Streams the file to disk, computes its SHA-256 and, for FITS, checks "
                    "the header and stores its facts (shape, WCS, beam, frequency). "
                    f"Allowed formats: {', '.join(settings.allowed_formats)}."
                ),
                request_body={
                    "required": True,
                    "content": {"multipart/form-data": {"schema": _ref("Upload")}},
                },
            )
        },
        f"{V1}/fileids": {
            "get": _op(
                "List the caller's files",
                {
                    "200": {**_json(_ref("FileList"), "One page, newest first."), "headers": NEXT_LINK},
                    "400": bad,
                },
                tag=file_ops,
                operation_id="listFiles",
                parameters=PAGE_PARAMS,
            )
        },
        f"{V1}/download/{{file_id}}": {
            "get": download,
            "post": {**download, "operationId": "downloadFilePost"},
        },
        f"{V1}/download": {
            "get": _op(
                "Download by query (redirect)",
                {
                    "302": {"description": "To /download/{file_id}."},
                    "400": bad,
                    "404": not_found_file,
                },
                tag=file_ops,
                operation_id="downloadByQuery",
                parameters=[{"name": "uuid", "in": "query", "required": True, "schema": {"type": "string"}}],
            ),
            "post": _op(
                "Download by form (redirect)",
                {
                    "302": {"description": "To /download/{file_id}."},
                    "400": bad,
                    "404": not_found_file,
                },
                tag=file_ops,
                operation_id="downloadByForm",
                request_body={
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "required": ["uuid"],
                                "properties": {"uuid": {"type": "string"}},
                            }
                        }
                    },
                },
            ),
        },
        f"{V1}/delete/{{file_id}}": {
            "get": delete,
            "post": {**delete, "operationId": "deleteFilePost"},
        },
        f"{V1}/apps": {
            "get": _op(
                "List the apps",
                {"200": _json(_ref("AppList"), "Every app the service knows.")},
                tag=app_ops,
                operation_id="listApps",
            )
        },
        f"{V1}/app/{{name}}/describe": {
            "get": _op(
                "Describe an app's options",
                {"200": _json(_ref("AppDescription"), "The options."), "400": _error("Unknown app.")},
                tag=app_ops,
                operation_id="describeApp",
                parameters=[_path_param("name", "App name, e.g. aegean.")],
            )
        },
        f"{V1}/job": {
            "post": _op(
                "Submit a job",
                {"202": _json(_ref("JobAccepted"), "Accepted (state PENDING)."), "400": bad},
                tag=job_ops,
                operation_id="submitJob",
                description=(
                    "Options are validated against the app's schema (types, ranges, "
                    "allowed values; unknown options are rejected by name)."
                ),
                request_body={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("JobRequest")}},
                },
            )
        },
        f"{V1}/job/{{job_id}}/status": {
            "get": _op(
                "Job status",
                {"200": _json(_ref("JobStatus"), "The job."), "404": not_found_job},
                tag=job_ops,
                operation_id="jobStatus",
                parameters=[JOB_ID],
            )
        },
        f"{V1}/job/{{job_id}}/output": {
            "get": _op(
                "Job output (tar.gz)",
                {
                    "200": {
                        "description": "The job directory as <job_id>.tar.gz, streamed.",
                        "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "202": _json(_ref("JobNotCompleted"), "Not finished yet."),
                    "404": not_found_job,
                },
                tag=job_ops,
                operation_id="jobOutput",
                parameters=[JOB_ID],
            )
        },
        f"{V1}/job/{{job_id}}/cancel": {
            "get": cancel,
            "post": {**cancel, "operationId": "cancelJobPost"},
        },
        f"{V1}/jobs": {
            "get": _op(
                "List the caller's jobs",
                {
                    "200": {
                        **_json(
                            {"type": "array", "items": _ref("JobSummary")},
                            "One page, newest first (by submission time).",
                        ),
                        "headers": NEXT_LINK,
                    },
                    "400": bad,
                },
                tag=job_ops,
                operation_id="listJobs",
                parameters=PAGE_PARAMS,
            )
        },
        "/openapi.json": {
            "get": _op(
                "This document",
                {
                    "200": {
                        "description": "OpenAPI 3.0.3.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
                tag=ops,
                operation_id="openapi",
            )
        },
        "/docs": {
            "get": _op(
                "Interactive documentation (Swagger UI, works offline)",
                {
                    "200": {
                        "description": "HTML page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
                tag=ops,
                operation_id="docs",
            )
        },
        "/docs/{asset}": {
            "get": _op(
                "Static files of the interactive documentation",
                {
                    "200": {
                        "description": "A script, style sheet or image.",
                        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "404": _error("Not one of the documentation's files."),
                },
                tag=ops,
                operation_id="docsAsset",
                parameters=[_path_param("asset", "File name, e.g. swagger-ui.css.")],
            )
        },
        "/healthz": {"get": health, "head": head(health)},
        "/readyz": {"get": ready, "head": head(ready)},
        "/metrics": {"get": metrics, "head": head(metrics)},
    }
    from caesar_api.openapi_admin import admin_paths  # no import cycle here
    from caesar_api.openapi_results import result_paths, result_schemas

    paths.update(result_paths())
    paths.update(admin_paths())
    _secure(paths)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "caesar-rest api",
            "version": "1.0",
            "description": (
                "The caesar-rest v1.0 API: upload radio images, run source finders on them, "
                "follow the jobs and download their outputs. Errors are JSON objects with "
                "the message in 'status'. Every list is paginated with ?limit=&after=."
            ),
        },
        "tags": [
            {"name": file_ops, "description": "Uploaded images."},
            {"name": app_ops, "description": "Source finders and their options."},
            {"name": job_ops, "description": "Jobs: submit, follow, cancel, outputs."},
            {"name": ops, "description": "Health, readiness, metrics, documentation, dead letters."},
        ],
        "paths": paths,
        "components": {
            "schemas": {**_schemas(settings), **result_schemas()},
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": (
                        "A Keycloak access token of the caesar realm whose audience is the api "
                        "(when the deployment has authentication on). v1 clients may instead "
                        "send it in an access_token form field; never in the query string."
                    ),
                }
            },
        },
    }


def _secure(paths: dict[str, Any]) -> None:
    """Mark every non-public operation as needing a bearer token, with its 401/403/503.

    Done here, over the finished paths, so routes other modules add are covered too.
    """
    unauthorized = {
        **_error("Missing, expired or invalid token (WWW-Authenticate: Bearer)."),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    }
    for path, item in paths.items():
        if is_public(path):
            continue
        for op in item.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            op["security"] = [{"bearerAuth": []}]
            op["responses"].setdefault("401", unauthorized)
            op["responses"].setdefault("403", _error("The token lacks the role the api requires."))
            op["responses"].setdefault("503", _error("Service starting, or the realm's keys unavailable."))
