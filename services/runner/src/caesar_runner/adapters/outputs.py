"""The job directory: staging the input and describing the outputs."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from caesar_common.events import OutputFile
from caesar_common.job_outputs import is_job_output
from caesar_common.layout import attempt_dir, attempts_dir, job_dir

PRIVATE_DIR_MODE = 0o750


def prepare_attempt_dir(jobs_root: Path, owner: str, job_id: str, attempt: int) -> Path:
    """Create ``<job>/attempts/<n>`` with every level private (no access for other users).

    ``mkdir(parents=True)`` gives the parents it creates the default mode, so each level
    is made explicitly: a job's data may be proprietary.
    """
    for directory in (job_dir(jobs_root, owner, job_id), attempts_dir(jobs_root, owner, job_id)):
        directory.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    attempt_directory = attempt_dir(jobs_root, owner, job_id, attempt)
    attempt_directory.mkdir(exist_ok=True, mode=PRIVATE_DIR_MODE)
    return attempt_directory


def stage_input(source: Path, job_dir: Path) -> Path:
    """Link the input into the job directory so finders write their side files there."""
    job_dir.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    target = job_dir / source.name
    # Another attempt of the same job (its runner wrongly presumed lost) may link it first.
    with contextlib.suppress(FileExistsError):
        os.symlink(source, target)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe_outputs(job_dir: Path, exclude: set[str]) -> list[OutputFile]:
    """Every output file the job wrote (not the staged input), with size and SHA-256.

    Not the scratch directory (the steps' ``HOME`` and ``TMPDIR``) nor hidden files: the
    same rule as the api's archive (:func:`caesar_common.job_outputs.is_job_output`).
    """
    files = []
    for path in sorted(job_dir.rglob("*")):
        rel = path.relative_to(job_dir).as_posix()
        if rel in exclude or not is_job_output(rel) or path.is_symlink() or not path.is_file():
            continue
        files.append(OutputFile(name=rel, size_bytes=path.stat().st_size, sha256=_sha256(path)))
    return files


def remove_outputs(job_dir: Path, names: Iterable[str]) -> None:
    """Delete intermediate files the client did not ask to keep (e.g. BANE maps)."""
    for name in names:
        path = job_dir / name
        if path.parent == job_dir and path.is_file():
            path.unlink()
