"""PyBDSF: the Gaussian-decomposition finder, run as one ``python -m`` step.

The step is ``<bin_dir>/python -m caesar_runner.catalogs.bdsf_run <input> --outdir
<job_dir> ...`` with each validated option as separate arguments (PyBDSF has no command
line of its own worth using; see :mod:`caesar_runner.catalogs.bdsf_run` for what the
wrapper fills in). Defaults follow PyBDSF's, except ``flag-maxsize-bm`` = 200: with
PyBDSF's 25, Gaussians of extended sources (50-65" with a 9" beam) are flagged and
silently vanish from the source list; with 200 they come back with 2-5 % flux error.
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

__all__ = ["BdsfApp"]

_OUTPUT = OptionGroup("OUTPUT")
_BKG = OptionGroup("IMGBKG")
_BEAM = OptionGroup("IMGBKG", "BEAM")
_DETECT = OptionGroup("COMPACT-SOURCES")
_FIT = OptionGroup("COMPACT-SOURCES", "FITTING")
_RUN = OptionGroup("RUN")

# Peak RSS measured for process_image + catalogues: 219 MB at 512^2 (1 MiB), 470 MB at
# 2048^2 (16 MiB), 1271 MB at 4096^2 (64 MiB): 300 + 17 MB/MiB covers them; the floor
# also covers the finalize step's preview (about 470 MB).
_MEMORY_BASE_MB: Final = 300
_MEMORY_PER_IMAGE_MIB: Final = 17
_MEMORY_PER_EXTRA_CORE_MB: Final = 150
_MEMORY_FLOOR_MB: Final = 600


class BdsfApp(App):
    """PyBDSF (Python Blob Detector and Source Finder) from the PyPI wheel."""

    name = "bdsf"
    version = installed_version("bdsf")
    description = (
        "PyBDSF: island detection on a local rms map, multi-Gaussian decomposition of "
        "islands, grouping of Gaussians into sources (source list and Gaussian list)."
    )
    executors = frozenset({"local", "slurm", "k8s"})
    default_wall_time_s = 3600
    beam_options = ("bmaj", "bmin")
    options = (
        _OUTPUT.flag("save-rmsmap", "Keep PyBDSF's rms map (rms_map.fits) in the outputs"),
        _OUTPUT.flag("save-bkgmap", "Keep PyBDSF's background mean map (mean_map.fits) in the outputs"),
        _DETECT.number("thresh-pix", 5, 1, 100, "Island peak threshold in sigma (PyBDSF thresh_pix)"),
        _DETECT.number("thresh-isl", 3, 0.5, 100, "Island boundary threshold in sigma (PyBDSF thresh_isl)"),
        _DETECT.choice(
            "thresh",
            "auto",
            ("auto", "hard", "fdr"),
            "Threshold mode: auto (PyBDSF decides), hard (thresh-pix) or fdr (false detection rate)",
            advanced=True,
        ),
        _BKG.integer("rms-box", 0, 0, 5000, "rms/mean box size in pixels (0 = PyBDSF chooses)"),
        _BKG.integer("rms-box-step", 0, 0, 5000, "rms/mean box step in pixels (0 = box / 3)"),
        _BKG.flag("adaptive-rms-box", "Use a smaller rms box near bright sources (artefact suppression)"),
        *_BEAM.beam(),
        _BEAM.number(
            "frequency", 0, 0, 1e13, "Observing frequency in Hz (0 = from the FREQ axis, RESTFRQ or RESTFREQ)"
        ),
        _FIT.number(
            "flag-maxsize-bm",
            200,
            1,
            10_000,
            "Gaussians larger than this many beam areas are flagged "
            "(PyBDSF default 25 drops extended sources)",
        ),
        _FIT.flag("atrous-do", "Decompose residuals with the a-trous wavelet transform (diffuse emission)"),
        _FIT.flag("group-by-isl", "Group all Gaussians of an island into one source"),
        _FIT.flag("fix-to-beam", "Fix the Gaussians' shapes to the beam"),
        _RUN.integer("ncores", 1, 1, 64, "CPU cores used by PyBDSF"),
    )
    rules = (
        NotGreaterThan("thresh-isl", "thresh-pix", "islands are grown from peaks down to the boundary"),
        BEAM_RULE,
    )

    def plan(self, params: ValidatedParams, ctx: PlanContext) -> list[Step]:
        """One step: the PyBDSF wrapper module with the validated options."""
        self._check_params(params)
        v = params.effective
        argv = [
            str(ctx.bin_dir / "python"),
            "-m",
            "caesar_runner.catalogs.bdsf_run",
            str(ctx.input_path),
            "--outdir",
            str(ctx.job_dir),
            "--thresh-pix",
            repr(float(v["thresh-pix"])),
            "--thresh-isl",
            repr(float(v["thresh-isl"])),
            "--thresh",
            str(v["thresh"]),
            "--flag-maxsize-bm",
            repr(float(v["flag-maxsize-bm"])),
            "--ncores",
            str(int(v["ncores"])),
        ]
        box = int(v["rms-box"])
        if box > 0:
            step = int(v["rms-box-step"]) or max(1, box // 3)
            argv += ["--rms-box", str(box), str(min(step, box))]
        for flag in (
            "adaptive-rms-box",
            "atrous-do",
            "group-by-isl",
            "fix-to-beam",
            "save-rmsmap",
            "save-bkgmap",
        ):
            if v[flag] is True:
                argv.append(f"--{flag}")
        if float(v["bmaj"]) > 0 and float(v["bmin"]) > 0:
            argv += [
                "--beam",
                repr(float(v["bmaj"]) / 3600.0),
                repr(float(v["bmin"]) / 3600.0),
                repr(float(v["bpa"])),
            ]
        if float(v["frequency"]) > 0:
            argv += ["--frequency", repr(float(v["frequency"]))]
        # The harmonised catalogue, preview and catalog.json are written by this same
        # process (it holds astropy and the image already): the runner appends no
        # separate finalize step for this app (caesar_runner.finalize.IN_PROCESS).
        argv.append("--finalize")
        env = {"OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
        return [Step("bdsf", tuple(argv), env)]

    def resources(self, params: ValidatedParams, image_bytes: int) -> Resources:
        """``ncores`` cores; ``max(600, 300 + 17 * MiB + 150 * (ncores - 1))`` MB."""
        self._check_params(params)
        cores = int(params.effective["ncores"])
        image_mib = max(image_bytes, 0) / 2**20
        memory = _MEMORY_BASE_MB + _MEMORY_PER_IMAGE_MIB * image_mib + _MEMORY_PER_EXTRA_CORE_MB * (cores - 1)
        return Resources(cores=cores, memory_mb=max(_MEMORY_FLOOR_MB, math.ceil(memory)))
