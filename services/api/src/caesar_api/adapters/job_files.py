"""Files of a finished job, found through its manifest only.

Clients name job files (``/files/{name}``, ``?format=``); a name is served only if the
runner listed it in the job's ``manifest.json`` (read as the shared
:class:`~caesar_common.layout.JobManifest`), and the resolved path must stay inside the
job directory and not be a symlink. So no client text ever becomes a path by itself.
Blocking (file reads): callers run these in a thread.
"""

from __future__ import annotations

from pathlib import Path

from caesar_common.layout import MANIFEST_NAME, JobManifest, LayoutError, job_file, read_manifest

__all__ = ["MANIFEST_NAME", "catalog_file", "listed_file", "load_manifest", "preview_file"]


def load_manifest(job_dir: Path) -> JobManifest | None:
    """The job's manifest, or ``None`` if it has none (never ran, outputs removed, unreadable)."""
    return read_manifest(job_dir)


def listed_file(job_dir: Path, manifest: JobManifest, name: str) -> Path | None:
    """The path of ``name`` if the manifest lists it and it is a regular file inside ``job_dir``."""
    # The manifest itself is not in its own list, but it is the job's record: served too.
    if name != MANIFEST_NAME and name not in manifest.file_names():
        return None
    try:
        path = job_file(job_dir, name)
        resolved = path.resolve(strict=True)
    except (LayoutError, OSError):
        return None
    if path.is_symlink() or not resolved.is_file() or not resolved.is_relative_to(job_dir.resolve()):
        return None
    return resolved


def catalog_file(job_dir: Path, manifest: JobManifest, kind: str, fmt: str) -> Path | None:
    """The harmonised catalogue of ``kind`` (sources/components) in ``fmt``, if the job made one."""
    record = manifest.catalog or {}
    entry = record.get("catalogs", {}).get(kind)
    if not isinstance(entry, dict):
        return None
    name = entry.get("files", {}).get(fmt)
    return listed_file(job_dir, manifest, name) if isinstance(name, str) else None


def preview_file(job_dir: Path, manifest: JobManifest) -> Path | None:
    """The job's preview PNG, if it made one."""
    name = (manifest.catalog or {}).get("preview")
    return listed_file(job_dir, manifest, name) if isinstance(name, str) else None
