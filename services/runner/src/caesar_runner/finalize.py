"""The last step of every runnable job: harmonised catalogues, preview, catalogue record.

Run as ``python -m caesar_runner.finalize --app <name> --job-dir <dir> --input <image>``,
appended by the runner to the app's plan, or at the end of the finder's own step (see
:data:`IN_PROCESS`). Being job work (not code in the runner process) keeps it
executor-agnostic (it runs on the Slurm node next to the files) and inside the job's
wall-time and memory limits; the preview works on a block-averaged copy of the image
(a 4096^2 map: 64 MB in, under 1 MB drawn).

It reads the finder's native catalogue (none = no source found = an empty catalogue, not a
failure), writes the canonical harmonised catalogue ``sources.fits`` (and
``components.fits`` for finders whose components differ from their sources, i.e.
PyBDSF's Gaussian list; see :mod:`caesar_runner.catalogs.writers` for why one FITS
file), draws ``preview.png`` with its geometry ``preview.json`` (where the image sits in
the PNG and its WCS, for clients that draw sources over it) and records what it did in
``catalog.json``, which the runner copies into the job manifest. Per kind, the record
says::

    {"native": "catalog.srl.fits", "n_rows": 812, "canonical": "sources.fits",
     "files": {"fits": "sources.fits"},                       # written here, listed
     "derived": {"votable": "sources.vot", "csv": "sources.csv",  # made by the api on
                 "json": "sources.json", "ds9": "sources.reg"}}   # first request

so ``files`` names exactly the catalogue files that exist when the job ends, and
``derived`` the names the api caches the other formats under. Records of older jobs
have all five formats under ``files`` and no ``derived``; the api serves both.

For the runnable finders (sfind, PyBDSF, Aegean) the same work runs at the end of the
finder's own process (:data:`IN_PROCESS`), which saves a second interpreter start,
astropy import and image read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from caesar_common.apps.base import PlanContext, Step
    from caesar_runner.catalogs.image import ImageData

__all__ = [
    "FINALIZE_FLAG",
    "IN_PROCESS",
    "PREVIEW",
    "PREVIEW_GEOMETRY",
    "RECORD",
    "finalize",
    "finalize_step",
    "main",
    "read_record",
    "report",
]

RECORD: Final = "catalog.json"
PREVIEW: Final = "preview.png"
PREVIEW_GEOMETRY: Final = "preview.json"
IN_PROCESS: Final = frozenset({"aegean", "bdsf", "sfind"})
"""Apps whose finder step (a Python module of ours) finalizes in its own process.

A separate finalize process pays the interpreter, astropy and the image read again:
about 0.7 s on 2 cores, more than half of what sfind needs for a 2048^2 map. sfind and
the PyBDSF and Aegean wrappers (:mod:`.catalogs.bdsf_run`, :mod:`.catalogs.aegean_run`)
already hold astropy when the finder is done, so their plans pass :data:`FINALIZE_FLAG`
and no finalize step is appended. An app with a catalogue reader that is not listed
here gets the separate step.
"""
FINALIZE_FLAG: Final = "--finalize"


def finalize_step(app: str, ctx: PlanContext) -> Step | None:
    """The step to append to ``app``'s plan, or ``None``.

    ``None`` for apps without a catalogue reader, and for the apps of :data:`IN_PROCESS`,
    whose finder step finalizes itself.
    """
    from caesar_common.apps.base import Step
    from caesar_runner.catalogs.harmonise import NATIVE_FILES

    if app not in NATIVE_FILES or app in IN_PROCESS:
        return None
    argv = (
        str(ctx.bin_dir / "python"),
        "-m",
        "caesar_runner.finalize",
        "--app",
        app,
        "--job-dir",
        str(ctx.job_dir),
        "--input",
        str(ctx.input_path),
    )
    return Step("finalize", argv, {"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"})


def read_record(job_dir: Path) -> dict[str, Any] | None:
    """The finalize step's record (for the manifest), or ``None`` if it did not run.

    Read by the runner, possibly root, from a directory the job wrote as a job user: a
    symlink planted at the record's name is not followed (it could name a file only root
    may read, whose text would end up in the manifest).
    """
    try:
        fd = os.open(job_dir / RECORD, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            data = json.loads(fh.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def finalize(app: str, job_dir: Path, input_path: Path, image: ImageData | None = None) -> dict[str, Any]:
    """Harmonise ``app``'s output in ``job_dir``, draw the preview; return the record.

    ``image``: the input as the finder already loaded it (in-process finalize), to save
    reading it again.
    """
    from caesar_runner.catalogs.harmonise import NATIVE_FILES, read_native
    from caesar_runner.catalogs.image import ImageError
    from caesar_runner.catalogs.writers import CANONICAL_FORMAT, DERIVED_FORMATS, FORMATS, write_canonical

    started = time.perf_counter()
    natives = NATIVE_FILES[app]
    record: dict[str, Any] = {"app": app, "catalogs": {}, "preview": None}
    sources = None
    kinds = ["sources"] if natives["components"] == natives["sources"] else ["sources", "components"]
    for kind in kinds:
        table = read_native(app, job_dir, kind)
        native = natives[kind] if (job_dir / natives[kind]).is_file() else None
        canonical = write_canonical(table, job_dir, kind)
        record["catalogs"][kind] = {
            "native": native,
            "n_rows": len(table),
            "canonical": canonical,
            "files": {CANONICAL_FORMAT: canonical},
            "derived": {fmt: f"{kind}.{FORMATS[fmt]}" for fmt in DERIVED_FORMATS},
        }
        if kind == "sources":
            sources = table
    if "components" not in record["catalogs"]:
        record["catalogs"]["components"] = record["catalogs"]["sources"]
    try:
        from caesar_runner.catalogs.preview import write_preview

        assert sources is not None
        write_preview(job_dir / PREVIEW, job_dir / PREVIEW_GEOMETRY, sources, image, input_path)
        record["preview"] = PREVIEW
        record["preview_geometry"] = PREVIEW_GEOMETRY
    except ImageError as exc:
        record["preview_error"] = str(exc)
    record["elapsed_s"] = round(time.perf_counter() - started, 3)
    tmp = job_dir / f".{RECORD}.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, job_dir / RECORD)
    return record


def report(record: dict[str, Any]) -> str:
    """One log line of what finalize did (the step's stdout)."""
    counts = {kind: c["n_rows"] for kind, c in record["catalogs"].items()}
    return f"finalize: {record['app']} {counts} preview={record['preview']} in {record['elapsed_s']} s"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point of the finalize step."""
    parser = argparse.ArgumentParser(prog="python -m caesar_runner.finalize")
    parser.add_argument("--app", required=True)
    parser.add_argument("--job-dir", type=Path, required=True)
    parser.add_argument("--input", type=Path, required=True)
    args = parser.parse_args(argv)
    print(report(finalize(args.app, args.job_dir, args.input)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
