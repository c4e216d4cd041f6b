"""Paths of job results: the v1 catalogue/preview family and the v2 result routes."""

from __future__ import annotations

from typing import Any

from caesar_api.entrypoints.routes import V1, V2
from caesar_api.entrypoints.routes.v2 import CATALOG_FORMATS, CATALOG_KINDS
from caesar_api.openapi.components import Schema
from caesar_api.openapi.models import Catalog, JobFiles, JobNotCompleted, PreviewImage
from caesar_api.openapi.operations import (
    JOB_ID_PARAM,
    binary,
    error,
    json_body,
    operation,
    path_param,
    problem,
    query_param,
)

TAG = "jobs"


def _v1(operation_id: str, summary: str, ok: Schema) -> Schema:
    return {
        "get": operation(
            operation_id,
            summary,
            {
                "200": ok,
                "202": json_body(JobNotCompleted, "The job has not ended yet."),
                "404": error("Unknown job, not the caller's, or the job ended without this output."),
                "410": error("The job was deleted (v2 DELETE): its outputs are gone."),
            },
            tag=TAG,
            parameters=[JOB_ID_PARAM],
        )
    }


def _v2(operation_id: str, summary: str, ok: Schema, parameters: list[Schema], **extra: Schema) -> Schema:
    responses = {
        "200": ok,
        "404": problem("Unknown job, not the caller's, or no such output."),
        "409": problem("The job has not ended yet."),
        "410": problem("The job was deleted: its outputs are gone."),
        **extra,
    }
    return {"get": operation(operation_id, summary, responses, tag=TAG, parameters=parameters)}


def result_paths() -> dict[str, Any]:
    """``/job/{job_id}/sources`` and kin (v1), ``/api/v2/jobs/{job_id}/...`` (v2)."""
    catalog_params = [
        JOB_ID_PARAM,
        query_param(
            "format", "File format (default votable).", {"type": "string", "enum": list(CATALOG_FORMATS)}
        ),
        query_param(
            "kind",
            "sources (default) or components (PyBDSF Gaussians; the same as sources otherwise).",
            {"type": "string", "enum": list(CATALOG_KINDS)},
        ),
    ]
    name_param = path_param("name", "A file name as listed by /files (relative to the job directory).")
    catalog_media = sorted({media for media, _ in CATALOG_FORMATS.values()})
    return {
        f"{V1}/job/{{job_id}}/sources": _v1(
            "getJobSources", "Source catalogue (JSON)", json_body(Catalog, "The catalogue.")
        ),
        f"{V1}/job/{{job_id}}/output-sources": _v1(
            "getJobOutputSources", "Source catalogue file (CSV)", binary("CSV attachment.", "text/csv")
        ),
        f"{V1}/job/{{job_id}}/source-components": _v1(
            "getJobSourceComponents", "Component catalogue (JSON)", json_body(Catalog, "The catalogue.")
        ),
        f"{V1}/job/{{job_id}}/output-components": _v1(
            "getJobOutputComponents", "Component catalogue file (CSV)", binary("CSV attachment.", "text/csv")
        ),
        f"{V1}/job/{{job_id}}/preview": _v1(
            "getJobPreview", "Preview image (base64)", json_body(PreviewImage, "The PNG in base64.")
        ),
        f"{V1}/job/{{job_id}}/output-plot": _v1(
            "getJobOutputPlot", "Preview image (PNG)", binary("PNG.", "image/png")
        ),
        f"{V2}/jobs/{{job_id}}/catalog": _v2(
            "getJobCatalogV2",
            "Harmonised catalogue in one format",
            binary(
                "The catalogue file: VOTable, FITS, CSV, JSON or a DS9 region file, as ?format= asks.",
                *catalog_media,
            ),
            catalog_params,
            **{"400": problem("Unknown format or kind.")},
        ),
        f"{V2}/jobs/{{job_id}}/preview.png": _v2(
            "getJobPreviewV2", "Preview PNG", binary("PNG.", "image/png"), [JOB_ID_PARAM]
        ),
        f"{V2}/jobs/{{job_id}}/files": _v2(
            "listJobFilesV2",
            "Output files of a job",
            json_body(JobFiles, "The job's output files."),
            [JOB_ID_PARAM],
        ),
        f"{V2}/jobs/{{job_id}}/files/{{name}}": _v2(
            "getJobFileV2",
            "One output file of a job",
            binary("The file.", "application/octet-stream"),
            [JOB_ID_PARAM, name_param],
        ),
    }
