"""Paths of uploaded files: upload, list, download, delete."""

from __future__ import annotations

from typing import Any

from caesar_api.entrypoints.routes import V1
from caesar_api.entrypoints.routes.files import CONTENT_TYPES
from caesar_api.openapi.components import Schema, ref
from caesar_api.openapi.models import DownloadForm, FileList, UploadForm, UploadResult
from caesar_api.openapi.operations import (
    FILE_ID_PARAM,
    binary,
    error,
    json_body,
    limit_error,
    operation,
    query_param,
    renamed,
)
from caesar_api.openapi.paging import NEXT_LINK, page_params
from caesar_api.settings import ApiSettings

TAG = "files"
OCTET_STREAM = "application/octet-stream"
NOT_FOUND = "Unknown file, not the caller's, or not a file uuid."
# Where an uploaded file's id goes next (the stateful phase of the fuzz test follows these).
UPLOAD_LINKS: dict[str, Schema] = {
    "DownloadFile": {"operationId": "downloadFile", "parameters": {"file_id": "$response.body#/uuid"}},
    "DeleteFile": {"operationId": "deleteFile", "parameters": {"file_id": "$response.body#/uuid"}},
    "SubmitJob": {"operationId": "submitJob", "requestBody": {"data_inputs": "$response.body#/uuid"}},
}


def file_paths(settings: ApiSettings) -> dict[str, Any]:
    """``/upload``, ``/fileids``, ``/download``, ``/delete``."""
    formats = ", ".join(settings.allowed_formats)
    download = operation(
        "downloadFile",
        "Download a file",
        {
            "200": binary(
                "The file as an attachment named <uuid>.<ext>.",
                *sorted(
                    {CONTENT_TYPES.get(ext, OCTET_STREAM) for ext in settings.allowed_formats}
                    | {OCTET_STREAM}
                ),
            ),
            "404": error(NOT_FOUND),
        },
        tag=TAG,
        parameters=[FILE_ID_PARAM],
    )
    delete = operation(
        "deleteFile",
        "Delete a file",
        {
            "200": error("Deleted (the record is kept, marked, so the id is never reused)."),
            "404": error(NOT_FOUND),
        },
        tag=TAG,
        parameters=[FILE_ID_PARAM],
    )
    redirect = {
        "302": {
            "description": "To /download/{file_id}.",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
        "400": error("No uuid given."),
        "404": error(NOT_FOUND),
    }
    form_redirect = {
        **redirect,
        "408": error(f"The form did not arrive within {settings.http_body_timeout_s:g} s."),
    }
    return {
        f"{V1}/upload": {
            "post": operation(
                "uploadFile",
                "Upload a file",
                {
                    "200": json_body(UploadResult, "Stored.", links=UPLOAD_LINKS),
                    "400": error("No file part, empty filename, or a .fits that is not FITS."),
                    "403": limit_error(
                        f"The caller's file quota is full ({settings.user_quota_files or 'no limit'} "
                        "files): used_files, limit_files."
                    ),
                    "408": limit_error(
                        f"The body stalled for {settings.http_body_timeout_s:g} s, or averaged less "
                        f"than {settings.upload_min_bytes_per_s} bytes/s; nothing was kept."
                    ),
                    "413": limit_error(
                        f"Larger than {settings.max_upload_bytes} bytes, or a tile-compressed FITS "
                        f"image that declares more than {settings.max_decompressed_bytes} bytes once "
                        "decompressed (decompressed_bytes, limit_bytes)."
                    ),
                    "415": error(f"Format not allowed (allowed: {formats})."),
                    "429": limit_error(
                        f"{settings.max_concurrent_uploads_per_user} of the caller's uploads are "
                        "already streaming (uploads_in_progress, limit_uploads); retry after "
                        "Retry-After seconds.",
                        retry_after=True,
                    ),
                    "507": limit_error(
                        "No room to store it: the disk is full, or the caller's storage quota "
                        f"({settings.user_quota_bytes or 'no limit'} bytes) would be exceeded "
                        "(used_bytes, limit_bytes, and upload_bytes when known); nothing was kept."
                    ),
                },
                tag=TAG,
                description=(
                    "Streams the file to disk, computes its SHA-256 and, for FITS, checks the header "
                    "and stores its facts (shape, WCS, beam, frequency). The format is the file "
                    f"name's extension; allowed: {formats}. A tile-compressed FITS image is checked "
                    "on its header and a few tiles, never decompressed whole. The file and its "
                    "directory are synced to disk before the answer."
                ),
                request_body={
                    "required": True,
                    "content": {"multipart/form-data": {"schema": ref(UploadForm)}},
                },
            )
        },
        f"{V1}/fileids": {
            "get": operation(
                "listFiles",
                "List the caller's files",
                {
                    "200": json_body(
                        FileList,
                        "Newest first: every file without limit and after (streamed, as the old "
                        "service answered), else one page.",
                        headers=NEXT_LINK,
                    ),
                    "400": error("Invalid limit or cursor."),
                },
                tag=TAG,
                parameters=page_params(settings, "file"),
            )
        },
        f"{V1}/download/{{file_id}}": {"get": download, "post": renamed(download, "downloadFilePost")},
        f"{V1}/download": {
            "get": operation(
                "downloadByQuery",
                "Download by query (redirect)",
                redirect,
                tag=TAG,
                parameters=[
                    query_param("uuid", "The file uuid.", {"type": "string", "minLength": 1}, required=True)
                ],
            ),
            "post": operation(
                "downloadByForm",
                "Download by form (redirect)",
                form_redirect,
                tag=TAG,
                request_body={
                    "required": True,
                    "content": {"application/x-www-form-urlencoded": {"schema": ref(DownloadForm)}},
                },
            ),
        },
        f"{V1}/delete/{{file_id}}": {"get": delete, "post": renamed(delete, "deleteFilePost")},
    }


def _file_encoding(settings: ApiSettings) -> Schema:
    """The ``file`` part's headers: its name's extension is the format (an example name)."""
    formats = settings.allowed_formats
    example_ext = next((ext for ext in formats if ext != "fits"), formats[0])
    disposition = f'form-data; name="file"; filename="image.{example_ext}"'
    return {
        "file": {
            "headers": {
                "Content-Disposition": {
                    "description": "The file name's extension is the upload's format.",
                    "schema": {"type": "string", "example": disposition},
                }
            }
        }
    }
