"""Paths of jobs: submit, status, output, cancel, list."""

from __future__ import annotations

from typing import Any

from caesar_api.entrypoints.routes import V1
from caesar_api.openapi.components import Schema, ref
from caesar_api.openapi.models import JobAccepted, JobList, JobNotCompleted, JobRequest, JobStatus
from caesar_api.openapi.operations import JOB_ID_PARAM, binary, error, json_body, operation, renamed
from caesar_api.openapi.paging import NEXT_LINK, page_params
from caesar_api.settings import ApiSettings

TAG = "jobs"
NOT_FOUND = "Unknown job, not the caller's, or not a job id."
# Where a submitted job's id goes next (the stateful phase of the fuzz test follows these).
JOB_LINK_TARGETS = (
    "jobStatus",
    "jobOutput",
    "cancelJob",
    "getJobSources",
    "getJobOutputPlot",
    "getJobCatalogV2",
    "listJobFilesV2",
    "getJobPreviewV2",
    "getJobV2",
)
SUBMIT_LINKS: dict[str, Schema] = {
    target[0].upper() + target[1:]: {
        "operationId": target,
        "parameters": {"job_id": "$response.body#/job_id"},
    }
    for target in JOB_LINK_TARGETS
}


def job_paths(settings: ApiSettings) -> dict[str, Any]:
    """``/job``, ``/job/{job_id}/status|output|cancel`` and ``/jobs``."""
    cancel = operation(
        "cancelJob",
        "Cancel a job",
        {"200": error("Cancel requested, or the job had already ended."), "404": error(NOT_FOUND)},
        tag=TAG,
        description="Works in every state before the end, PENDING and QUEUED included.",
        parameters=[JOB_ID_PARAM],
    )
    return {
        f"{V1}/job": {
            "post": operation(
                "submitJob",
                "Submit a job",
                {
                    "202": json_body(JobAccepted, "Accepted (state PENDING).", links=SUBMIT_LINKS),
                    "400": error(
                        "Invalid JSON or request shape, unknown app or file, options that do not fit "
                        "the app's schema, an app this deployment cannot run, or an input the app "
                        "cannot use (the message says which)."
                    ),
                    "408": error(f"The body did not arrive within {settings.http_body_timeout_s:g} s."),
                },
                tag=TAG,
                description=(
                    "Options are validated against the app's schema (types, ranges, allowed values; "
                    "unknown options are rejected by name)."
                ),
                request_body={"required": True, "content": {"application/json": {"schema": ref(JobRequest)}}},
            )
        },
        f"{V1}/job/{{job_id}}/status": {
            "get": operation(
                "jobStatus",
                "Job status",
                {"200": json_body(JobStatus, "The job."), "404": error(NOT_FOUND)},
                tag=TAG,
                parameters=[JOB_ID_PARAM],
            )
        },
        f"{V1}/job/{{job_id}}/output": {
            "get": operation(
                "jobOutput",
                "Job output (tar.gz)",
                {
                    "200": binary("The job directory as <job_id>.tar.gz, streamed.", "application/gzip"),
                    "202": json_body(JobNotCompleted, "Not finished yet."),
                    "404": error(NOT_FOUND + " Or the job ended without outputs."),
                    "410": error("The job was deleted (v2 DELETE): its outputs are gone."),
                },
                tag=TAG,
                parameters=[JOB_ID_PARAM],
            )
        },
        f"{V1}/job/{{job_id}}/cancel": {"get": cancel, "post": renamed(cancel, "cancelJobPost")},
        f"{V1}/jobs": {
            "get": operation(
                "listJobs",
                "List the caller's jobs",
                {
                    "200": json_body(
                        JobList,
                        "Newest first (by submission time): every job without limit and after "
                        "(streamed, as the old service answered), else one page.",
                        headers=NEXT_LINK,
                    ),
                    "400": error("Invalid limit or cursor."),
                },
                tag=TAG,
                parameters=page_params(settings, "job"),
            )
        },
    }
