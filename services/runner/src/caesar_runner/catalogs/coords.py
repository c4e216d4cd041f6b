"""Sky positions in their canonical range: ra in [0, 360), dec in [-90, 90].

Finders do not agree on the range of right ascension. PyBDSF reports the RA of a LOFAR
field at 263.59 deg as -96.41 (it evaluates the WCS without wrapping), images that
straddle RA 0 give some finders 359.9 and others -0.1 for neighbouring sources, and a fit
near a pole can step a hair past dec = 90. Clients cross-match our catalogues with
others (TOPCAT, astropy ``SkyCoord``, VizieR queries) that expect the IAU ranges, and a
catalogue whose RA jumps from -0.1 to 359.9 sorts and plots as two fields. So every
harmonised catalogue goes through :func:`normalise_radec` once, in one place.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["normalise_radec"]

FloatArray = npt.NDArray[np.float64]


def normalise_radec(ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """The same sky positions with ``ra`` in [0, 360) and ``dec`` in [-90, 90].

    A declination past a pole (``|dec| > 90``, a fit that overshot) is folded back over
    it, which moves the point to the opposite meridian (``ra + 180``); then the right
    ascension is wrapped. Both are exact for any finite input: ``(-96.41, 52)`` becomes
    ``(263.59, 52)``, ``(370, 95)`` becomes ``(190, 85)``. NaN (a position the finder did
    not compute) and infinities stay undefined (NaN), in both coordinates.

    Pure: the inputs are not modified; the results are new float64 arrays.
    """
    ra = np.array(ra_deg, dtype=np.float64, copy=True, ndmin=1)
    dec = np.array(dec_deg, dtype=np.float64, copy=True, ndmin=1)
    if ra.shape != dec.shape:
        raise ValueError(f"ra and dec differ in shape: {ra.shape} != {dec.shape}")
    bad = ~(np.isfinite(ra) & np.isfinite(dec))
    ra[bad] = np.nan
    dec[bad] = np.nan
    # Declination on the great circle through the poles: its period is 360 deg, and the
    # half beyond a pole is the same latitude seen from the opposite meridian. Values
    # already in range are left bit-for-bit alone (no round trip through dec + 90).
    with np.errstate(invalid="ignore"):
        outside = np.abs(dec) > 90.0
        folded = np.mod(dec + 90.0, 360.0)  # [0, 360): 0 = south pole, 180 = north pole
        over = outside & (folded > 180.0)
        dec = np.where(outside, np.where(over, 360.0 - folded, folded) - 90.0, dec)
        ra = np.mod(np.where(over, ra + 180.0, ra), 360.0)
        # np.mod(-1e-17, 360) rounds to 360.0, outside the half-open range.
        ra = np.where(ra >= 360.0, 0.0, ra)
    return ra, np.clip(dec, -90.0, 90.0)
