"""sfind: the fast built-in source finder on ``sep``, run as ``python -m``.

A quick look at an image should take about a second, not the minute a Gaussian fitter
needs at 4096^2. sep (the SExtractor library) does the heavy lifting; this module adds
what makes it behave on radio maps, as measured on our simulated maps:

* a local rms map from ``sep.Background`` with a box of ``max(32, 10 x BMAJ)`` pixels;
* Aegean-style detection: islands grown down to ``flood`` x rms, kept if their peak
  reaches ``seed`` x rms; minimum area 3 pixels and **no** smoothing filter (radio maps
  are already beam-smoothed; a single 5-sigma threshold lost 10 % completeness);
* a beam-matched integrated flux: the sum in a beam-shaped ellipse of radius 3 sigma,
  divided by its enclosed fraction (0.989) and by the beam area in pixels (an isophotal
  sum under-estimates point sources by 25-40 %).

The catalogue is written as ``sfind_catalog.fits`` in the output directory; nothing is
written when no source is found, like Aegean and PyBDSF. Exit status 2 for a bad image.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
from astropy.table import Table

from caesar_runner.catalogs.image import ImageData, ImageError, load_image

__all__ = ["OUTPUT_NAME", "find_sources", "main"]

OUTPUT_NAME: Final = "sfind_catalog.fits"
_FWHM_PER_SIGMA: Final = 2.0 * math.sqrt(2.0 * math.log(2.0))
_APERTURE_FRACTION_3SIGMA: Final = 1.0 - math.exp(-4.5)  # 0.9889 of a Gaussian inside r = 3 sigma


def find_sources(
    image: ImageData,
    *,
    seed: float = 5.0,
    flood: float = 4.0,
    box_px: int = 0,
    min_area_px: int = 3,
    deblend_nthresh: int = 32,
    deblend_cont: float = 0.005,
    aperture_sigma: float = 3.0,
) -> Table:
    """The native sfind catalogue of ``image`` (possibly empty).

    Parameters
    ----------
    image
        The loaded image; it must have a beam (header or override).
    seed, flood
        Peak and island-growth thresholds in units of the local rms.
    box_px
        Background/rms box in pixels; 0 = ``max(32, 10 x BMAJ)``.

    Raises
    ------
    ImageError
        If the image has no beam or no pixel with data.
    """
    import sep

    beam_px = image.beam_px
    if beam_px is None or image.beam_deg is None:
        raise ImageError("no beam: the header lacks BMAJ/BMIN and no beam was given")
    bmaj_px, bmin_px = beam_px
    if image.mask.all():
        raise ImageError("all pixels are blank")
    box = box_px or max(32, math.ceil(10 * bmaj_px))
    box = min(box, max(image.data.shape))
    data, mask = image.data, image.mask
    filled = np.where(mask, np.float32(0), data).astype(np.float32)
    bkg = sep.Background(filled, mask=mask, bw=box, bh=box)
    rms = np.asarray(bkg.rms(), dtype=np.float32)
    sub = (filled - np.asarray(bkg.back(), dtype=np.float32)).astype(np.float32)
    sub[mask] = 0.0
    rms_safe = np.where(rms > 0, rms, np.float32(np.inf)).astype(np.float32)

    sep.set_extract_pixstack(max(300_000, image.data.size // 2))
    sep.set_sub_object_limit(4096)
    objs = sep.extract(
        sub,
        flood,
        err=rms_safe,
        mask=mask,
        minarea=min_area_px,
        filter_kernel=None,
        deblend_nthresh=deblend_nthresh,
        deblend_cont=deblend_cont,
    )
    local_rms = rms_safe[objs["ypeak"], objs["xpeak"]].astype(np.float64)
    keep = objs["peak"] >= seed * local_rms
    objs, local_rms = objs[keep], local_rms[keep]

    # Beam ellipse in pixel axes: PA is east of north; on a north-up, east-left image the
    # major axis points at (90 + PA) degrees counter-clockwise from +x.
    s_maj, s_min = bmaj_px / _FWHM_PER_SIGMA, bmin_px / _FWHM_PER_SIGMA
    # sep wants the angle in [-pi/2, pi/2].
    theta = (math.radians(90.0 + image.beam_deg[2]) + math.pi / 2) % math.pi - math.pi / 2
    beam_area_px = 2.0 * math.pi * s_maj * s_min
    n = len(objs)
    x, y = np.asarray(objs["x"], dtype=np.float64), np.asarray(objs["y"], dtype=np.float64)
    if n:
        total, total_err, flag = sep.sum_ellipse(
            sub,
            x,
            y,
            np.full(n, s_maj),
            np.full(n, s_min),
            np.full(n, theta),
            r=aperture_sigma,
            err=rms_safe,
            mask=mask,
        )
        fraction = 1.0 - math.exp(-(aperture_sigma**2) / 2.0)
        int_flux = total / fraction / beam_area_px
        err_int = total_err / fraction / math.sqrt(beam_area_px)
        ra, dec = image.wcs.pixel_to_world_values(x, y)
    else:
        int_flux = err_int = ra = dec = np.zeros(0)
        flag = np.zeros(0, dtype=np.int16)

    pixel_arcsec = image.pixel_deg * 3600.0
    peak = np.asarray(objs["peak"], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = peak / local_rms
        # Condon (1997)-like position error for a beam-sized source: sigma_beam / SNR * sqrt(2).
        pos_err = math.sqrt(2.0) * math.sqrt(s_maj * s_min) * pixel_arcsec / snr
    # Second moments of the island are truncated at the flood level: scale sep's
    # a/b (sigma-like, pixels) to FWHM; PA back from the pixel angle.
    maj = np.asarray(objs["a"], dtype=np.float64) * _FWHM_PER_SIGMA * pixel_arcsec
    mn = np.asarray(objs["b"], dtype=np.float64) * _FWHM_PER_SIGMA * pixel_arcsec
    pa = (np.degrees(np.asarray(objs["theta"], dtype=np.float64)) - 90.0 + 180.0) % 180.0
    flags = np.asarray(objs["flag"], dtype=np.int32) | np.asarray(flag, dtype=np.int32)
    return Table(
        {
            "x": x,
            "y": y,
            "ra": np.asarray(ra, dtype=np.float64) % 360.0 if n else np.zeros(0),
            "dec": np.asarray(dec, dtype=np.float64),
            "err_ra": pos_err,
            "err_dec": pos_err,
            "peak_flux": peak,
            "err_peak_flux": local_rms,
            "int_flux": np.asarray(int_flux, dtype=np.float64),
            "err_int_flux": np.asarray(err_int, dtype=np.float64),
            "maj": maj,
            "min": mn,
            "pa": pa,
            "local_rms": local_rms,
            "snr": snr,
            "flags": flags,
            "npix": np.asarray(objs["npix"], dtype=np.int64),
            "iso_flux": np.asarray(objs["flux"], dtype=np.float64) / beam_area_px,
        }
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m caesar_runner.catalogs.sfind", description=__doc__)
    parser.add_argument("image", type=Path)
    parser.add_argument("--outdir", type=Path, default=Path("."))
    parser.add_argument("--seed", type=float, default=5.0)
    parser.add_argument("--flood", type=float, default=4.0)
    parser.add_argument("--box", type=int, default=0)
    parser.add_argument("--min-area", type=int, default=3)
    parser.add_argument("--deblend-nthresh", type=int, default=32)
    parser.add_argument("--deblend-cont", type=float, default=0.005)
    parser.add_argument("--aperture-sigma", type=float, default=3.0)
    parser.add_argument("--beam", type=float, nargs=3, metavar=("BMAJ_DEG", "BMIN_DEG", "BPA_DEG"))
    parser.add_argument(
        "--finalize",
        action="store_true",
        help="also write the harmonised catalogue, preview and catalog.json (the service's job step)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run sfind on one image; write ``sfind_catalog.fits`` unless nothing is found."""
    args = _parser().parse_args(argv)
    beam = tuple(args.beam) if args.beam else None
    try:
        image = load_image(args.image, beam_deg=beam)  # type: ignore[arg-type]
        table = find_sources(
            image,
            seed=args.seed,
            flood=args.flood,
            box_px=args.box,
            min_area_px=args.min_area,
            deblend_nthresh=args.deblend_nthresh,
            deblend_cont=args.deblend_cont,
            aperture_sigma=args.aperture_sigma,
        )
    except ImageError as exc:
        print(f"sfind: {exc}", file=sys.stderr)
        return 2
    print(f"sfind: {len(table)} sources")
    if len(table):
        args.outdir.mkdir(parents=True, exist_ok=True)
        table.write(args.outdir / OUTPUT_NAME, format="fits", overwrite=True)
    if args.finalize:
        from caesar_runner.finalize import finalize, report

        args.outdir.mkdir(parents=True, exist_ok=True)
        print(report(finalize("sfind", args.outdir, args.image, image=image)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
