"""Aegean (AegeanTools): the finder this service runs itself, as two processes.

The v1 option names (those of the old ``aegean_submitter.sh``) are kept and mapped onto
the AegeanTools command lines:

1. ``BANE`` measures the background and noise maps. The service always runs it, with an
   explicit grid and box, because Aegean's built-in estimate missed sources in our
   benchmarks (78 vs 90 components on a 512^2 map)::

       BANE --cores N --grid G G --box B B --out <job_dir>/image <input>

   which writes ``image_bkg.fits`` and ``image_rms.fits`` in the job directory (BANE
   writes next to its input by default, and the input directory is not ours).
2. ``aegean`` finds and fits the sources using those maps::

       aegean <input> --background .../image_bkg.fits --noise .../image_rms.fits
              --seedclip S --floodclip M [--maxsummits K] --cores N
              --table .../catalog.vot,.../catalog.csv,.../catalog.reg

   which writes ``catalog_comp.vot``, ``catalog_comp.csv`` and ``catalog_comp.reg``
   (Aegean inserts ``_comp`` before the extension). When nothing is found Aegean exits
   0 and writes **no** table: the runner must treat that as an empty catalogue. The
   step runs this command line through ``python -m caesar_runner.catalogs.aegean_run``
   (AegeanTools' own ``main``, in a process of ours) with ``--finalize`` appended, so
   the harmonised catalogue and preview are made by the same process instead of a
   second one (see that module).

Option mapping: ``bkggrid`` -> ``--grid``, ``bkgbox`` -> ``--box``, ``seedthr`` ->
``--seedclip``, ``mergethr`` -> ``--floodclip``, ``fit-maxcomponents`` ->
``--maxsummits`` (0 means no limit, so the option is left out), ``ncores`` -> ``--cores``
of both tools. ``save-bkgmap``/``save-rmsmap`` decide whether BANE's maps are kept in the
outputs (they are always made); ``no-logredir`` is an accepted no-op (the runner always
captures stdout and stderr to files).

Quirks of the AegeanTools 2.3.5 command lines worth knowing:

* ``--table`` takes one comma-separated argument, so an output path must not contain a
  comma (our job directories never do; :meth:`AegeanApp.plan` checks).
* ``aegean`` prints ``sys.argv`` to stdout before doing anything.
* ``BANE --cores N`` processes at most ``N - 1`` stripes in parallel (it lowers
  ``--stripes`` to ``cores - 1`` "to avoid hanging your system"; ``--cores 1`` still
  gets one stripe), so BANE with 2 cores works on a single stripe. Passing ``--stripes``
  does not help; only the fitting in ``aegean`` scales with ``--cores``.
* Logs go to stderr with ANSI colour codes, which the runner should strip before
  showing them to users.
* Both tools accept ``--config FILE``; we never pass it, so nothing is read from files
  the client could name.
"""

from __future__ import annotations

import math
from typing import Final

from caesar_common.apps.base import (
    BEAM_RULE,
    App,
    NotGreaterThan,
    OptionGroup,
    PlanContext,
    Resources,
    Step,
    ValidatedParams,
    installed_version,
)

__all__ = ["CATALOG_BASENAME", "AegeanApp"]

CATALOG_BASENAME: Final = "catalog"
"""``--table`` base name: the component tables are ``catalog_comp.{vot,csv,reg}``."""
_TABLE_FORMATS: Final = ("vot", "csv", "reg")
_MAP_STEM: Final = "image"

_OUTPUT = OptionGroup("OUTPUT")
_BKG = OptionGroup("IMGBKG")
_COMPACT = OptionGroup("COMPACT-SOURCES")
_FITTING = OptionGroup("COMPACT-SOURCES", "FITTING")
_RUN = OptionGroup("RUN")
_BEAM = OptionGroup("IMGBKG", "BEAM")
_READ = OptionGroup("IMGREAD")

