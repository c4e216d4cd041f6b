"""Run PyBDSF on one image as a process: ``python -m caesar_runner.catalogs.bdsf_run``.

PyBDSF is a Python API, not a command line; this wrapper is the job step, so the runner
only ever executes argv lists (locally or on Slurm) and PyBDSF's memory and crashes stay
inside the job's limits. It fills in what PyBDSF cannot find by itself (measured):

* ``frequency``: PyBDSF reads only a FREQ axis, ``RESTFREQ`` or ``FREQ``, and fails with
  "No frequency information found" on the standard ``RESTFRQ``; we pass the value found
  by :func:`~caesar_runner.catalogs.image.find_frequency_hz` when the user gave none;
* ``beam``: passed when the user gave one (PyBDSF's error for a missing beam is a
  confusing ``KeyError: 'HISTORY'``; the api refuses such jobs before they run);
* ``outdir``: the job directory, otherwise the log goes next to the input.

Catalogues are written as FITS (``catalog.srl.fits`` sources, ``catalog.gaul.fits``
Gaussians): PyBDSF's CSV has a ``#``-prefixed header. With no source PyBDSF writes
nothing, and neither do we.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from caesar_runner.catalogs.preview import private_matplotlib_config

__all__ = ["build_kwargs", "main"]

SOURCE_LIST: Final = "catalog.srl.fits"
GAUSSIAN_LIST: Final = "catalog.gaul.fits"
RMS_MAP: Final = "rms_map.fits"
MEAN_MAP: Final = "mean_map.fits"
# AF_UNIX paths are limited to 107 bytes; the manager adds "/pymp-XXXXXXXX/listener-XXXXXXXX".
_MAX_TMPDIR_CHARS: Final = 60


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m caesar_runner.catalogs.bdsf_run")
    p.add_argument("image", type=Path)
    p.add_argument("--outdir", type=Path, required=True)
    p.add_argument("--thresh-pix", type=float, default=5.0)
    p.add_argument("--thresh-isl", type=float, default=3.0)
    p.add_argument("--thresh", choices=("auto", "hard", "fdr"), default="auto")
    p.add_argument("--rms-box", type=int, nargs=2, metavar=("BOX", "STEP"))
    p.add_argument("--adaptive-rms-box", action="store_true")
    p.add_argument("--flag-maxsize-bm", type=float, default=200.0)
    p.add_argument("--atrous-do", action="store_true")
    p.add_argument("--group-by-isl", action="store_true")
    p.add_argument("--fix-to-beam", action="store_true")
    p.add_argument("--beam", type=float, nargs=3, metavar=("BMAJ_DEG", "BMIN_DEG", "BPA_DEG"))
    p.add_argument("--frequency", type=float)
    p.add_argument("--ncores", type=int, default=1)
    p.add_argument("--save-rmsmap", action="store_true")
    p.add_argument("--save-bkgmap", action="store_true")
    p.add_argument(
        "--finalize",
        action="store_true",
        help="also write the harmonised catalogues, preview and catalog.json (the service's job step)",
    )
    return p


def build_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``bdsf.process_image`` keyword arguments from the parsed command line."""
    from astropy.io import fits

    from caesar_runner.catalogs.image import find_frequency_hz

    kwargs: dict[str, Any] = {
        "thresh_pix": args.thresh_pix,
        "thresh_isl": args.thresh_isl,
        "flag_maxsize_bm": args.flag_maxsize_bm,
        "adaptive_rms_box": args.adaptive_rms_box,
        "atrous_do": args.atrous_do,
        "group_by_isl": args.group_by_isl,
        "fix_to_beam": args.fix_to_beam,
        "ncores": args.ncores,
        "quiet": True,
        "outdir": str(args.outdir),
    }
    if args.thresh != "auto":
        kwargs["thresh"] = args.thresh
    if args.rms_box:
        kwargs["rms_box"] = tuple(args.rms_box)
    if args.beam:
        kwargs["beam"] = tuple(args.beam)
    frequency = args.frequency
    if frequency is None:
        header = fits.getheader(args.image)
        frequency = find_frequency_hz(header)
    if frequency is not None:
        kwargs["frequency"] = frequency
    return kwargs


@contextmanager
def _short_tempdir() -> Iterator[None]:
    """A short temporary directory for PyBDSF's multiprocessing manager.

    The manager listens on an AF_UNIX socket under the temporary directory, whose path
    must be under 108 bytes; a job's ``TMPDIR`` (inside a deep job directory) is often
    longer, and PyBDSF then dies with ``OSError: AF_UNIX path too long``. A private
    directory under ``/tmp`` (random name, mode 0700, removed on exit) fits.
    """
    if len(tempfile.gettempdir()) < _MAX_TMPDIR_CHARS:
        yield
        return
    saved_env, saved_dir = os.environ.get("TMPDIR"), tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix="bdsf-", dir="/tmp") as short:
        os.environ["TMPDIR"] = short
        tempfile.tempdir = short
        try:
            yield
        finally:
            tempfile.tempdir = saved_dir
            if saved_env is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = saved_env


def main(argv: Sequence[str] | None = None) -> int:
    """Run PyBDSF; write the FITS source and Gaussian lists (and maps when asked)."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    args.outdir.mkdir(parents=True, exist_ok=True)
    kwargs = build_kwargs(args)
    with private_matplotlib_config(), _short_tempdir():  # PyBDSF imports matplotlib
        import bdsf

        img = bdsf.process_image(str(args.image), **kwargs)
    written = 0
    for kind, name in (("srl", SOURCE_LIST), ("gaul", GAUSSIAN_LIST)):
        ok = img.write_catalog(
            outfile=str(args.outdir / name), format="fits", catalog_type=kind, clobber=True
        )
        written += bool(ok)
    if args.save_rmsmap:
        img.export_image(outfile=str(args.outdir / RMS_MAP), img_type="rms", clobber=True)
    if args.save_bkgmap:
        img.export_image(outfile=str(args.outdir / MEAN_MAP), img_type="mean", clobber=True)
    print(f"bdsf_run: {img.nsrc if hasattr(img, 'nsrc') else '?'} sources, {written} catalogues written")
    if args.finalize:
        from caesar_runner.finalize import finalize, report

        print(report(finalize("bdsf", args.outdir, args.image)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
