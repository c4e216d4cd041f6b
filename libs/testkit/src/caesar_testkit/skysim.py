"""Simulated radio continuum maps with a truth catalogue.

The tests, the demo and the benchmarks of caesar-rest all need FITS images whose
content is known exactly, so that the output of a source finder (Aegean, PyBDSF,
sep) can be scored.  This module makes such images:

* beam-correlated Gaussian noise whose rms is exactly ``noise_jy`` (a finder's
  rms estimate can therefore be compared with a known number);
* unresolved point sources, i.e. copies of the restoring beam, at sub-pixel
  positions with fluxes drawn from a Euclidean-like ``dN/dS ~ S^-2`` law, so
  that most sources are faint, as in real surveys;
* a celestial SIN WCS and the usual radio-image keywords (``BMAJ``/``BMIN``/
  ``BPA``, ``BUNIT``, ``RESTFRQ``), optionally with degenerate FREQ/STOKES axes,
  NaN-blanked corners or no beam keywords, because those are the header and
  data variants that break finders in production;
* a truth :class:`~astropy.table.Table` and :func:`crossmatch` to score a
  finder's catalogue against it (completeness, reliability, astrometry, flux).

Everything is a pure function of a :class:`SimulationSpec`: the same spec (and
seed) always gives bit-identical data.  Run ``python -m caesar_testkit.skysim
--help`` for the command-line interface.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from astropy import units as u
from astropy.coordinates import SkyCoord, search_around_sky
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from scipy import fft as sp_fft

__all__ = [
    "Beam",
    "CrossMatch",
    "SimulationSpec",
    "blank_map",
    "crossmatch",
    "main",
    "pure_noise_map",
    "simulate_map",
    "write_simulation",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
MapKind = Literal["sources", "noise", "blank"]

#: FWHM -> Gaussian sigma.
FWHM_TO_SIGMA: float = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
#: Default source density: about 150 sources on a 512 x 512 map.
SOURCES_PER_PIXEL: float = 150.0 / 512.0**2
#: Channel width written for the degenerate FREQ axis; any non-zero value gives
#: a valid WCS, 1 MHz is merely plausible.
DEGENERATE_FREQ_WIDTH_HZ: float = 1.0e6
#: Half-width of the stamp used to inject a source, in units of the major-axis
#: sigma.  At 5 sigma the beam is down to 4e-6 of its peak, i.e. below 0.01 of
#: the noise even for the brightest (snr 1000) source.
STAMP_HALF_WIDTH_SIGMA: float = 5.0

TRUTH_COLUMNS: tuple[str, ...] = (
    "id",
    "ra",
    "dec",
    "x",
    "y",
    "peak_flux",
    "int_flux",
    "snr",
)


@dataclass(frozen=True)
class Beam:
    """Elliptical Gaussian restoring beam.

    Parameters
    ----------
    bmaj_arcsec, bmin_arcsec
        Full widths at half maximum of the major and minor axes, in arcsec.
    bpa_deg
        Position angle of the major axis in degrees, measured from north
        through east, which is the convention of the ``BPA`` FITS keyword and of
        every finder's catalogue.  On an image with north up and east to the
        left (``CDELT1 < 0``), a positive angle tilts the major axis towards the
        upper left.
    """

    bmaj_arcsec: float = 9.0
    bmin_arcsec: float = 6.0
    bpa_deg: float = 30.0

    def __post_init__(self) -> None:
        if not (self.bmaj_arcsec > 0 and self.bmin_arcsec > 0):
            raise ValueError("beam axes must be positive")
        if self.bmin_arcsec > self.bmaj_arcsec:
            raise ValueError("bmin_arcsec must not exceed bmaj_arcsec")

    def sigmas_px(self, pixel_arcsec: float) -> tuple[float, float]:
        """Return the (major, minor) Gaussian sigmas in pixels.

        Pixel units are what the injection and the noise filter work in, so the
        conversion lives in one place.
        """
        return (
            self.bmaj_arcsec * FWHM_TO_SIGMA / pixel_arcsec,
            self.bmin_arcsec * FWHM_TO_SIGMA / pixel_arcsec,
        )

    def axes_px(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Return unit vectors ``(dx, dy)`` of the major and minor axes in pixels.

        North is +y and east is -x (RA grows to the left), so a direction at
        position angle ``theta`` east of north is ``(-sin theta, cos theta)``.
        Getting this sign wrong mirrors every beam, which finders that read
        ``BPA`` from the header then fit badly; hence the explicit helper.
        """
        theta = math.radians(self.bpa_deg)
        major = (-math.sin(theta), math.cos(theta))
        minor = (math.cos(theta), math.sin(theta))
        return major, minor

    def profile(self, dx_px: npt.ArrayLike, dy_px: npt.ArrayLike, pixel_arcsec: float) -> FloatArray:
        """Evaluate the unit-peak beam at pixel offsets ``(dx, dy)``.

        The analytic evaluation (rather than rounding a source to the nearest
        pixel) keeps sub-pixel positions exact, so astrometric accuracy of a
        finder can be measured below one pixel.
        """
        sig_a, sig_b = self.sigmas_px(pixel_arcsec)
        (ax, ay), (bx, by) = self.axes_px()
        dx = np.asarray(dx_px, dtype=np.float64)
        dy = np.asarray(dy_px, dtype=np.float64)
        a = (dx * ax + dy * ay) / sig_a
        b = (dx * bx + dy * by) / sig_b
        result: FloatArray = np.exp(-0.5 * (a * a + b * b))
        return result


