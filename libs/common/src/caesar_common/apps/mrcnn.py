"""Mask R-CNN radio source detector: a container-only app of the old service.

Its two options had no category in the v1 describe (the v1 contract's example is kept
verbatim), and no default command-line arguments besides the run mode and the weights.
"""

from __future__ import annotations

from typing import Final

from caesar_common.apps.base import ContainerApp, OptionGroup

__all__ = ["MrcnnApp"]

WEIGHTS_PATH: Final = "/opt/Software/MaskR-CNN/install/share/mrcnn_weights.h5"
"""Where the weights live inside the image (the old ``--mrcnn_weights`` default)."""

_DETECT = OptionGroup()


class MrcnnApp(ContainerApp):
    """Mask R-CNN object detector for radio maps, run from ``sriggi/mrcnn-detect``."""

    name = "mrcnn"
    version = "latest"  # the image tag: the detector's version is whatever the image holds
    description = (
        "Mask R-CNN deep-learning detector of radio sources (compact, extended, "
        "imaging artefacts) on image cutouts; container image only."
    )
    container_image = "sriggi/mrcnn-detect:latest"
    command = ("run_mrcnn.sh", "--runmode=detect", f"--weights={WEIGHTS_PATH}")
    input_option = "--image"
    # A TensorFlow model in memory: a few GB whatever the cutout size.
    memory_floor_mb = 4096
    memory_base_mb = 3072
    memory_per_image_mib = 16
    options = (
        _DETECT.number("scoreThr", 0.7, 0, 1, "Detected object score threshold to select as final object"),
        _DETECT.number(
            "iouThr",
            0.6,
            0,
            1,
            "Intersection-over-union threshold above which overlapping detections are merged into one object",
        ),
    )
