"""What a UWS job shows, from a draft or from a job record, and its results (pure).

A job's UWS id is the draft's id for a job created without ``PHASE=RUN`` (the URL the
client was given stays valid after the job runs) and the job id otherwise. Result links
point at the v2 result routes, which serve the files of the job (never client text as a
path); the sources VOTable is also listed as ``result``, the id TAP clients (pyvo's
``fetch_result``) look for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote

from vo_models.uws.types import ExecutionPhase

from caesar_api.domain.projection import attempt_started_at
from caesar_api.domain.status import status_message
from caesar_api.entrypoints.routes import V2
from caesar_api.uws.params import INPUTFILE, render_value
from caesar_api.uws.phases import phase_of_job
from caesar_common.apps import App
from caesar_common.jobstate import JobState
from caesar_common.layout import JobManifest
from caesar_common.store import Document

CATALOG_MEDIA: Final[Mapping[str, str]] = {
    "votable": "application/x-votable+xml",
    "fits": "application/fits",
    "csv": "text/csv",
    "json": "application/json",
    "ds9": "text/plain",
}
"""The catalogue formats of ``/api/v2/jobs/{id}/catalog?format=``, in the order listed."""
CATALOG_KINDS: Final = ("sources", "components")
TAP_RESULT_ID: Final = "result"
LOG_SUFFIX: Final = ".log"


@dataclass(frozen=True)
class ErrorView:
    message: str
    fatal: bool


@dataclass(frozen=True)
class UwsJobView:
    """Every UWS field of one job, ready to render."""

    uws_id: str
    app: str
    owner: str
    phase: ExecutionPhase
    creation_time: datetime
    execution_duration: int
    parameters: list[tuple[str, str]]
    run_id: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    error: ErrorView | None = None
    job: Document | None = field(default=None, compare=False)
    """The submitted job (None for a draft)."""


_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: str) -> str:
    """``value`` without the characters XML 1.0 cannot hold (a v1 tag may contain any)."""
    return _NOT_XML.sub("\ufffd", value)


def _parameters(options: Mapping[str, Any], file_id: str | None) -> list[tuple[str, str]]:
    shown = [(xml_text(name), xml_text(render_value(value))) for name, value in sorted(options.items())]
    if file_id:
        shown.append((INPUTFILE, file_id))
    return shown


def draft_view(draft: Mapping[str, Any], app: App) -> UwsJobView:
    """A draft: PENDING, or ABORTED once its owner aborted it before it ran."""
    aborted = draft.get("aborted_at")
    return UwsJobView(
        uws_id=str(draft["_id"]),
        app=app.name,
        owner=xml_text(str(draft["owner"])),
        phase=ExecutionPhase.ABORTED if aborted else ExecutionPhase.PENDING,
        creation_time=draft["created_at"],
        execution_duration=app.default_wall_time_s,
        parameters=_parameters(draft.get("params") or {}, draft.get("file_id")),
        run_id=xml_text(draft.get("run_id") or "") or None,
        end_time=aborted,
    )


def _error(job: Mapping[str, Any]) -> ErrorView | None:
    state = JobState(job["state"])
    if phase_of_job(job) is not ExecutionPhase.ERROR:
        return None
    message = status_message(state, exit_code=job.get("exit_code"), reason=str(job.get("reason") or ""))
    # A failure of the app itself will fail again on the same input; a lost runner, a
    # time limit or a system abort may not.
    return ErrorView(message=xml_text(message), fatal=state is JobState.FAILURE and not job.get("retryable"))


def job_view(job: Mapping[str, Any], app: App, draft: Mapping[str, Any] | None = None) -> UwsJobView:
    """A submitted job, under its draft's id and creation time if it was created as one."""
    return UwsJobView(
        uws_id=str(draft["_id"]) if draft else str(job["_id"]),
        app=app.name,
        owner=xml_text(str(job["owner"])),
        phase=phase_of_job(job),
        creation_time=draft["created_at"] if draft else job["submitted_at"],
        execution_duration=app.default_wall_time_s,
        parameters=_parameters(job.get("params") or {}, job["input"]["file_id"]),
        run_id=xml_text(job.get("tag") or "") or None,
        start_time=attempt_started_at(job),
        end_time=job.get("ended_at"),
        error=_error(job),
        job=dict(job),
    )


def error_text(view: UwsJobView) -> str | None:
    """The ``/error`` resource: what went wrong, or None when the job has no error."""
    if view.error is None:
        return None
    job = view.job or {}
    lines = [view.error.message, f"state: {job.get('state')}", f"attempt: {job.get('attempt')}"]
    if job.get("exit_code") is not None:
        lines.append(f"exit code: {job['exit_code']}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ResultLink:
    """One ``uws:result``: an id unique in the job, where to get it, and what it is."""

    id: str
    href: str
    mime_type: str
    size: int | None = None


def _catalog_formats(entry: Mapping[str, Any]) -> list[str]:
    files = entry.get("files")
    derived = entry.get("derived")
    present = set(files) if isinstance(files, dict) else set()
    if isinstance(derived, dict):
        present |= set(derived)
    return [fmt for fmt in CATALOG_MEDIA if fmt in present]


def result_links(job_id: str, manifest: JobManifest | None, base: str) -> list[ResultLink]:
    """The results of an ended job: its catalogues in every format, the preview, the logs.

    ``base`` is the scheme and authority the client reached the api at. Nothing is listed
    for a job that left no manifest (it never ran, or its outputs were removed).
    """
    if manifest is None:
        return []
    root = f"{base}{V2}/jobs/{job_id}"
    sizes = {f.name: f.size_bytes for f in manifest.files}
    links: list[ResultLink] = []
    record = manifest.catalog or {}
    catalogs = record.get("catalogs")
    catalogs = catalogs if isinstance(catalogs, dict) else {}
    for kind in CATALOG_KINDS:
        entry = catalogs.get(kind)
        if not isinstance(entry, dict):
            continue
        written = entry.get("files") if isinstance(entry.get("files"), dict) else {}
        for fmt in _catalog_formats(entry):
            name = written.get(fmt) if isinstance(written, dict) else None
            size = sizes.get(name) if isinstance(name, str) else None
            href = f"{root}/catalog?format={fmt}&kind={kind}"
            links.append(ResultLink(f"{kind}-{fmt}", href, CATALOG_MEDIA[fmt], size))
            if kind == "sources" and fmt == "votable":
                links.append(ResultLink(TAP_RESULT_ID, href, CATALOG_MEDIA[fmt], size))
    preview = record.get("preview")
    if isinstance(preview, str) and preview in sizes:
        links.append(ResultLink("preview", f"{root}/preview.png", "image/png", sizes[preview]))
    for name in sorted(sizes):
        if name.endswith(LOG_SUFFIX):
            links.append(ResultLink(f"log-{name}", f"{root}/files/{quote(name)}", "text/plain", sizes[name]))
    return links
