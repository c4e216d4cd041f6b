"""The job directory: staging the input and describing the outputs."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from caesar_common.events import OutputFile


def stage_input(source: Path, job_dir: Path) -> Path:
    """Link the input into the job directory so finders write their side files there."""
    job_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
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
    """Every regular file the job wrote (not the staged input), with size and SHA-256."""
    files = []
    for path in sorted(job_dir.rglob("*")):
        rel = path.relative_to(job_dir).as_posix()
        if rel in exclude or path.is_symlink() or not path.is_file():
            continue
        files.append(OutputFile(name=rel, size_bytes=path.stat().st_size, sha256=_sha256(path)))
    return files


def remove_outputs(job_dir: Path, names: Iterable[str]) -> None:
    """Delete intermediate files the client did not ask to keep (e.g. BANE maps)."""
    for name in names:
        path = job_dir / name
        if path.parent == job_dir and path.is_file():
            path.unlink()
