"""Files of a finished job, found through its manifest only.

Clients name job files (``/files/{name}``, ``?format=``); a name is served only if the
runner listed it in the job's ``manifest.json``, and the resolved path must stay inside
the job directory and not be a symlink. So no client text ever becomes a path by itself.
Blocking (file reads): callers run these in a thread.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["catalog_file", "listed_file", "load_manifest", "manifest_files", "preview_file"]

MANIFEST = "manifest.json"


def load_manifest(job_dir: Path) -> dict[str, Any] | None:
    """The job's manifest, or ``None`` if it has none (never ran, or outputs removed)."""
    try:
        data = json.loads((job_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def manifest_files(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``files`` entries (name, size_bytes, sha256) of a manifest."""
    files = manifest.get("files")
    if not isinstance(files, list):
        return []
    return [f for f in files if isinstance(f, dict) and isinstance(f.get("name"), str)]


def listed_file(job_dir: Path, manifest: dict[str, Any], name: str) -> Path | None:
    """The path of ``name`` if the manifest lists it and it is a regular file inside ``job_dir``."""
    # The manifest itself is not in its own list, but it is the job's record: served too.
    if name != MANIFEST and name not in {f["name"] for f in manifest_files(manifest)}:
        return None
    path = job_dir / name
    try:
        resolved = path.resolve(strict=True)
    except OSError:
        return None
    if path.is_symlink() or not resolved.is_file() or not resolved.is_relative_to(job_dir.resolve()):
        return None
    return resolved


def catalog_file(job_dir: Path, manifest: dict[str, Any], kind: str, fmt: str) -> Path | None:
    """The harmonised catalogue of ``kind`` (sources/components) in ``fmt``, if the job made one."""
    record = manifest.get("catalog")
    if not isinstance(record, dict):
        return None
    entry = record.get("catalogs", {}).get(kind)
    if not isinstance(entry, dict):
        return None
    name = entry.get("files", {}).get(fmt)
    return listed_file(job_dir, manifest, name) if isinstance(name, str) else None


def preview_file(job_dir: Path, manifest: dict[str, Any]) -> Path | None:
    """The job's preview PNG, if it made one."""
    record = manifest.get("catalog")
    name = record.get("preview") if isinstance(record, dict) else None
    return listed_file(job_dir, manifest, name) if isinstance(name, str) else None