@dataclass(frozen=True)
class SimulationSpec:
    """Everything that determines a simulated map; the map is a pure function of it.

    Parameters
    ----------
    size
        Side of the square image in pixels.
    pixel_arcsec
        Pixel size in arcsec (both axes).
    beam
        Restoring beam; sources are copies of it and the noise is correlated
        on its scale.
    noise_jy
        rms of the beam-correlated noise in Jy/beam, measured on the final noise
        field (so the map rms really is this value).
    n_sources
        Number of point sources.  ``None`` scales with the image area
        (about 150 at 512^2, 2400 at 2048^2) so that the source density, and
        hence the confusion level, does not depend on the image size.
    snr_min, snr_max
        Peak fluxes are drawn from ``dN/dS ~ S^-2`` between
        ``snr_min * noise_jy`` and ``snr_max * noise_jy``.
    min_separation_beams
        Minimum distance between sources in units of ``bmaj``; it keeps sources
        from blending so that cross-matching with a finder's output is
        unambiguous.
    edge_margin_px
        No source is placed closer than this to the image edge (or to the
        blanked region when ``nan_corners``), because finders treat edge
        sources inconsistently.
    degenerate_axes
        Write a 4-D cube ``(STOKES, FREQ, DEC, RA)`` with length-1 FREQ and
        STOKES axes, as CASA and most imagers do.
    nan_corners
        Blank with NaN everything outside the inscribed circle, like a mosaic.
    with_beam_keywords
        Write ``BMAJ``/``BMIN``/``BPA``; switch off to test finders' handling of
        a missing beam.
    frequency_hz
        ``RESTFRQ`` and, with ``degenerate_axes``, the FREQ axis value.
    ra_deg, dec_deg
        Reference position (image centre) of the SIN projection.
    seed
        Seed of the random generators; noise, positions and fluxes use
        independent streams derived from it.
    """

    size: int = 512
    pixel_arcsec: float = 1.5
    beam: Beam = Beam()
    noise_jy: float = 1e-4
    n_sources: int | None = None
    snr_min: float = 3.0
    snr_max: float = 1000.0
    min_separation_beams: float = 3.0
    edge_margin_px: int = 20
    degenerate_axes: bool = False
    nan_corners: bool = False
    with_beam_keywords: bool = True
    frequency_hz: float = 1.4e9
    ra_deg: float = 266.4
    dec_deg: float = -28.9
    seed: int = 0

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError("size must be at least 8 pixels")
        if not self.pixel_arcsec > 0:
            raise ValueError("pixel_arcsec must be positive")
        if not self.noise_jy > 0:
            raise ValueError("noise_jy must be positive")
        if not 0 < self.snr_min <= self.snr_max:
            raise ValueError("need 0 < snr_min <= snr_max")
        if self.n_sources is not None and self.n_sources < 0:
            raise ValueError("n_sources must be >= 0")
        if self.min_separation_beams < 0:
            raise ValueError("min_separation_beams must be >= 0")
        if self.edge_margin_px < 0 or 2 * self.edge_margin_px >= self.size - 1:
            raise ValueError("edge_margin_px must leave room for sources")
        if not -90.0 <= self.dec_deg <= 90.0:
            raise ValueError("dec_deg must be within [-90, 90]")
        if self.seed < 0:
            raise ValueError("seed must be >= 0")

    @property
    def source_count(self) -> int:
        """Number of sources actually injected (resolves the ``None`` default)."""
        if self.n_sources is not None:
            return self.n_sources
        return round(SOURCES_PER_PIXEL * self.size * self.size)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the FITS data array (numpy order)."""
        if self.degenerate_axes:
            return (1, 1, self.size, self.size)
        return (self.size, self.size)


# --------------------------------------------------------------------------- #
# map construction
# --------------------------------------------------------------------------- #


def _generators(seed: int) -> tuple[np.random.Generator, ...]:
    """Independent generators for noise, positions and fluxes.

    Separate streams mean that e.g. changing ``n_sources`` leaves the noise
    field untouched, so :func:`pure_noise_map` is exactly the noise under the
    sources of :func:`simulate_map` for the same spec.
    """
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))


def _correlated_noise(spec: SimulationSpec, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """White noise filtered in Fourier space so that its autocorrelation is the beam.

    The filter is the analytic transform of a Gaussian with half the beam's
    covariance (sigma / sqrt 2 along each axis); convolving such a kernel with
    itself gives the beam, so the noise autocorrelation has the beam's size,
    shape and orientation, as in a real interferometric image.  The product in
    Fourier space is a periodic convolution: no padding, no edge taper, and the
    field is stationary up to the borders.  The zero-spacing (mean) term is
    removed, as an interferometer does not measure it.  The result is scaled to
    an rms of exactly ``noise_jy``.  Everything runs in float32 / complex64 to
    keep a 4096^2 map within a few hundred MB.
    """
    n = spec.size
    white = rng.standard_normal((n, n), dtype=np.float32)
    spectrum = sp_fft.rfft2(white, workers=1)
    del white
    sig_a, sig_b = spec.beam.sigmas_px(spec.pixel_arcsec)
    (ax, ay), (bx, by) = spec.beam.axes_px()
    ky = np.fft.fftfreq(n).astype(np.float32)[:, np.newaxis]
    kx = np.fft.rfftfreq(n).astype(np.float32)[np.newaxis, :]
    # Fourier transform of exp(-r^T C^-1 r / 2) is exp(-2 pi^2 k^T C k); for C/2
    # the exponent halves.
    ka = (kx * np.float32(ax) + ky * np.float32(ay)) * np.float32(sig_a)
    kb = (kx * np.float32(bx) + ky * np.float32(by)) * np.float32(sig_b)
    transfer = np.exp(np.float32(-(math.pi**2)) * (ka * ka + kb * kb))
    del ka, kb
    transfer[0, 0] = 0.0
    spectrum *= transfer
    del transfer
    noise: npt.NDArray[np.float32] = sp_fft.irfft2(spectrum, s=(n, n), workers=1)
    del spectrum
    noise *= np.float32(spec.noise_jy / _rms(noise))
    return noise


def _rms(data: npt.NDArray[np.float32], rows_per_chunk: int = 256) -> float:
    """Root mean square accumulated in float64, chunk by chunk.

    Chunking avoids a full-size float64 temporary (128 MB at 4096^2) while
    keeping double-precision accumulation.
    """
    total = 0.0
    for start in range(0, data.shape[0], rows_per_chunk):
        chunk = data[start : start + rows_per_chunk].astype(np.float64)
        total += float(np.dot(chunk.ravel(), chunk.ravel()))
    return math.sqrt(total / data.size)


def _place_sources(spec: SimulationSpec, n: int, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Uniform random sub-pixel positions with a minimum separation.

    Rejection sampling ("dart throwing") on a hash grid whose cells are one
    separation wide, so each candidate is checked against the 3x3 neighbouring
    cells only.  Positions keep ``edge_margin_px`` from the border and, with
    ``nan_corners``, from the blanked region, so that every truth source lies on
    valid data.

    Dart throwing is greedy: an early source can leave no room for the later
    ones (two sources 18 px apart in a 23 px box fail whenever the first lands
    near the centre).  A round that runs out of draws therefore starts again
    from an empty map; a spec that no arrangement can satisfy is refused up
    front instead of after every round failed.
    """
    if n == 0:
        return np.empty(0), np.empty(0)
    sep = spec.min_separation_beams * spec.beam.bmaj_arcsec / spec.pixel_arcsec
    lo = float(spec.edge_margin_px)
    hi = float(spec.size - 1 - spec.edge_margin_px)
    capacity = _packing_bound(hi - lo, sep)
    if n > capacity:
        raise ValueError(
            f"{n} sources {sep:.1f} px apart cannot fit in the {hi - lo:.0f} px wide placement "
            f"area of a {spec.size}^2 map (at most {capacity}); lower n_sources or "
            "min_separation_beams, or enlarge the map"
        )
    best = 0
    for _ in range(_PLACEMENT_ROUNDS):
        xs, ys = _place_round(spec, n, sep, rng)
        if len(xs) == n:
            return np.asarray(xs), np.asarray(ys)
        best = max(best, len(xs))
    raise ValueError(
        f"could place only {best} of {n} sources {sep:.1f} px apart on a "
        f"{spec.size}^2 map in {_PLACEMENT_ROUNDS} rounds; lower n_sources or min_separation_beams"
    )