# Peak memory of BANE + aegean measured on float32 maps (source-finders.md): 419 MB at
# 512^2 (1 MiB of pixels), 662 MB at 2048^2 (16 MiB), 1507 MB at 4096^2 (64 MiB), with
# default covariance fitting. 300 MB + 24 MB per MiB of image covers all three with
# 3-20 % headroom; each extra core adds a worker process.
_MEMORY_BASE_MB: Final = 300
_MEMORY_PER_IMAGE_MIB: Final = 24
_MEMORY_PER_EXTRA_CORE_MB: Final = 100
_MEMORY_FLOOR_MB: Final = 512


class AegeanApp(App):
    """Aegean + BANE, run as local processes (or on Slurm or Kubernetes) from the PyPI AegeanTools."""

    name = "aegean"
    version = installed_version("aegeantools")
    description = (
        "Aegean (AegeanTools) compact source finder: BANE background/noise maps, then "
        "flood-fill island detection and 2-D Gaussian fitting of the components."
    )
    executors = frozenset({"local", "slurm", "k8s"})
    default_wall_time_s = 3600
    options = (
        _OUTPUT.flag("save-bkgmap", "Keep the background map (BANE image_bkg.fits) in the outputs"),
        _OUTPUT.flag("save-rmsmap", "Keep the noise map (BANE image_rms.fits) in the outputs"),
        _BKG.integer(
            "bkgbox",
            100,
            5,
            10_000,
            "Box size in pixels over which BANE measures the local background and noise",
        ),
        _BKG.integer(
            "bkggrid", 20, 5, 1000, "Grid step in pixels at which BANE samples the background and noise"
        ),
        _COMPACT.number(
            "seedthr",
            5,
            0,
            10_000,
            "Seed threshold in sigma above the local background: islands must peak above it",
        ),
        _COMPACT.number(
            "mergethr", 2.6, 0, 10_000, "Flood (merge) threshold in sigma down to which islands are grown"
        ),
        _FITTING.integer(
            "fit-maxcomponents",
            3,
            0,
            100,
            "Islands with more summits are only estimated, not fitted (0 = no limit)",
        ),
        _RUN.flag("no-logredir", "Accepted for compatibility; logs are always captured"),
        _RUN.integer("ncores", 1, 1, 100, "CPU cores used by BANE and by the Aegean fit"),
        # AegeanTools options beyond the old service's (not in its describe before).
        *_BEAM.beam(),
        _FITTING.flag(
            "nocov",
            "Ignore the pixel covariance in the fit: 3-4x faster on extended emission, same accuracy",
            advanced=True,
        ),
        _OUTPUT.flag("island", "Also write the island table (integrated flux and size of each island)"),
        _COMPACT.flag("negative", "Also report negative components (an artefact diagnostic)", advanced=True),
        _READ.integer("slice", 0, 0, 100_000, "Plane of a cube to search (0 = the first)", advanced=True),
        _READ.integer(
            "hdu", 0, 0, 1000, "HDU of the FITS file holding the image (0 = primary)", advanced=True
        ),
    )
    rules = (
        NotGreaterThan("mergethr", "seedthr", "islands grow from seeds down to the flood threshold"),
        NotGreaterThan("bkggrid", "bkgbox", "the background grid step cannot exceed the box it samples"),
        BEAM_RULE,
    )
    beam_options = ("bmaj", "bmin")

    def plan(self, params: ValidatedParams, ctx: PlanContext) -> list[Step]:
        """BANE, then aegean; see the module docstring for the command lines.

        Both steps get ``OMP_NUM_THREADS=1`` (with ``--cores`` > 1 the BLAS threads of
        every worker otherwise fight for the same cores: 9.7 s vs 11-20 s on 512^2) and
        ``MPLBACKEND=Agg`` (no display on workers).

        Raises
        ------
        ValueError
            If ``params`` are another app's, or the job directory path contains a
            comma (``--table`` splits on commas).
        """
        self._check_params(params)
        if "," in str(ctx.job_dir):
            raise ValueError(f"aegean cannot write tables under a path with a comma: {ctx.job_dir}")
        values = params.effective
        cores = str(values["ncores"])
        grid = self.option("bkggrid").format_value(values["bkggrid"])
        box = self.option("bkgbox").format_value(values["bkgbox"])
        maps = ctx.job_dir / _MAP_STEM
        env = {"OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}

        bane = (
            str(ctx.bin_dir / "BANE"),
            "--cores",
            cores,
            "--grid",
            grid,
            grid,
            "--box",
            box,
            box,
            "--out",
            str(maps),
            str(ctx.input_path),
        )
        aegean = [
            str(ctx.bin_dir / "python"),
            "-m",
            "caesar_runner.catalogs.aegean_run",
            str(ctx.input_path),
            "--background",
            f"{maps}_bkg.fits",
            "--noise",
            f"{maps}_rms.fits",
            "--seedclip",
            self.option("seedthr").format_value(values["seedthr"]),
            "--floodclip",
            self.option("mergethr").format_value(values["mergethr"]),
        ]
        max_summits = values["fit-maxcomponents"]
        if max_summits:
            aegean += ["--maxsummits", str(max_summits)]
        if float(values["bmaj"]) > 0 and float(values["bmin"]) > 0:
            # Aegean wants degrees; the option is in arcsec like the other finders'.
            beam = (float(values["bmaj"]) / 3600.0, float(values["bmin"]) / 3600.0, float(values["bpa"]))
            aegean += ["--beam", *(repr(v) for v in beam)]
        for flag in ("nocov", "island", "negative"):
            if values[flag]:
                aegean.append(f"--{flag}")
        for plane in ("slice", "hdu"):
            if values[plane]:
                aegean += [f"--{plane}", str(values[plane])]
        aegean += [
            "--cores",
            cores,
            "--table",
            ",".join(str(ctx.job_dir / f"{CATALOG_BASENAME}.{ext}") for ext in _TABLE_FORMATS),
            # Harmonised catalogue, preview and catalog.json by this same process
            # (caesar_runner.finalize.IN_PROCESS: no separate finalize step).
            "--finalize",
        ]
        return [Step("bane", bane, env), Step("aegean", tuple(aegean), env)]

    def resources(self, params: ValidatedParams, image_bytes: int) -> Resources:
        """``ncores`` cores; memory ``max(512, 300 + 24 * MiB + 100 * (ncores - 1))``.

        The linear model is fitted to the peak RSS measured for BANE + aegean on 512^2,
        2048^2 and 4096^2 float32 maps (0.42, 0.66 and 1.5 GB). ``image_bytes`` is the
        file size, which for float32 maps is 4 bytes per pixel; float64 files are
        over-estimated (BANE works in float64 anyway). 512 MiB is the floor a Python
        process with numpy, scipy and astropy needs.
        """
        self._check_params(params)
        cores = int(params.effective["ncores"])
        image_mib = max(image_bytes, 0) / 2**20
        memory = _MEMORY_BASE_MB + _MEMORY_PER_IMAGE_MIB * image_mib + _MEMORY_PER_EXTRA_CORE_MB * (cores - 1)
        return Resources(cores=cores, memory_mb=max(_MEMORY_FLOOR_MB, math.ceil(memory)))

    def discardable_outputs(self, params: ValidatedParams) -> frozenset[str]:
        """BANE's maps unless ``save-bkgmap`` / ``save-rmsmap`` asked for them."""
        self._check_params(params)
        drop = set()
        if not params.effective["save-bkgmap"]:
            drop.add(f"{_MAP_STEM}_bkg.fits")
        if not params.effective["save-rmsmap"]:
            drop.add(f"{_MAP_STEM}_rms.fits")
        return frozenset(drop)
