"""Refuse at submit what a finder would choke on, from the facts stored at upload.

A job that can only fail wastes a slot and gives the user a cryptic log (PyBDSF's
``KeyError: 'HISTORY'`` for a missing beam, Aegean's ``Cannot determine beam
information``), so the api says what is wrong before anything is queued. Only the
header facts and the cheap pixel summary recorded at upload are used; files uploaded
before those facts existed are not checked for what they lack.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from caesar_common.apps.base import App, ValidatedParams

__all__ = ["FITS_FINDERS", "input_problem"]

FITS_FINDERS: Final = frozenset({"aegean", "bdsf", "sfind"})
"""Apps that run here on FITS images with a celestial WCS and a beam."""


def _beam_given(app: App, params: ValidatedParams) -> bool:
    names = getattr(app, "beam_options", ())
    values = [params.effective.get(name) for name in names]
    return bool(names) and all(isinstance(v, int | float) and v > 0 for v in values)


def input_problem(app: App, params: ValidatedParams, ext: str, facts: Mapping[str, Any] | None) -> str | None:
    """Why ``app`` cannot run on this file with these ``params`` (a 400 message), or ``None``."""
    if app.name not in FITS_FINDERS:
        return None
    if ext != "fits" or facts is None:
        return f"App {app.name} needs a FITS image (got a .{ext} file)"
    if facts.get("celestial") is None:
        return f"App {app.name} needs an image with a celestial WCS (RA/Dec axes); the file has none"
    pixels = facts.get("pixels")
    if isinstance(pixels, Mapping):
        if pixels.get("all_blank"):
            return "The image is all blank (every pixel is NaN): there is nothing to search"
        if pixels.get("constant"):
            return f"The image is constant (every pixel is {pixels.get('min')}): there is nothing to search"
    if facts.get("beam") is None and not _beam_given(app, params):
        names = getattr(app, "beam_options", ())
        if names:
            fix = f"give the beam with the options {', '.join(names)} (arcsec) and bpa (deg)"
        else:
            fix = f"{app.name} has no beam option; use bdsf or sfind with bmaj/bmin"
        return f"The image has no beam: the header lacks the keywords BMAJ, BMIN (and BPA); {fix}"
    return None
