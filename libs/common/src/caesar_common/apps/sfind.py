"""sfind: the service's built-in quick-look finder (sep), run as one process.

The step is ``<bin_dir>/python -m caesar_runner.catalogs.sfind <input> --outdir <job_dir>
...`` with each validated option as a separate argument; the algorithm and its measured
behaviour are documented in :mod:`caesar_runner.catalogs.sfind`. Beam options (arcsec,
0 = take BMAJ/BMIN/BPA from the header) let it run on images without beam keywords.
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

__all__ = ["SfindApp"]

_DETECT = OptionGroup("COMPACT-SOURCES")
_BKG = OptionGroup("IMGBKG")
_BEAM = OptionGroup("IMGBKG", "BEAM")

# Peak RSS measured for the sep wrapper: 102 MB at 512^2 (1 MiB), 162 MB at 2048^2
# (16 MiB), 380 MB at 4096^2 (64 MiB); the finalize step (preview) needs about 470 MB.
_MEMORY_BASE_MB: Final = 500
_MEMORY_PER_IMAGE_MIB: Final = 6


class SfindApp(App):
    """Quick-look finder on sep: local rms, seed/flood islands, beam-matched fluxes."""

    name = "sfind"
    version = f"sep-{installed_version('sep')}"
    description = (
        "sfind, the built-in fast finder on sep (SExtractor library): local rms map, "
        "seed/flood island detection and beam-matched aperture fluxes; about a second "
        "per image, no Gaussian fitting."
    )
    executors = frozenset({"local", "slurm", "k8s"})
    default_wall_time_s = 600
    beam_options = ("bmaj", "bmin")
    options = (
        _DETECT.number("seedthr", 5, 1, 100, "Seed threshold in sigma: islands must peak above it"),
        _DETECT.number("mergethr", 4, 0.5, 100, "Flood threshold in sigma down to which islands are grown"),
        _DETECT.integer("npixmin", 3, 1, 10_000, "Minimum island area in pixels"),
        _DETECT.integer(
            "deblend-nthresh", 32, 1, 256, "Deblending sub-thresholds (sep deblend_nthresh)", advanced=True
        ),
        _DETECT.number(
            "deblend-cont", 0.005, 0, 1, "Minimum contrast to deblend (1 disables deblending)", advanced=True
        ),
        _DETECT.number(
            "aperture-sigma",
            3,
            1,
            10,
            "Radius of the beam-shaped flux aperture in beam sigmas",
            advanced=True,
        ),
        _BKG.integer("bkgbox", 0, 0, 10_000, "Background/rms box in pixels (0 = max(32, 10 x BMAJ))"),
        *_BEAM.beam(),
    )
    rules = (
        NotGreaterThan("mergethr", "seedthr", "islands grow from seeds down to the flood threshold"),
        BEAM_RULE,
    )

    def plan(self, params: ValidatedParams, ctx: PlanContext) -> list[Step]:
        """One step: the sfind module with the validated options as separate arguments."""
        self._check_params(params)
        v = params.effective
        argv = [
            str(ctx.bin_dir / "python"),
            "-m",
            "caesar_runner.catalogs.sfind",
            str(ctx.input_path),
            "--outdir",
            str(ctx.job_dir),
            "--seed",
            repr(float(v["seedthr"])),
            "--flood",
            repr(float(v["mergethr"])),
            "--min-area",
            str(int(v["npixmin"])),
            "--deblend-nthresh",
            str(int(v["deblend-nthresh"])),
            "--deblend-cont",
            repr(float(v["deblend-cont"])),
            "--aperture-sigma",
            repr(float(v["aperture-sigma"])),
            "--box",
            str(int(v["bkgbox"])),
        ]
        if float(v["bmaj"]) > 0 and float(v["bmin"]) > 0:
            argv += [
                "--beam",
                repr(float(v["bmaj"]) / 3600.0),
                repr(float(v["bmin"]) / 3600.0),
                repr(float(v["bpa"])),
            ]
        # The harmonised catalogue, preview and catalog.json are written by this same
        # process (it holds astropy and the image already): the runner appends no
        # separate finalize step for this app (caesar_runner.finalize.IN_PROCESS).
        argv.append("--finalize")
        return [Step("sfind", tuple(argv), {"OMP_NUM_THREADS": "1"})]

    def resources(self, params: ValidatedParams, image_bytes: int) -> Resources:
        """One core; ``500 + 6 * MiB`` MB (sep plus the preview of the finalize step)."""
        self._check_params(params)
        image_mib = max(image_bytes, 0) / 2**20
        return Resources(cores=1, memory_mb=math.ceil(_MEMORY_BASE_MB + _MEMORY_PER_IMAGE_MIB * image_mib))
