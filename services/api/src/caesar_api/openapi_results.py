"""OpenAPI paths of the catalogue/preview routes (v1 family and v2), merged by ``openapi.py``.

Kept beside the main document so the results routes are documented next to each other;
:func:`result_paths` is called by :func:`caesar_api.openapi.build_openapi`, and the
router-agreement test covers these paths like every other.
"""

from __future__ import annotations

from typing import Any

from caesar_api.openapi import JOB_ID, V1, _error, _json, _op, _ref

__all__ = ["result_paths", "result_schemas"]

Schema = dict[str, Any]
_TAG = "jobs"
_V2 = "/api/v2"

_PROBLEM: Schema = {
    "type": "object",
    "description": "RFC 9457 problem details (v2 errors).",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
}


def _problem(description: str) -> Schema:
    return {"description": description, "content": {"application/problem+json": {"schema": _ref("Problem")}}}


def _binary(media: str, description: str) -> Schema:
    return {
        "description": description,
        "content": {media: {"schema": {"type": "string", "format": "binary"}}},
    }


def result_schemas() -> dict[str, Schema]:
    """Component schemas these paths refer to."""
    return {
        "Problem": _PROBLEM,
        "Catalog": {
            "type": "object",
            "description": (
                "Harmonised catalogue: the same core columns for every finder (source_id, island_id, "
                "component_id, ra, dec, err_ra, err_dec, peak_flux, err_peak_flux, int_flux, "
                "err_int_flux, maj, min, pa, local_rms, snr, flags) then the finder's extras."
            ),
            "required": ["finder", "catalog", "n_sources", "columns", "sources"],
            "properties": {
                "finder": {"type": "string"},
                "catalog": {"type": "string", "enum": ["sources", "components"]},
                "n_sources": {"type": "integer"},
                "columns": {"type": "array", "items": {"type": "object"}},
                "sources": {"type": "array", "items": {"type": "object"}},
            },
        },
    }


def result_paths() -> dict[str, Any]:
    """The paths of ``handlers/results.py`` (v1) and ``handlers/v2.py``."""
    pending = _json(_ref("Status"), "The job has not ended yet.")
    missing = _error("Unknown job, not the caller's, or the job ended without this output.")
    job_param = [JOB_ID]

    def v1(summary: str, op_id: str, ok: Schema) -> Schema:
        return {
            "get": _op(
                summary,
                {"200": ok, "202": pending, "404": missing},
                tag=_TAG,
                operation_id=op_id,
                parameters=job_param,
            )
        }

    v2_missing = _problem("Unknown job, not the caller's, or no such output.")
    v2_pending = _problem("The job has not ended yet.")

    def v2(
        summary: str, op_id: str, ok: Schema, parameters: list[Schema], extra: dict[str, Schema] | None = None
    ) -> Schema:
        responses = {"200": ok, "404": v2_missing, "409": v2_pending, **(extra or {})}
        return {"get": _op(summary, responses, tag=_TAG, operation_id=op_id, parameters=parameters)}

    catalog_params: list[Schema] = [
        JOB_ID,
        {
            "name": "format",
            "in": "query",
            "required": False,
            "description": "File format (default votable).",
            "schema": {"type": "string", "enum": ["votable", "fits", "csv", "json", "ds9"]},
        },
        {
            "name": "kind",
            "in": "query",
            "required": False,
            "description": "sources (default) or components (PyBDSF Gaussians; same as sources otherwise).",
            "schema": {"type": "string", "enum": ["sources", "components"]},
        },
    ]
    name_param: Schema = {
        "name": "name",
        "in": "path",
        "required": True,
        "description": "A file name as listed by /files (relative to the job directory).",
        "schema": {"type": "string"},
    }
    files_list = _json(
        {
            "type": "object",
            "properties": {
                "job_id": {"type": "string"},
                "files": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "size_bytes": {"type": "integer"},
                            "sha256": {"type": "string"},
                        },
                    },
                },
            },
        },
        "The job's output files (from its manifest).",
    )
    return {
        f"{V1}/job/{{job_id}}/sources": v1(
            "Source catalogue (JSON)", "getJobSources", _json(_ref("Catalog"), "The catalogue.")
        ),
        f"{V1}/job/{{job_id}}/output-sources": v1(
            "Source catalogue file (CSV)", "getJobOutputSources", _binary("text/csv", "CSV attachment.")
        ),
        f"{V1}/job/{{job_id}}/source-components": v1(
            "Component catalogue (JSON)", "getJobSourceComponents", _json(_ref("Catalog"), "The catalogue.")
        ),
        f"{V1}/job/{{job_id}}/output-components": v1(
            "Component catalogue file (CSV)", "getJobOutputComponents", _binary("text/csv", "CSV attachment.")
        ),
        f"{V1}/job/{{job_id}}/preview": v1(
            "Preview image (base64)",
            "getJobPreview",
            _json(
                {"type": "object", "properties": {"image": {"type": "string"}, "status": {"type": "string"}}},
                "The PNG in base64.",
            ),
        ),
        f"{V1}/job/{{job_id}}/output-plot": v1(
            "Preview image (PNG)", "getJobOutputPlot", _binary("image/png", "PNG.")
        ),
        f"{_V2}/apps": {
            "get": _op(
                "Apps with JSON Schema, version and availability",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"apps": {"type": "array", "items": {"type": "object"}}},
                        },
                        "Every app.",
                    )
                },
                tag="apps",
                operation_id="listAppsV2",
            )
        },
        f"{_V2}/jobs/{{job_id}}/catalog": v2(
            "Harmonised catalogue in one format",
            "getJobCatalogV2",
            _binary("application/octet-stream", "The catalogue file (VOTable, FITS, CSV, JSON or DS9)."),
            catalog_params,
            {"400": _problem("Unknown format or kind.")},
        ),
        f"{_V2}/jobs/{{job_id}}/preview.png": v2(
            "Preview PNG", "getJobPreviewV2", _binary("image/png", "PNG."), job_param
        ),
        f"{_V2}/jobs/{{job_id}}/files": v2("Output files of a job", "listJobFilesV2", files_list, job_param),
        f"{_V2}/jobs/{{job_id}}/files/{{name}}": v2(
            "One output file of a job",
            "getJobFileV2",
            _binary("application/octet-stream", "The file."),
            [JOB_ID, name_param],
        ),
    }
