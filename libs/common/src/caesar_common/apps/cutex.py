"""CuTEx (Curvature Thresholding Extractor): a container-only app of the old service.

CuTEx detects sources as peaks of the image's second derivatives (curvature), which
suppresses smooth diffuse emission, then fits them with 2-D Gaussians.
"""

from __future__ import annotations

from caesar_common.apps.base import ContainerApp, NotGreaterThan, OptionGroup

__all__ = ["CutexApp"]

_COMPACT = OptionGroup("COMPACT-SOURCES")
_FITTING = OptionGroup("COMPACT-SOURCES", "FITTING")
_RUN = OptionGroup("RUN")


class CutexApp(ContainerApp):
    """CuTEx source finder, run from ``sriggi/cutex-job``."""

    name = "cutex"
    version = "latest"  # the image tag
    description = (
        "CuTEx compact source finder: thresholding of the image curvature (second "
        "derivatives) and 2-D Gaussian fitting; container image only."
    )
    container_image = "sriggi/cutex-job:latest"
    command = ("cutex_submitter.sh", "--run", "--save-summaryplot", "--save-catalog-to-json")
    memory_floor_mb = 1024
    memory_base_mb = 512
    memory_per_image_mib = 24
    options = (
        _COMPACT.number("seedthr", 5, 0, 10_000, "Detection threshold on the curvature image, in sigma"),
        _COMPACT.integer("npixmin", 4, 1, 10_000, "Minimum number of pixels above threshold for a detection"),
        _COMPACT.number("npixpsf", 2.7, 1, 10_000, "Number of pixels sampling the instrumental PSF FWHM"),
        _FITTING.number(
            "psflimmin",
            0.5,
            0.0001,
            100,
            "Lower bound of the fitted source size, as a fraction of the initial size estimate",
        ),
        _FITTING.number(
            "psflimmax",
            2.0,
            0.0001,
            100,
            "Upper bound of the fitted source size, as a fraction of the initial size estimate",
        ),
        _RUN.flag("no-logredir", "Do not redirect the logs to a file in the job directory"),
    )
    rules = (NotGreaterThan("psflimmin", "psflimmax", "they bound the same fitted size"),)
