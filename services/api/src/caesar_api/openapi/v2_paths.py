"""Paths of the v2 jobs and files and of one app.

``/api/v2/jobs``, ``/api/v2/files`` and ``/api/v2/apps/{name}``; their shapes are in
:mod:`.v2_models`.
"""

from __future__ import annotations

from typing import Any

from caesar_api.domain.v2_query import STATE_NAMES
from caesar_api.entrypoints.routes import V2
from caesar_api.openapi.components import Schema
from caesar_api.openapi.models import AppEntry, UploadForm
from caesar_api.openapi.operations import (
    FILE_ID_PARAM,
    JOB_ID_PARAM,
    binary,
    delete_one,
    get_one,
    json_body,
    list_page,
    operation,
    path_param,
    problem,
    query_param,
    required_body,
    validation_problem,
)
from caesar_api.openapi.paging import NEXT_LINK, page_params
from caesar_api.openapi.v2_models import FileV2, FileV2List, JobRequestV2, JobV2, JobV2List
from caesar_api.settings import ApiSettings
from caesar_common.apps import app_names

JOB_NOT_FOUND = "Unknown job, not the caller's, or not a job id."
FILE_NOT_FOUND = "Unknown file, not the caller's, or not a file uuid."
LOCATION: Schema = {"Location": {"description": "The new resource's URL.", "schema": {"type": "string"}}}
# Where a new job's id goes next (the stateful phase of the fuzz test follows these).
JOB_TARGETS = (
    "getJobV2",
    "cancelJobV2",
    "deleteJobV2",
    "getJobArchiveV2",
    "getJobCatalogV2",
    "listJobFilesV2",
    "getJobPreviewV2",
)
JOB_LINKS: dict[str, Schema] = {
    target[0].upper() + target[1:]: {
        "operationId": target,
        "parameters": {"job_id": "$response.body#/job_id"},
    }
    for target in JOB_TARGETS
}
FILE_LINKS: dict[str, Schema] = {
    "GetFileV2": {"operationId": "getFileV2", "parameters": {"file_id": "$response.body#/file_id"}},
    "GetFileContentV2": {
        "operationId": "getFileContentV2",
        "parameters": {"file_id": "$response.body#/file_id"},
    },
    "DeleteFileV2": {"operationId": "deleteFileV2", "parameters": {"file_id": "$response.body#/file_id"}},
    "SubmitJobV2": {"operationId": "submitJobV2", "requestBody": {"file_id": "$response.body#/file_id"}},
}


def v2_app_paths() -> dict[str, Any]:
    """``GET /api/v2/apps/{name}``."""
    return {
        f"{V2}/apps/{{name}}": {
            "get": get_one(
                "getAppV2",
                "One app: JSON Schema of its options, version, availability",
                AppEntry,
                "The app.",
                not_found="Unknown app.",
                param=path_param("name", "An app name.", enum=list(app_names())),
                tag="apps",
            )
        }
    }


def v2_file_paths(settings: ApiSettings) -> dict[str, Any]:
    """``/api/v2/files`` and ``/api/v2/files/{file_id}`` (``/content``)."""
    tag = "files"
    formats = ", ".join(settings.allowed_formats)
    return {
        f"{V2}/files": {
            "post": operation(
                "uploadFileV2",
                "Upload a file",
                {
                    "201": json_body(FileV2, "Stored.", headers=LOCATION, links=FILE_LINKS),
                    "400": problem("No file part, malformed multipart body, or a .fits that is not FITS."),
                    "403": problem("The caller's file quota is full (used_files, limit_files)."),
                    "408": problem(
                        f"The body stalled for {settings.http_body_timeout_s:g} s or was too slow."
                    ),
                    "413": problem(
                        f"Larger than {settings.max_upload_bytes} bytes, or a compressed FITS image that "
                        f"declares more than {settings.max_decompressed_bytes} bytes once decompressed."
                    ),
                    "415": problem(f"Format not allowed (allowed: {formats})."),
                    "429": problem(
                        "Too many of the caller's uploads are streaming; retry after Retry-After s."
                    ),
                    "507": problem(
                        "No room: the disk is full or the caller's storage quota would be exceeded."
                    ),
                },
                tag=tag,
                description=(
                    "The v1 upload (the same streaming, limits, quotas and FITS checks) answered as a v2 "
                    f"file. The format is the file name's extension; allowed: {formats}."
                ),
                request_body=required_body(UploadForm, "multipart/form-data"),
            ),
            "get": list_page(
                "listFilesV2",
                "List the caller's files",
                json_body(FileV2List, "One page, newest first.", headers=NEXT_LINK),
                "Invalid limit, or a cursor that names none of the caller's files.",
                parameters=page_params(settings, "file"),
                tag=tag,
            ),
        },
        f"{V2}/files/{{file_id}}": {
            "get": get_one(
                "getFileV2",
                "A file",
                FileV2,
                "The file.",
                not_found=FILE_NOT_FOUND,
                param=FILE_ID_PARAM,
                tag=tag,
            ),
            "delete": delete_one(
                "deleteFileV2",
                "Delete a file",
                "Deleted (the record is kept, marked, so the id is never reused).",
                not_found=FILE_NOT_FOUND,
                param=FILE_ID_PARAM,
                tag=tag,
            ),
        },
        f"{V2}/files/{{file_id}}/content": {
            "get": operation(
                "getFileContentV2",
                "Download a file",
                {
                    "200": binary(
                        "The bytes, with Content-Disposition naming the original file.",
                        "application/fits",
                        "image/png",
                        "image/jpeg",
                        "image/gif",
                        "application/octet-stream",
                    ),
                    "404": problem(FILE_NOT_FOUND),
                },
                tag=tag,
                parameters=[FILE_ID_PARAM],
            )
        },
    }


