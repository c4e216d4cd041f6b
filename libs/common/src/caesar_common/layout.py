"""Where uploads and job files live on disk, and what a job's manifest holds.

Every service that touches the shared file system (the api stores uploads and serves
job files, the runner stages inputs and writes outputs, the finalize step writes
catalogues) builds its paths here, so the layout is written down once:

* an upload: ``<data_root>/<owner>/<file_id>.<ext>``, streamed first into the hidden
  ``<data_root>/<owner>/.upload-<file_id>.part``;
* a job directory: ``<jobs_root>/<owner>/<job_id>/``, and in it one directory per
  attempt, ``attempts/<n>/``, holding the staged input (a link named like the upload),
  the outputs, ``tmp/`` and ``manifest.json``. Attempts never share a directory: a slow
  attempt wrongly presumed lost cannot delete or overwrite its retry's files, and the
  api serves the directory of the attempt whose outcome it shows. The existence of
  ``attempts/<m>`` for ``m > n`` fences attempt ``n`` (see :func:`superseding_attempt`).
  Jobs run before per-attempt directories kept their files in the job directory itself;
  readers fall back to it (:func:`legacy_outputs`);
* the job's archive: ``<job_id>.tar.gz`` with every entry under ``<job_id>/``.

Paths are made only of ids we generated (checked against :mod:`caesar_common.ids`), a
validated owner and a checked extension, so no client string can walk out of a root
(``../../etc/passwd`` is refused with :class:`LayoutError`, a ``ValueError``). Nothing
here touches the disk except :func:`read_manifest` and :func:`write_manifest`, which take
the job directory they work on.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer

from caesar_common.events import InputFile
from caesar_common.ids import is_file_id, is_job_id, safe_owner
from caesar_common.jobstate import JobState

__all__ = [
    "ARCHIVE_SUFFIX",
    "JOB_TMP_DIR",
    "MANIFEST_NAME",
    "UPLOAD_TEMP_GLOB",
    "UPLOAD_TEMP_PREFIX",
    "UPLOAD_TEMP_SUFFIX",
    "JobManifest",
    "LayoutError",
    "ManifestFile",
    "ManifestStep",
    "archive_filename",
    "archive_root",
    "attempt_dir",
    "attempts_dir",
    "hidden_temp_name",
    "is_safe_extension",
    "job_dir",
    "job_file",
    "legacy_outputs",
    "manifest_path",
    "owner_data_dir",
    "owner_jobs_dir",
    "private_temp_name",
    "read_manifest",
    "staged_input_name",
    "stays_inside",
    "superseding_attempt",
    "upload_path",
    "upload_temp_path",
    "write_manifest",
]

MANIFEST_NAME: Final = "manifest.json"
JOB_TMP_DIR: Final = "tmp"
"""The job's private scratch directory (``TMPDIR`` of its steps), inside the job directory."""
UPLOAD_TEMP_PREFIX: Final = ".upload-"
UPLOAD_TEMP_SUFFIX: Final = ".part"
UPLOAD_TEMP_GLOB: Final = f"*/{UPLOAD_TEMP_PREFIX}*{UPLOAD_TEMP_SUFFIX}"
"""Relative to the data root: every upload in progress (or left behind by a crash)."""
ARCHIVE_SUFFIX: Final = ".tar.gz"

_EXT_RE = re.compile(r"^[a-z0-9]{1,16}$")


class LayoutError(ValueError):
    """An id, owner, extension or file name that must never become part of a path."""


def is_safe_extension(ext: str) -> bool:
    """Whether ``ext`` may end a stored file name (1-16 lower-case alphanumerics, no dot)."""
    return bool(_EXT_RE.fullmatch(ext))


def _owner(owner: str) -> str:
    try:
        return safe_owner(owner)
    except ValueError as exc:
        raise LayoutError(str(exc)) from exc


def _file_id(file_id: str) -> str:
    if not is_file_id(file_id):
        raise LayoutError(f"{file_id!r} is not a file id")
    return file_id


def _job_id(job_id: str) -> str:
    if not is_job_id(job_id):
        raise LayoutError(f"{job_id!r} is not a job id")
    return job_id


