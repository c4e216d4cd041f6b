"""Files of a finished job, found through its manifest only.

Clients name job files (``/files/{name}``, ``?format=``); a name is served only if the
runner listed it in the job's ``manifest.json`` (read as the shared
:class:`~caesar_common.layout.JobManifest`), or if the manifest's catalogue record names
it as a format derived from a listed canonical catalogue, and the resolved path must
stay inside the job directory and not be a symlink. So no client text ever becomes a
path by itself. Blocking (file reads, derivations): callers run these in a thread.

Derived formats. The finalize step writes one canonical catalogue per kind
(``sources.fits``) and records the other formats under ``derived``
(``{"votable": "sources.vot", ...}``). The first request for one renders it
(:mod:`caesar_api.adapters.catalog_formats`) and caches it under that name next to the
canonical file: written to a hidden private temporary, flushed to disk, then renamed
over the final name. Concurrent first requests in this process wait for one rendering;
requests in other api processes may render too, but every rename installs a complete,
identical file, so no reader ever sees a partial or mixed one. A job directory the api
may not write (another uid, a read-only mount) gets its derived files in a private
cache directory of this process instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from caesar_api.adapters.catalog_formats import DERIVERS, render
from caesar_common.layout import (
    MANIFEST_NAME,
    JobManifest,
    LayoutError,
    job_file,
    private_temp_name,
    read_manifest,
)

__all__ = [
    "MANIFEST_NAME",
    "catalog_file",
    "derived_file",
    "listed_file",
    "load_manifest",
    "preview_file",
    "write_atomically",
]

# Striped locks: one rendering per derived file at a time in this process, in bounded
# memory (a dict of one lock per file ever asked for would only grow).
_LOCKS = tuple(threading.Lock() for _ in range(64))
_fallback_guard = threading.Lock()
_fallback_dir: Path | None = None


def load_manifest(job_dir: Path) -> JobManifest | None:
    """The job's manifest, or ``None`` if it has none (never ran, outputs removed, unreadable)."""
    return read_manifest(job_dir)


def _inside(job_dir: Path, name: str) -> Path | None:
    """``name`` resolved inside ``job_dir`` if it is a regular file there, not a link."""
    try:
        path = job_file(job_dir, name)
        resolved = path.resolve(strict=True)
    except (LayoutError, OSError):
        return None
    if path.is_symlink() or not resolved.is_file() or not resolved.is_relative_to(job_dir.resolve()):
        return None
    return resolved


def listed_file(job_dir: Path, manifest: JobManifest, name: str) -> Path | None:
    """The path of ``name`` if the manifest lists it (or derives it) and it is a regular
    file inside ``job_dir``; a derived catalogue is made on this first request."""
    # The manifest itself is not in its own list, but it is the job's record: served too.
    if name == MANIFEST_NAME or name in manifest.file_names():
        return _inside(job_dir, name)
    for entry in _catalog_entries(manifest):
        for fmt, derived_name in _derived(entry).items():
            if derived_name == name:
                return derived_file(job_dir, manifest, entry, fmt)
    return None


def _catalog_entries(manifest: JobManifest) -> list[dict[str, Any]]:
    catalogs = (manifest.catalog or {}).get("catalogs", {})
    if not isinstance(catalogs, dict):
        return []
    return [e for e in catalogs.values() if isinstance(e, dict)]


def _derived(entry: dict[str, Any]) -> dict[str, str]:
    derived = entry.get("derived")
    if not isinstance(derived, dict):
        return {}
    return {f: n for f, n in derived.items() if f in DERIVERS and isinstance(n, str)}


def catalog_file(job_dir: Path, manifest: JobManifest, kind: str, fmt: str) -> Path | None:
    """The harmonised catalogue of ``kind`` (sources/components) in ``fmt``, if the job made one.

    A format the job wrote (``files``; every format for jobs finalized before derived
    formats) is served as listed; a ``derived`` one is made from the canonical file.
    """
    record = manifest.catalog or {}
    entry = record.get("catalogs", {}).get(kind)
    if not isinstance(entry, dict):
        return None
    name = entry.get("files", {}).get(fmt)
    if isinstance(name, str):
        return listed_file(job_dir, manifest, name)
    if fmt in _derived(entry):
        return derived_file(job_dir, manifest, entry, fmt)
    return None


def derived_file(job_dir: Path, manifest: JobManifest, entry: dict[str, Any], fmt: str) -> Path | None:
    """The cached ``fmt`` rendering of ``entry``'s canonical catalogue, made if missing.

    ``None`` if the record has no listed canonical file or no safe name for ``fmt``.
    """
    canonical_name = entry.get("canonical")
    name = _derived(entry).get(fmt)
    if not isinstance(canonical_name, str) or canonical_name not in manifest.file_names() or name is None:
        return None
    canonical = _inside(job_dir, canonical_name)
    if canonical is None:
        return None
    try:
        target = job_file(job_dir, name)
    except LayoutError:
        return None
    if target.parent.resolve() != canonical.parent:
        return None  # derived files live next to the canonical one, nowhere else
    cached = _inside(job_dir, name)
    if cached is not None:
        return cached
    with _lock_for(target):
        cached = _inside(job_dir, name)  # made while this request waited
        if cached is not None:
            return cached
        data = render(canonical, fmt)
        try:
            write_atomically(target, data)
        except OSError:  # the job directory is not ours to write: keep a private copy
            return _fallback_copy(canonical, name, data)
        return _inside(job_dir, name)


def write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` as ``target``: hidden private temporary, fsync, rename.

    The temporary's name is unique to this writer (pid and random part), so writers in
    several processes never share one; it starts with a dot, so job archives skip a
    temporary that a crash left behind.
    """
    tmp = target.with_name(f".{private_temp_name(target.name)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _lock_for(path: Path) -> threading.Lock:
    return _LOCKS[int(hashlib.blake2b(str(path).encode(), digest_size=4).hexdigest(), 16) % len(_LOCKS)]


def _fallback_copy(canonical: Path, name: str, data: bytes) -> Path:
    """``data`` in this process's private cache, keyed by the canonical file's path."""
    global _fallback_dir
    with _fallback_guard:
        if _fallback_dir is None:
            _fallback_dir = Path(tempfile.mkdtemp(prefix="caesar-api-catalogs-"))
    key = hashlib.sha256(str(canonical).encode()).hexdigest()[:32]
    target = _fallback_dir / f"{key}-{name}"
    write_atomically(target, data)
    return target


def preview_file(job_dir: Path, manifest: JobManifest) -> Path | None:
    """The job's preview PNG, if it made one."""
    name = (manifest.catalog or {}).get("preview")
    return listed_file(job_dir, manifest, name) if isinstance(name, str) else None