_PLACEMENT_ROUNDS = 64


def _packing_bound(width: float, sep: float) -> int:
    """An upper bound on points at least ``sep`` apart in a ``width`` square.

    Cells of side ``sep / sqrt(2)`` have a diagonal of ``sep``, so no cell can hold two
    such points; the count of cells covering the square bounds the number of points.
    """
    if sep <= 0:
        return sys.maxsize
    per_side = math.floor(width * math.sqrt(2.0) / sep) + 1
    return per_side * per_side


def _place_round(
    spec: SimulationSpec, n: int, sep: float, rng: np.random.Generator
) -> tuple[list[float], list[float]]:
    """One greedy dart-throwing round; returns what it placed (maybe fewer than n)."""
    sep2 = sep * sep
    lo = float(spec.edge_margin_px)
    hi = float(spec.size - 1 - spec.edge_margin_px)
    centre = (spec.size - 1) / 2.0
    r_max2 = (spec.size / 2.0 - spec.edge_margin_px - 0.5) ** 2
    cell = max(sep, 1.0)
    grid: dict[tuple[int, int], list[int]] = {}
    xs: list[float] = []
    ys: list[float] = []
    budget = 200 * n + 10_000
    drawn = 0
    while len(xs) < n and drawn < budget:
        batch = rng.uniform(lo, hi, size=(max(1024, 2 * (n - len(xs))), 2))
        drawn += len(batch)
        for cx, cy in batch.tolist():
            if spec.nan_corners and (cx - centre) ** 2 + (cy - centre) ** 2 > r_max2:
                continue
            gx, gy = int((cx - lo) // cell), int((cy - lo) // cell)
            if any(
                (xs[j] - cx) ** 2 + (ys[j] - cy) ** 2 < sep2
                for ox in (-1, 0, 1)
                for oy in (-1, 0, 1)
                for j in grid.get((gx + ox, gy + oy), ())
            ):
                continue
            grid.setdefault((gx, gy), []).append(len(xs))
            xs.append(cx)
            ys.append(cy)
            if len(xs) == n:
                break
    return xs, ys


def _draw_peak_fluxes(spec: SimulationSpec, n: int, rng: np.random.Generator) -> FloatArray:
    """Peak fluxes (Jy/beam) from ``dN/dS ~ S^-2`` by inverting its CDF.

    ``S^-2`` is the Euclidean integral-count slope flattened to what deep radio
    counts show near the detection limit: most sources are faint, which is what
    stresses completeness, yet bright sources are common enough to test fitting.
    """
    s_min = spec.snr_min * spec.noise_jy
    s_max = spec.snr_max * spec.noise_jy
    uniform = rng.random(n)
    fluxes: FloatArray = 1.0 / (1.0 / s_min - uniform * (1.0 / s_min - 1.0 / s_max))
    return fluxes


def _inject_sources(
    data: npt.NDArray[np.float32],
    spec: SimulationSpec,
    x: FloatArray,
    y: FloatArray,
    peak: FloatArray,
) -> None:
    """Add a beam-shaped point source at each sub-pixel ``(x, y)`` in place.

    Each source is evaluated analytically on a small stamp around its position,
    so the cost is proportional to the number of sources, not to the image area.
    """
    sig_a, _ = spec.beam.sigmas_px(spec.pixel_arcsec)
    half = math.ceil(STAMP_HALF_WIDTH_SIGMA * sig_a)
    ny, nx = data.shape
    for xi, yi, amp in zip(x.tolist(), y.tolist(), peak.tolist(), strict=True):
        ix, iy = round(xi), round(yi)
        x0, x1 = max(ix - half, 0), min(ix + half + 1, nx)
        y0, y1 = max(iy - half, 0), min(iy + half + 1, ny)
        if x0 >= x1 or y0 >= y1:
            continue
        dx = np.arange(x0, x1, dtype=np.float64)[np.newaxis, :] - xi
        dy = np.arange(y0, y1, dtype=np.float64)[:, np.newaxis] - yi
        data[y0:y1, x0:x1] += (amp * spec.beam.profile(dx, dy, spec.pixel_arcsec)).astype(np.float32)


def _blank_corners(data: npt.NDArray[np.float32]) -> None:
    """Set pixels outside the inscribed circle to NaN in place, like a mosaic edge."""
    n = data.shape[0]
    centre = (n - 1) / 2.0
    d2 = np.square(np.arange(n, dtype=np.float32) - np.float32(centre))
    data[d2[:, np.newaxis] + d2[np.newaxis, :] > np.float32((n / 2.0) ** 2)] = np.nan


def _header(spec: SimulationSpec, kind: MapKind, n_sources: int) -> fits.Header:
    """Radio-image header: SIN celestial WCS, beam, units and provenance.

    The keyword set mirrors what CASA / ASKAPsoft write, since finders rely on
    it: ``BUNIT`` for flux scale, ``BMAJ``/``BMIN``/``BPA`` (degrees) for the
    fitting kernel, ``EQUINOX``/``RADESYS`` for the frame.
    """
    deg = spec.pixel_arcsec / 3600.0
    crpix = spec.size // 2 + 1.0  # CASA convention: centre pixel, 1-based
    hdr = fits.Header()
    hdr["BUNIT"] = ("JY/BEAM", "brightness unit")
    hdr["BTYPE"] = "Intensity"
    if spec.with_beam_keywords:
        hdr["BMAJ"] = (spec.beam.bmaj_arcsec / 3600.0, "[deg] beam major axis FWHM")
        hdr["BMIN"] = (spec.beam.bmin_arcsec / 3600.0, "[deg] beam minor axis FWHM")
        hdr["BPA"] = (spec.beam.bpa_deg, "[deg] beam position angle, east of north")
    hdr["EQUINOX"] = 2000.0
    hdr["RADESYS"] = "FK5"
    hdr["CTYPE1"] = "RA---SIN"
    hdr["CRVAL1"] = spec.ra_deg
    hdr["CDELT1"] = -deg
    hdr["CRPIX1"] = crpix
    hdr["CUNIT1"] = "deg"
    hdr["CTYPE2"] = "DEC--SIN"
    hdr["CRVAL2"] = spec.dec_deg
    hdr["CDELT2"] = deg
    hdr["CRPIX2"] = crpix
    hdr["CUNIT2"] = "deg"
    if spec.degenerate_axes:
        hdr["CTYPE3"] = "FREQ"
        hdr["CRVAL3"] = spec.frequency_hz
        hdr["CDELT3"] = DEGENERATE_FREQ_WIDTH_HZ
        hdr["CRPIX3"] = 1.0
        hdr["CUNIT3"] = "Hz"
        hdr["CTYPE4"] = "STOKES"
        hdr["CRVAL4"] = (1.0, "Stokes I")
        hdr["CDELT4"] = 1.0
        hdr["CRPIX4"] = 1.0
        hdr["CUNIT4"] = ""
    hdr["RESTFRQ"] = (spec.frequency_hz, "[Hz]")
    hdr["TELESCOP"] = "SIMULATED"
    hdr["OBJECT"] = f"SKYSIM-{spec.seed}"
    hdr["ORIGIN"] = "caesar_testkit.skysim"
    hdr["SIMKIND"] = (kind, "sources, noise or blank")
    hdr["SIMSEED"] = (spec.seed, "random seed")
    hdr["SIMNOISE"] = (spec.noise_jy, "[Jy/beam] injected noise rms")
    hdr["SIMNSRC"] = (n_sources, "number of injected sources")
    return hdr


def _truth_table(
    spec: SimulationSpec, header: fits.Header, x: FloatArray, y: FloatArray, peak: FloatArray
) -> Table:
    """Truth catalogue; sky positions come from the written header's own WCS.

    Deriving RA/Dec from the final header (rather than from an independent
    formula) guarantees that the truth and the map agree exactly, including for
    the 4-D variant.
    """
    wcs = WCS(header).celestial
    if len(x):
        ra, dec = wcs.wcs_pix2world(x, y, 0)
    else:
        ra, dec = np.empty(0), np.empty(0)
    table = Table(
        {
            "id": np.arange(len(x), dtype=np.int64),
            "ra": np.asarray(ra, dtype=np.float64) % 360.0,
            "dec": np.asarray(dec, dtype=np.float64),
            "x": x.astype(np.float64),
            "y": y.astype(np.float64),
            "peak_flux": peak.astype(np.float64),
            "int_flux": peak.astype(np.float64),
            "snr": peak / spec.noise_jy,
        },
        meta={
            "noise": spec.noise_jy,
            "beam": {
                "bmaj_arcsec": spec.beam.bmaj_arcsec,
                "bmin_arcsec": spec.beam.bmin_arcsec,
                "bpa_deg": spec.beam.bpa_deg,
            },
            "size": spec.size,
            "pixel_arcsec": spec.pixel_arcsec,
            "seed": spec.seed,
        },
    )
    table["ra"].unit = u.deg
    table["dec"].unit = u.deg
    table["x"].unit = u.pix
    table["y"].unit = u.pix
    table["peak_flux"].unit = u.Jy / u.beam
    table["int_flux"].unit = u.Jy
    table["ra"].description = "right ascension (FK5 J2000)"
    table["x"].description = "0-based pixel column (FITS axis 1)"
    table["y"].description = "0-based pixel row (FITS axis 2)"
    table["int_flux"].description = "integrated flux; equals the peak for a point source"
    table["snr"].description = "peak_flux / noise"
    return table


def _assemble(
    spec: SimulationSpec,
    data: npt.NDArray[np.float32],
    kind: MapKind,
    x: FloatArray,
    y: FloatArray,
    peak: FloatArray,
) -> tuple[fits.HDUList, Table]:
    header = _header(spec, kind, len(x))
    hdu = fits.PrimaryHDU(data=data.reshape(spec.shape), header=header)
    return fits.HDUList([hdu]), _truth_table(spec, hdu.header, x, y, peak)


def simulate_map(spec: SimulationSpec) -> tuple[fits.HDUList, Table]:
    """Simulate a map of point sources in beam-correlated noise.

    Parameters
    ----------
    spec
        Simulation parameters; the result is a deterministic function of it.

    Returns
    -------
    hdul
        Single-HDU FITS image, float32, ``BUNIT = 'JY/BEAM'``, shape
        ``(size, size)`` or ``(1, 1, size, size)`` with ``degenerate_axes``.
    truth
        One row per injected source: ``id``, ``ra``, ``dec`` (deg), ``x``, ``y``
        (0-based pixels), ``peak_flux`` (Jy/beam), ``int_flux`` (Jy) and ``snr``
        (``peak_flux / noise``).  ``meta`` holds ``noise``, ``beam``, ``size``,
        ``pixel_arcsec`` and ``seed``.
    """
    rng_noise, rng_pos, rng_flux = _generators(spec.seed)
    data = _correlated_noise(spec, rng_noise)
    n = spec.source_count
    x, y = _place_sources(spec, n, rng_pos)
    peak = _draw_peak_fluxes(spec, n, rng_flux)
    _inject_sources(data, spec, x, y, peak)
    if spec.nan_corners:
        _blank_corners(data)
    return _assemble(spec, data, "sources" if n else "noise", x, y, peak)


def pure_noise_map(spec: SimulationSpec) -> tuple[fits.HDUList, Table]:
    """Noise only: the same noise field as :func:`simulate_map` without the sources.

    Used to measure false-detection rates and rms estimators.  The truth table
    is empty (but has the usual columns), so every detection is spurious.
    """
    return simulate_map(replace(spec, n_sources=0))


def blank_map(spec: SimulationSpec, value: float = math.nan) -> tuple[fits.HDUList, Table]:
    """A map filled with one ``value`` (NaN by default) and an empty truth table.

    Edge case for finders and the job service: an all-NaN or constant image has
    no defined rms and must produce a clean "nothing found" or a clear error,
    never a crash.
    """
    data = np.full((spec.size, spec.size), value, dtype=np.float32)
    empty = np.empty(0)
    return _assemble(spec, data, "blank", empty, empty, empty)


def write_simulation(
    spec: SimulationSpec,
    fits_path: str | Path,
    truth_path: str | Path | None = None,
    kind: MapKind = "sources",
) -> Table:
    """Simulate and write the FITS image and, optionally, the truth catalogue.

    Parameters
    ----------
    spec
        Simulation parameters.
    fits_path
        Output FITS file (overwritten).
    truth_path
        Output truth table; ``.csv`` (plain, portable; loses units and meta) or
        ``.ecsv`` (keeps units and meta).  Other extensions raise ``ValueError``
        before anything is written.
    kind
        ``"sources"`` (:func:`simulate_map`), ``"noise"``
        (:func:`pure_noise_map`) or ``"blank"`` (:func:`blank_map`).

    Returns
    -------
    astropy.table.Table
        The truth table.
    """
    fmt: str | None = None
    if truth_path is not None:
        suffix = Path(truth_path).suffix.lower()
        fmt = {".csv": "ascii.csv", ".ecsv": "ascii.ecsv"}.get(suffix)
        if fmt is None:
            raise ValueError(f"truth table must end in .csv or .ecsv, got {truth_path!s}")
    makers = {"sources": simulate_map, "noise": pure_noise_map, "blank": blank_map}
    if kind not in makers:
        raise ValueError(f"unknown kind {kind!r}")
    hdul, truth = makers[kind](spec)
    hdul.writeto(Path(fits_path), overwrite=True)
    if truth_path is not None:
        truth.write(Path(truth_path), format=fmt, overwrite=True)
    return truth


# --------------------------------------------------------------------------- #
# scoring
# --------------------------------------------------------------------------- #


@dataclass(frozen=True, eq=False)
class CrossMatch:
    """One-to-one match between a truth table and a finder's catalogue.

    Attributes
    ----------
    truth_index, found_index
        Row indices of matched pairs (same length), sorted by truth index.
    separation_arcsec
        Angular distance of each matched pair.
    truth_snr
        ``snr`` of every truth row, used by :meth:`completeness`.
    truth_flux
        The truth flux column chosen in :func:`crossmatch`, for every truth row.
    n_found
        Number of sources in the finder's catalogue.
    radius_arcsec
        Match radius used.
    found_flux
        Finder fluxes, if given to :func:`crossmatch`.
    """

    truth_index: IntArray
    found_index: IntArray
    separation_arcsec: FloatArray
    truth_snr: FloatArray
    truth_flux: FloatArray
    n_found: int
    radius_arcsec: float
    found_flux: FloatArray | None = None

    @property
    def n_truth(self) -> int:
        """Number of truth sources."""
        return len(self.truth_snr)

    @property
    def n_matched(self) -> int:
        """Number of matched pairs."""
        return len(self.truth_index)

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """Matched ``(truth_row, found_row)`` pairs."""
        return list(zip(self.truth_index.tolist(), self.found_index.tolist(), strict=True))

    @property
    def missed(self) -> IntArray:
        """Truth rows without a counterpart (false negatives)."""
        mask = np.ones(self.n_truth, dtype=bool)
        mask[self.truth_index] = False
        return np.flatnonzero(mask).astype(np.int64)

    @property
    def spurious(self) -> IntArray:
        """Found rows without a truth counterpart (false positives)."""
        mask = np.ones(self.n_found, dtype=bool)
        mask[self.found_index] = False
        return np.flatnonzero(mask).astype(np.int64)

    @property
    def reliability(self) -> float:
        """Fraction of found sources matched to a truth source (NaN if none found)."""
        return self.n_matched / self.n_found if self.n_found else math.nan

    @property
    def median_position_error_arcsec(self) -> float:
        """Median angular offset of matched pairs, arcsec (NaN if no match)."""
        return float(np.median(self.separation_arcsec)) if self.n_matched else math.nan

    def completeness(self, snr_min: float = 0.0) -> float:
        """Fraction of truth sources with ``snr >= snr_min`` that have a match.

        Completeness is only meaningful as a function of signal-to-noise (no
        finder recovers 3-sigma sources reliably), hence the threshold.  NaN if
        no truth source passes it.
        """
        selected = self.truth_snr >= snr_min
        total = int(selected.sum())
        if total == 0:
            return math.nan
        return int(selected[self.truth_index].sum()) / total

    def completeness_curve(self, snr_thresholds: npt.ArrayLike) -> FloatArray:
        """:meth:`completeness` for each threshold (for plots and benchmarks)."""
        thresholds = np.atleast_1d(np.asarray(snr_thresholds, dtype=np.float64))
        return np.array([self.completeness(float(t)) for t in thresholds])

    def flux_ratios(self, snr_min: float = 0.0, found_flux: npt.ArrayLike | None = None) -> FloatArray:
        """Found / truth flux of matched pairs whose truth ``snr >= snr_min``.

        ``found_flux`` (one value per found row) overrides the fluxes given to
        :func:`crossmatch`.
        """
        if found_flux is not None:
            flux = np.asarray(found_flux, dtype=np.float64).ravel()
        elif self.found_flux is not None:
            flux = self.found_flux
        else:
            raise ValueError("no found fluxes: pass found_flux here or to crossmatch()")
        if len(flux) != self.n_found:
            raise ValueError(f"found_flux has {len(flux)} values for {self.n_found} sources")
        keep = self.truth_snr[self.truth_index] >= snr_min
        ratios: FloatArray = flux[self.found_index[keep]] / self.truth_flux[self.truth_index[keep]]
        return ratios

    def median_flux_ratio(self, snr_min: float = 0.0, found_flux: npt.ArrayLike | None = None) -> float:
        """Median found / truth flux of matched pairs above ``snr_min`` (NaN if none).

        A threshold is needed because faint sources are biased high by noise
        (Eddington bias), which would hide a genuine flux-scale error.
        """
        ratios = self.flux_ratios(snr_min, found_flux)
        return float(np.median(ratios)) if len(ratios) else math.nan


def _float_column(values: Any) -> FloatArray:
    """Values of a Column / Quantity / sequence as a flat float64 array."""
    if isinstance(values, u.Quantity):
        values = values.value
    return np.asarray(values, dtype=np.float64).ravel()


def crossmatch(
    truth: Table,
    found_ra_deg: npt.ArrayLike,
    found_dec_deg: npt.ArrayLike,
    radius_arcsec: float,
    *,
    found_flux: npt.ArrayLike | None = None,
    flux_column: str = "peak_flux",
) -> CrossMatch:
    """Match a finder's catalogue to the truth, one to one, nearest first.

    All truth/found pairs closer than ``radius_arcsec`` are found with a k-d
    tree on the sphere (:func:`astropy.coordinates.search_around_sky`, so RA
    wrap-around and the poles are handled); they are then accepted greedily in
    order of increasing separation, skipping pairs whose truth or found source is
    already taken.  One-to-one matching matters: otherwise a finder that splits
    one source into two would be rewarded with two matches.

    Parameters
    ----------
    truth
        Truth table with ``ra``, ``dec`` (deg), ``snr`` and ``flux_column``.
    found_ra_deg, found_dec_deg
        Positions of the found sources in degrees.
    radius_arcsec
        Match radius; about one beam FWHM is customary.
    found_flux
        Optional fluxes of the found sources (same units as ``flux_column``) for
        :meth:`CrossMatch.median_flux_ratio`.
    flux_column
        Truth column the found fluxes are compared with (``peak_flux`` or
        ``int_flux``).

    Returns
    -------
    CrossMatch
    """
    if not radius_arcsec > 0:
        raise ValueError("radius_arcsec must be positive")
    f_ra = _float_column(found_ra_deg)
    f_dec = _float_column(found_dec_deg)
    if len(f_ra) != len(f_dec):
        raise ValueError("found_ra_deg and found_dec_deg differ in length")
    flux: FloatArray | None = None
    if found_flux is not None:
        flux = _float_column(found_flux)
        if len(flux) != len(f_ra):
            raise ValueError("found_flux must have one value per found source")
    t_ra = _float_column(truth["ra"])
    t_dec = _float_column(truth["dec"])
    t_snr = _float_column(truth["snr"])
    t_flux = _float_column(truth[flux_column])

    pairs_t: list[int] = []
    pairs_f: list[int] = []
    seps: list[float] = []
    if len(t_ra) and len(f_ra):
        t_coord = SkyCoord(t_ra * u.deg, t_dec * u.deg)
        f_coord = SkyCoord(f_ra * u.deg, f_dec * u.deg)
        idx_t, idx_f, sep2d, _ = search_around_sky(t_coord, f_coord, radius_arcsec * u.arcsec)
        sep_arcsec = np.asarray(sep2d.to_value(u.arcsec), dtype=np.float64)
        order = np.lexsort((idx_f, idx_t, sep_arcsec))  # by separation, ties stable
        taken_t: set[int] = set()
        taken_f: set[int] = set()
        for k in order.tolist():
            it, jf = int(idx_t[k]), int(idx_f[k])
            if it in taken_t or jf in taken_f:
                continue
            taken_t.add(it)
            taken_f.add(jf)
            pairs_t.append(it)
            pairs_f.append(jf)
            seps.append(float(sep_arcsec[k]))
    by_truth = np.argsort(np.asarray(pairs_t, dtype=np.int64), kind="stable")
    return CrossMatch(
        truth_index=np.asarray(pairs_t, dtype=np.int64)[by_truth],
        found_index=np.asarray(pairs_f, dtype=np.int64)[by_truth],
        separation_arcsec=np.asarray(seps, dtype=np.float64)[by_truth],
        truth_snr=t_snr,
        truth_flux=t_flux,
        n_found=len(f_ra),
        radius_arcsec=float(radius_arcsec),
        found_flux=flux,
    )


# --------------------------------------------------------------------------- #
# command line
# --------------------------------------------------------------------------- #


def _parser() -> argparse.ArgumentParser:
    defaults = SimulationSpec()
    p = argparse.ArgumentParser(
        prog="python -m caesar_testkit.skysim",
        description="Write a simulated radio continuum map (FITS) and its truth catalogue.",
    )
    p.add_argument("fits", type=Path, help="output FITS image")
    p.add_argument("--truth", type=Path, help="output truth table (.csv or .ecsv)")
    p.add_argument("--size", type=int, default=defaults.size, help="image side, pixels")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--noise", type=float, default=defaults.noise_jy, help="rms, Jy/beam")
    p.add_argument("--n-sources", type=int, default=None, help="default scales with area")
    p.add_argument("--pixel-arcsec", type=float, default=defaults.pixel_arcsec)
    p.add_argument("--degenerate-axes", action="store_true", help="4-D with FREQ/STOKES")
    p.add_argument("--nan-corners", action="store_true", help="NaN outside inscribed circle")
    p.add_argument("--no-beam", action="store_true", help="omit BMAJ/BMIN/BPA")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--pure-noise", action="store_true", help="noise only, no sources")
    kind.add_argument("--blank", action="store_true", help="all-NaN map")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints a one-line summary and returns 0."""
    args = _parser().parse_args(argv)
    try:
        spec = SimulationSpec(
            size=args.size,
            pixel_arcsec=args.pixel_arcsec,
            noise_jy=args.noise,
            n_sources=args.n_sources,
            degenerate_axes=args.degenerate_axes,
            nan_corners=args.nan_corners,
            with_beam_keywords=not args.no_beam,
            seed=args.seed,
        )
    except ValueError as exc:
        _parser().error(str(exc))
    kind: MapKind = "blank" if args.blank else "noise" if args.pure_noise else "sources"
    start = time.perf_counter()
    truth = write_simulation(spec, args.fits, args.truth, kind=kind)
    elapsed = time.perf_counter() - start
    truth_note = f", truth -> {args.truth}" if args.truth else ""
    print(
        f"{args.fits}: {kind} {'x'.join(map(str, spec.shape))} map, {len(truth)} sources, "
        f"noise {spec.noise_jy:.3g} Jy/beam, seed {spec.seed}{truth_note} ({elapsed:.2f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