def _ext(ext: str) -> str:
    if not is_safe_extension(ext):
        raise LayoutError(f"{ext!r} is not a stored file extension")
    return ext


# -- uploads -------------------------------------------------------------------------------


def owner_data_dir(data_root: Path, owner: str) -> Path:
    """``<data_root>/<owner>``: one directory per owner, so a listing never mixes users."""
    return data_root / _owner(owner)


def staged_input_name(file_id: str, ext: str) -> str:
    """``<file_id>.<ext>``: the stored upload's name, and its link's name in a job directory."""
    return f"{_file_id(file_id)}.{_ext(ext)}"


def stays_inside(root: Path, path: Path) -> Path:
    """``path`` with every symlink resolved, if that is still under ``root`` (resolved too).

    Ids are checked against their patterns before any path is built, but a path may still
    leave its root through a symlink on the way (planted on the file system, or a shared
    storage mounted oddly): whatever reads or writes for a user goes through this first.
    """
    real_root, real = root.resolve(), path.resolve()
    if not real.is_relative_to(real_root):
        raise LayoutError(f"{path} leads out of {root}")
    return real


def upload_path(data_root: Path, owner: str, file_id: str, ext: str) -> Path:
    """``<data_root>/<owner>/<file_id>.<ext>``: where an upload is kept once complete."""
    return owner_data_dir(data_root, owner) / staged_input_name(file_id, ext)


def upload_temp_path(data_root: Path, owner: str, file_id: str) -> Path:
    """The hidden file an upload is streamed into, in the owner's directory.

    Same directory as the final file, so the rename that completes the upload is atomic;
    hidden and suffixed, so listings and the stale-upload sweep (:data:`UPLOAD_TEMP_GLOB`)
    tell it apart from stored files.
    """
    return owner_data_dir(data_root, owner) / f"{UPLOAD_TEMP_PREFIX}{_file_id(file_id)}{UPLOAD_TEMP_SUFFIX}"


# -- job directories -----------------------------------------------------------------------


def owner_jobs_dir(jobs_root: Path, owner: str) -> Path:
    """``<jobs_root>/<owner>``."""
    return jobs_root / _owner(owner)


def job_dir(jobs_root: Path, owner: str, job_id: str) -> Path:
    """``<jobs_root>/<owner>/<job_id>``: everything one job reads and writes."""
    return owner_jobs_dir(jobs_root, owner) / _job_id(job_id)


ATTEMPTS_DIR: Final = "attempts"


def attempts_dir(jobs_root: Path, owner: str, job_id: str) -> Path:
    """``<jobs_root>/<owner>/<job_id>/attempts``: one subdirectory per attempt."""
    return job_dir(jobs_root, owner, job_id) / ATTEMPTS_DIR


def attempt_dir(jobs_root: Path, owner: str, job_id: str, attempt: int) -> Path:
    """``<jobs_root>/<owner>/<job_id>/attempts/<attempt>``: everything one attempt writes."""
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise LayoutError(f"{attempt!r} is not an attempt number")
    return attempts_dir(jobs_root, owner, job_id) / str(attempt)


def superseding_attempt(jobs_root: Path, owner: str, job_id: str, attempt: int) -> int | None:
    """The highest attempt above ``attempt`` that has started, or ``None``.

    An attempt's runner creates its directory before the first step; the scheduler only
    dispatches attempt ``n + 1`` after giving up on attempt ``n``. So a higher attempt's
    directory is the fence: attempt ``n`` must stop and must not publish. Directory
    creation is atomic on every file system the jobs root may live on (NFS included),
    unlike a read-modify-write counter.
    """
    try:
        names = [entry.name for entry in os.scandir(attempts_dir(jobs_root, owner, job_id))]
    except FileNotFoundError:
        return None
    higher = [int(n) for n in names if n.isdigit() and int(n) > attempt]
    return max(higher) if higher else None


def legacy_outputs(jobs_root: Path, owner: str, job_id: str) -> Path:
    """Where jobs run before per-attempt directories kept their files: the job directory."""
    return job_dir(jobs_root, owner, job_id)


def manifest_path(job_directory: Path) -> Path:
    """The job's record, written last by the runner: its presence means outputs are final."""
    return job_directory / MANIFEST_NAME


