"""v1.0 job requests and the record of a new job (pure).

Two request forms exist in the wild and both are accepted::

    {"app": "caesar", "job_inputs": {"inputfile": "/any/path/<uuid>.fits", "no-mpi": true}}
    {"app": "aegean", "job_inputs": {"seedthr": 5}, "data_inputs": "<uuid>", "tag": "run1"}

The input file is always reduced to a file id we generated: from a path only the file
*name* is used, and the path itself is never opened. Options that the old service
consumed itself (``inputfile``, ``envfile``, ``run``) are removed before the app's
parameter schema sees the rest; ``envfile`` is never sourced.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from caesar_api.domain.errors import INVALID_REQUEST_DATA, ApiError, shown
from caesar_common.apps import NON_OPTION_INPUTS as APP_NON_OPTION_INPUTS
from caesar_common.apps.base import App, ValidatedParams
from caesar_common.events import InputFile, JobSubmitted
from caesar_common.ids import is_file_id
from caesar_common.jobstate import JobState

# job_inputs keys that are not app options: the input reference, a shell file the old
# service sourced (a hole; ignored now) and the old always-on ``--run`` switch.
NON_OPTION_INPUTS = APP_NON_OPTION_INPUTS
# Never echoed back: a client path that we ignore on purpose.
NOT_ECHOED = frozenset({"envfile"})
TAG_MAX = 256

_FILE_NAME_RE = re.compile(r"^([0-9a-f]{32})\.[A-Za-z0-9]{1,16}$")


@dataclass(frozen=True)
class JobRequest:
    """A structurally valid v1.0 job request, before app validation and file lookup."""

    app: str
    file_id: str
    options: dict[str, Any] = field(default_factory=dict)
    """What the app's parameter schema validates (non-option inputs removed)."""
    echo_inputs: dict[str, Any] = field(default_factory=dict)
    """``job_inputs`` as answered back: as given, with ``inputfile`` set to the file id."""
    tag: str = ""


def file_id_from_reference(reference: str) -> str | None:
    """The file id a client's input reference names, or ``None``.

    A reference is either a file uuid or a path whose last component is
    ``<uuid>.<ext>`` (what the old service handed out). Only that last component is
    looked at, so ``/etc/passwd`` or ``../x`` never name a file.
    """
    if is_file_id(reference):
        return reference
    name = re.split(r"[/\\]", reference)[-1]
    match = _FILE_NAME_RE.fullmatch(name)
    return match.group(1) if match else None


def _input_reference(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"Invalid request data: {where} must be a file uuid string!")
    file_id = file_id_from_reference(value)
    if file_id is None:
        raise ApiError(
            400,
            f"Invalid input file {shown(value)} in {where}: "
            "expected a file uuid or a path named <uuid>.<ext>!",
        )
    return file_id


def parse_job_request(body: object) -> JobRequest:
    """Check a decoded JSON body's structure and pick out app, input file and options.

    Raises :class:`ApiError` (400) naming the first problem; option values are checked
    later against the app's schema.
    """
    if not isinstance(body, Mapping) or not body:
        raise ApiError(400, INVALID_REQUEST_DATA)
    app = body.get("app")
    if app is None or app == "":
        raise ApiError(400, "No app name found in request!")
    if not isinstance(app, str):
        raise ApiError(400, "Invalid request data: app must be a string!")
    job_inputs = body.get("job_inputs")
    if job_inputs is None:
        raise ApiError(400, "No job inputs found in request!")
    if not isinstance(job_inputs, Mapping):
        raise ApiError(400, "Invalid request data: job_inputs must be an object!")
    tag = body.get("tag", "")
    if tag is None:
        tag = ""
    if not isinstance(tag, str):
        raise ApiError(400, "Invalid request data: tag must be a string!")
    if len(tag) > TAG_MAX:
        raise ApiError(400, f"Invalid request data: tag longer than {TAG_MAX} characters!")

    from_data = body.get("data_inputs")
    from_inputs = job_inputs.get("inputfile")
    ids = []
    if from_data is not None:
        ids.append(_input_reference(from_data, "data_inputs"))
    if from_inputs is not None:
        ids.append(_input_reference(from_inputs, "job_inputs.inputfile"))
    if not ids:
        raise ApiError(400, "No input file given: set data_inputs or job_inputs.inputfile!")
    if len(set(ids)) > 1:
        raise ApiError(400, "data_inputs and job_inputs.inputfile name different files!")
    file_id = ids[0]

    options = {str(k): v for k, v in job_inputs.items() if k not in NON_OPTION_INPUTS}
    echo = {str(k): v for k, v in job_inputs.items() if k not in NOT_ECHOED}
    echo["inputfile"] = file_id
    return JobRequest(app=app, file_id=file_id, options=options, echo_inputs=echo, tag=tag)


def new_job(
    *,
    job_id: str,
    owner: str,
    app: App,
    params: ValidatedParams,
    file: Mapping[str, Any],
    tag: str,
    now: datetime,
    roles: Collection[str] = (),
) -> tuple[dict[str, Any], JobSubmitted]:
    """The read-model record of a new job (PENDING, attempt 0) and the event announcing it.

    The record keeps the options as the client gave them (what ``/jobs`` echoes back);
    the event carries the effective ones (defaults filled in), the input file's facts and
    the resources the app asks for, which is everything the scheduler and runner need
    without reading the api's database.
    """
    resources = app.resources(params, int(file["size_bytes"]))
    event = JobSubmitted(
        job_id=job_id,
        owner=owner,
        app=app.name,
        params=dict(params.effective),
        input=InputFile(
            file_id=file["_id"],
            ext=file["ext"],
            size_bytes=file["size_bytes"],
            sha256=file["sha256"],
        ),
        tag=tag,
        wall_time_s=app.default_wall_time_s,
        cores=resources.cores,
        memory_mb=resources.memory_mb,
        submitted_at=now,
        roles=tuple(sorted(roles)),
    )
    record: dict[str, Any] = {
        "_id": job_id,
        "owner": owner,
        "app": app.name,
        "app_version": app.version,
        "params": dict(params.given),
        "input": {"file_id": file["_id"], "ext": file["ext"]},
        "tag": tag,
        "submitted_at": now,
        "state": JobState.PENDING.value,
        "attempt": 0,
        "retryable": False,
        "reason": "",
        "exit_code": None,
        "elapsed_s": None,
        "cpu_s": None,
        "peak_rss_bytes": None,
        "pid": None,
        "runner_id": "",
        "pool": "",
        "outputs": [],
        "updated_at": now,
        "cancel_requested_at": None,
    }
    return record, event
