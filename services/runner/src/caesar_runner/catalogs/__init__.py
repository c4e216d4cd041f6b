"""Harmonised catalogues, previews and the built-in finders' process entry points.

Every finder writes its own catalogue format (Aegean VOTable components, PyBDSF FITS
source and Gaussian lists, sfind's FITS table). Clients want one set of columns whatever
finder ran, in the formats their tools open, so this package

* loads an input image the way every finder sees it (:mod:`.image`);
* reads each finder's native output into one astropy :class:`~astropy.table.Table` with
  the same core columns and positions in the IAU ranges (:mod:`.harmonise`, :mod:`.coords`);
* writes that table as the canonical FITS catalogue (:mod:`.writers`; the api derives
  VOTable, CSV, JSON and DS9 regions from it on request);
* draws a preview PNG of the image with the sources (:mod:`.preview`).

The modules :mod:`.sfind` and :mod:`.bdsf_run` are ``python -m`` entry points that jobs
run as plan steps; importing this package does not import Pillow, sep or bdsf.
"""

from caesar_runner.catalogs.harmonise import CORE_COLUMNS, empty_catalog, read_native
from caesar_runner.catalogs.image import ImageData, ImageError, load_image

__all__ = ["CORE_COLUMNS", "ImageData", "ImageError", "empty_catalog", "load_image", "read_native"]