def v2_job_paths(settings: ApiSettings) -> dict[str, Any]:
    """``/api/v2/jobs``, ``/api/v2/jobs/{job_id}`` (get, delete), ``/cancel`` and ``/archive``."""
    tag = "jobs"
    state_param = query_param(
        "state",
        "Keep jobs in any of these states (repeat the parameter, or separate with commas).",
        {"type": "array", "items": {"type": "string", "enum": list(STATE_NAMES)}},
    )
    state_param.update(style="form", explode=True)
    filters = [
        state_param,
        query_param("app", "Keep one app's jobs.", {"type": "string", "enum": list(app_names())}),
        query_param(
            "since",
            "Keep jobs submitted at or after this ISO 8601 time.",
            {"type": "string", "format": "date-time"},
        ),
    ]
    return {
        f"{V2}/jobs": {
            "post": operation(
                "submitJobV2",
                "Submit a job",
                {
                    "201": json_body(JobV2, "Accepted (state PENDING).", headers=LOCATION, links=JOB_LINKS),
                    "400": problem("The body is not JSON."),
                    "404": problem("The file is not one of the caller's live files."),
                    "408": problem(f"The body did not arrive within {settings.http_body_timeout_s:g} s."),
                    "422": validation_problem(
                        "The body does not fit: unknown fields, an unknown app, options outside the app's "
                        "JSON Schema, an app this deployment cannot run, or an input the app cannot use."
                    ),
                },
                tag=tag,
                description=(
                    "The options are validated against the app's JSON Schema (GET /api/v2/apps/{name})."
                ),
                request_body=required_body(JobRequestV2),
            ),
            "get": list_page(
                "listJobsV2",
                "List the caller's jobs",
                json_body(JobV2List, "One page, newest first (by submission).", headers=NEXT_LINK),
                "Unknown state or app, a since that is not an ISO 8601 time, an invalid limit, or "
                "a cursor that names none of the caller's jobs.",
                parameters=[*filters, *page_params(settings, "job")],
                tag=tag,
            ),
        },
        f"{V2}/jobs/{{job_id}}": {
            "get": get_one(
                "getJobV2",
                "A job: state, attempt, pool, timings, queue position or hold reason, links",
                JobV2,
                "The job.",
                not_found=JOB_NOT_FOUND,
                param=JOB_ID_PARAM,
                tag=tag,
            ),
            "delete": delete_one(
                "deleteJobV2",
                "Delete an ended job's outputs",
                "Outputs removed; the record stays, shown with state DELETED.",
                not_found=JOB_NOT_FOUND,
                param=JOB_ID_PARAM,
                tag=tag,
                conflict="The job has not ended yet (cancel it first).",
            ),
        },
        f"{V2}/jobs/{{job_id}}/cancel": {
            "post": operation(
                "cancelJobV2",
                "Cancel a job",
                {
                    "202": json_body(JobV2, "Cancel requested; the state changes when the job stops."),
                    "404": problem(JOB_NOT_FOUND),
                    "409": problem("The job has already ended."),
                },
                tag=tag,
                parameters=[JOB_ID_PARAM],
            )
        },
        f"{V2}/jobs/{{job_id}}/archive": {
            "get": operation(
                "getJobArchiveV2",
                "The job's outputs as a tar.gz",
                {
                    "200": binary("The job directory as <job_id>.tar.gz, streamed.", "application/gzip"),
                    "404": problem(JOB_NOT_FOUND + " Or the job ended without outputs."),
                    "409": problem("The job has not ended yet."),
                    "410": problem("The job was deleted: its outputs are gone."),
                },
                tag=tag,
                parameters=[JOB_ID_PARAM],
            )
        },
    }
