"""v1.0 response shapes built from stored records (pure).

Field names, types and formats are fixed by existing clients: dates are ISO 8601 without
an offset (they are UTC), sizes are MiB floats, ``elapsed_time`` and ``pid`` are strings.
Server paths never appear: inputs are named by file id only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from caesar_api.domain.projection import attempt_started_at
from caesar_api.domain.status import status_message
from caesar_common.jobstate import JobState, is_terminal

MIB = 1024 * 1024


def stored_now() -> datetime:
    """The current UTC time cut to milliseconds, the precision MongoDB stores.

    The answer to a request and the record read back later then show the same time,
    and cursors built from stored times match exactly.
    """
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def v1_date(value: datetime | None) -> str:
    """ISO 8601 in UTC without an offset, with microseconds, as the old service wrote."""
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds")


def size_mib(size_bytes: int) -> float:
    return size_bytes / MIB


def upload_response(file: Mapping[str, Any]) -> dict[str, Any]:
    """Body of a successful ``POST /upload``."""
    return {
        "date": v1_date(file["uploaded_at"]),
        "filename_orig": file["filename_orig"],
        "format": file["ext"],
        "size": size_mib(file["size_bytes"]),
        "status": "File uploaded with success",
        "tag": file.get("tag", ""),
        "uuid": file["_id"],
    }


def file_record(file: Mapping[str, Any]) -> dict[str, Any]:
    """One entry of ``GET /fileids``'s ``files`` (the later v1 record shape)."""
    return {
        "fileid": file["_id"],
        "filename_orig": file["filename_orig"],
        "fileext": file["ext"],
        "filesize": size_mib(file["size_bytes"]),
        "filedate": v1_date(file["uploaded_at"]),
        "tag": file.get("tag", ""),
    }


def job_inputs_echo(job: Mapping[str, Any]) -> dict[str, Any]:
    """``job_inputs`` as stored options plus the input file's id (never a path)."""
    return {"inputfile": job["input"]["file_id"], **job.get("params", {})}


def submit_response(job: Mapping[str, Any], echo_inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Body of a successful ``POST /job`` (202)."""
    return {
        "app": job["app"],
        "job_id": job["_id"],
        "job_inputs": dict(echo_inputs),
        "data_inputs": job["input"]["file_id"],
        "state": job["state"],
        "status": "Job submitted with success",
        "submit_date": v1_date(job["submitted_at"]),
        "tag": job.get("tag", ""),
    }


def _text(value: object) -> str:
    return "" if value is None else str(value)


def job_status(job: Mapping[str, Any], *, waiting: str = "") -> dict[str, Any]:
    """Body of ``GET /job/<id>/status``.

    ``exit_status`` and ``exit_code`` are the app's exit code once known, else null;
    ``elapsed_time`` (seconds) and ``pid`` are strings as in the old service ("" while
    unknown). ``waiting`` says why a queued job cannot start (its pool has no runner).
    """
    state = JobState(job["state"])
    exit_code = job.get("exit_code")
    reason = "; ".join(r for r in (job.get("reason") or "", waiting) if r)
    status = status_message(state, exit_code=exit_code, reason=reason)
    if job.get("cancel_requested_at") is not None and not is_terminal(state):
        status = f"Cancel requested, waiting for the job to stop ({status})"
    body = {
        "elapsed_time": _text(job.get("elapsed_s")),
        "exit_status": exit_code,
        "exit_code": exit_code,
        "job_id": job["_id"],
        "pid": _text(job.get("pid")),
        "state": state.value,
        "status": status,
        "tag": job.get("tag", ""),
    }
    # An extension of the v1 shape (clients ignore unknown keys): where the job runs
    # (``local``, ``slurm``), once the scheduler has chosen.
    if job.get("pool"):
        body["pool"] = job["pool"]
    if waiting:
        body["waiting_reason"] = waiting
    if (held := hold_reason(job)) is not None:
        body["hold_reason"] = held
    return body


def hold_reason(job: Mapping[str, Any]) -> str | None:
    """Why a HELD job waits (its owner's exhausted quotas, with the figures); else None."""
    if JobState(job["state"]) is not JobState.HELD:
        return None
    return str(job.get("reason") or "over quota")


def v2_time(value: object) -> str | None:
    """ISO 8601 with its offset, to the millisecond (stored times are UTC, read back naive)."""
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat(timespec="milliseconds")


def job_links(job_id: str) -> dict[str, str]:
    """Where a v2 client goes next from a job (relative URLs)."""
    base = f"/api/v2/jobs/{job_id}"
    return {
        "self": base,
        "events": f"{base}/events",
        "files": f"{base}/files",
        "catalog": f"{base}/catalog",
        "preview": f"{base}/preview.png",
        "archive": f"{base}/archive",
    }


def shown_state(job: Mapping[str, Any]) -> str:
    """The state a v2 client sees: ``DELETED`` once the outputs were removed, else the stored one."""
    if job.get("deleted_at") is not None:
        return "DELETED"
    return JobState(job["state"]).value


def job_v2(job: Mapping[str, Any], *, queue_position: int | None = None) -> dict[str, Any]:
    """Body of ``GET /api/v2/jobs/{job_id}``: the job as the read model last saw it.

    ``hold_reason`` says why a HELD job waits (its owner's exhausted quotas, with the
    figures); it is null otherwise. ``queue_position`` is computed by the caller (a count
    over other owners' jobs) and only given for one job: a list shows it null.
    """
    job_id = str(job["_id"])
    return {
        "job_id": job_id,
        "app": job["app"],
        "state": shown_state(job),
        "attempt": int(job.get("attempt") or 0),
        "pool": job.get("pool") or None,
        "file_id": (job.get("input") or {}).get("file_id"),
        "options": dict(job.get("params") or {}),
        "tag": job.get("tag", ""),
        "reason": job.get("reason") or "",
        "hold_reason": hold_reason(job),
        "queue_position": queue_position,
        "exit_code": job.get("exit_code"),
        "elapsed_s": job.get("elapsed_s"),
        "submitted_at": v2_time(job.get("submitted_at")),
        "started_at": v2_time(attempt_started_at(job)),
        "ended_at": v2_time(job.get("ended_at")),
        "updated_at": v2_time(job.get("updated_at")),
        "deleted_at": v2_time(job.get("deleted_at")),
        "links": job_links(job_id),
    }


def file_v2(file: Mapping[str, Any]) -> dict[str, Any]:
    """A ``file`` of the v2 API: the upload's facts, its FITS header facts and its links."""
    file_id = str(file["_id"])
    base = f"/api/v2/files/{file_id}"
    return {
        "file_id": file_id,
        "filename": file["filename_orig"],
        "format": file["ext"],
        "size_bytes": int(file["size_bytes"]),
        "tag": file.get("tag", ""),
        "uploaded_at": v2_time(file.get("uploaded_at")),
        "fits": file.get("fits"),
        "links": {"self": base, "content": f"{base}/content"},
    }


def job_summary(job: Mapping[str, Any]) -> dict[str, Any]:
    """One entry of ``GET /jobs``: the submission and its current status."""
    return {
        **job_status(job),
        "app": job["app"],
        "data_inputs": job["input"]["file_id"],
        "job_inputs": job_inputs_echo(job),
        "submit_date": v1_date(job["submitted_at"]),
    }


def not_completed_message(job_id: str, state: str) -> str:
    return f"Job {job_id} not yet completed (state={state}), output not available"


def already_completed_message(job_id: str, state: str) -> str:
    return f"Job {job_id} already completed with state {state}, nothing to be canceled."