def job_file(job_directory: Path, name: str) -> Path:
    """The path of ``name`` (relative, POSIX) inside ``job_directory``; refuses escapes.

    Pure path arithmetic: absolute names, ``..``, empty and ``.`` components and
    backslashes are refused, so the result is lexically inside the directory. Whether it
    is a regular file and not a symbolic link is the caller's check, on the disk.
    """
    if not name or "\\" in name or "\x00" in name:
        raise LayoutError(f"{name!r} is not a job file name")
    parts = name.split("/")
    if PurePosixPath(name).is_absolute() or any(p in {"", ".", ".."} for p in parts):
        raise LayoutError(f"{name!r} is not a job file name")
    return job_directory.joinpath(*parts)


def hidden_temp_name(name: str) -> str:
    """``.<name>.tmp``: a file being written by the one writer of ``name`` (then renamed)."""
    return f".{name}.tmp"


def private_temp_name(name: str) -> str:
    """``<name>.<pid>.<random>.tmp``: a temporary of one writer among several.

    Two attempts of a job may finish together (one wrongly presumed lost); each renames
    its own temporary, so neither can move the other's half-written file into place.
    """
    return f"{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"


def archive_root(job_id: str) -> str:
    """The directory every entry of a job's archive sits under: the job id."""
    return _job_id(job_id)


def archive_filename(job_id: str) -> str:
    """``<job_id>.tar.gz``: the download name of a job's archive."""
    return f"{_job_id(job_id)}{ARCHIVE_SUFFIX}"


# -- the manifest --------------------------------------------------------------------------


class ManifestStep(BaseModel):
    """One argv step the job ran (the finalize step included)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    argv: list[str]


class ManifestFile(BaseModel):
    """A file the job left in its directory: the only names the api will serve."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    size_bytes: int = Field(ge=0)
    sha256: str = ""


class JobManifest(BaseModel):
    """``manifest.json``: what ran, on what, with which outcome, and what it produced.

    The field names and JSON shapes are exactly those the runner has written since
    version 2.0 (times as ``datetime.isoformat()`` strings, the state as its value), so
    manifests already on disk read back unchanged. ``catalog`` is the finalize step's
    ``catalog.json`` record (``None`` for apps without a catalogue reader, or if the step
    did not get to write it). Unknown keys are ignored, so a newer runner's manifest is
    still readable.
    """

    model_config = ConfigDict(extra="ignore")

    job_id: str
    attempt: int = Field(ge=1)
    app: str
    app_version: str
    parameters: dict[str, Any]
    input: InputFile
    runner_id: str
    started_at: datetime
    finished_at: datetime
    state: JobState
    exit_code: int | None
    elapsed_s: float
    cpu_s: float
    peak_rss_bytes: int
    steps: list[ManifestStep] = Field(default_factory=list)
    files: list[ManifestFile] = Field(default_factory=list)
    catalog: dict[str, Any] | None = None

    @field_serializer("started_at", "finished_at")
    def _iso(self, value: datetime) -> str:
        # isoformat, not pydantic's "Z" form: the runner has always written "+00:00".
        return value.isoformat()

    def file_names(self) -> set[str]:
        """Names listed in ``files``; the manifest itself is not among them."""
        return {f.name for f in self.files}

    def to_json(self) -> str:
        """The file's text: indented, with anything exotic in the parameters as a string."""
        return json.dumps(self.model_dump(mode="python"), indent=2, default=str)


def write_manifest(job_directory: Path, manifest: JobManifest) -> Path:
    """Write ``manifest.json`` atomically (private temporary, then rename); return its path."""
    final = manifest_path(job_directory)
    tmp = job_directory / private_temp_name(MANIFEST_NAME)
    tmp.write_text(manifest.to_json(), encoding="utf-8")
    tmp.replace(final)
    return final


def read_manifest(job_directory: Path) -> JobManifest | None:
    """The job's manifest, or ``None`` if it has none, or it is unreadable or malformed.

    ``None`` covers a job that never ran, whose outputs were removed, or whose runner
    died mid-write: callers answer "no outputs" for all of them.
    """
    try:
        text = manifest_path(job_directory).read_text(encoding="utf-8")
        return JobManifest.model_validate_json(text)
    except (OSError, ValueError, ValidationError):
        return None
