"""CAESAR (SKA-INAF/caesar): the old service's main finder, container-only here.

CAESAR needs ROOT, OpenCV, log4cxx and friends and cannot be installed on the service's
machines, so it runs from the ``sriggi/caesar-job`` image through its
``SFinderSubmitter.sh`` script. The 156 options below are the v1 ones, with the v1
types, defaults, ranges, advanced marks and categories; enum values are sent to the
script as the numeric codes it expects (``bkgestimator=Median`` -> ``--bkgestimator=2``).

Besides the ranges, some pairs of options only make sense in one order (a merge
threshold above the seed threshold, a minimum scale above the maximum): those are
cross-field rules, checked on the effective values.
"""

from __future__ import annotations

from caesar_common.apps.base import ContainerApp, NotGreaterThan, OptionGroup, ValidatedParams

__all__ = ["CaesarApp"]

_OUTPUT = OptionGroup("OUTPUT")
_IMGREAD = OptionGroup("IMGREAD")
_IMGSTATS = OptionGroup("IMGSTATS")
_IMGBKG = OptionGroup("IMGBKG")
_COMPACT = OptionGroup("COMPACT-SOURCES")
_SELECTION = OptionGroup("COMPACT-SOURCES", "SELECTION")
_NESTED = OptionGroup("COMPACT-SOURCES", "NESTED-SOURCES")
_FITTING = OptionGroup("COMPACT-SOURCES", "FITTING")
_IMGRES = OptionGroup("IMGRES")
_IMGSMOOTH = OptionGroup("IMGSMOOTH")
_EXTENDED = OptionGroup("EXTENDED-SOURCES")
_SALIENCY = OptionGroup("EXTENDED-SOURCES", "SALIENCY")
_ACTIVE_CONTOUR = OptionGroup("EXTENDED-SOURCES", "ACTIVE-CONTOUR")
_WAVELET = OptionGroup("EXTENDED-SOURCES", "WAVELET-TRANSFORM")
_RUN = OptionGroup("RUN")

_OPTIONS = (
    # -- OUTPUT ------------------------------------------------------------------------
    _OUTPUT.flag("save-fits", "Save the selected output maps as FITS files (else only in the ROOT file)"),
    _OUTPUT.flag("save-inputmap", "Save the input map in the outputs"),
    _OUTPUT.flag("save-bkgmap", "Save the background map in the outputs"),
    _OUTPUT.flag("save-rmsmap", "Save the noise (rms) map in the outputs"),
    _OUTPUT.flag("save-significancemap", "Save the significance map ((image - bkg) / rms) in the outputs"),
    _OUTPUT.flag("save-residualmap", "Save the residual map (compact sources removed) in the outputs"),
    _OUTPUT.flag("save-saliencymap", "Save the saliency map in the outputs"),
    _OUTPUT.flag("save-segmentedmap", "Save the superpixel segmentation map in the outputs"),
    _OUTPUT.flag(
        "convertregionstowcs", "Write DS9 regions in sky (WCS) coordinates instead of pixels", advanced=True
    ),
    _OUTPUT.choice(
        "regionwcs",
        "J2000",
        {"J2000": "0", "B1950": "1", "GALACTIC": "2"},
        "Sky frame of the DS9 regions when converted to WCS",
        advanced=True,
    ),
    # -- IMGREAD -----------------------------------------------------------------------
    _IMGREAD.flag("read-subimg", "Process only the sub-image xmin..xmax, ymin..ymax"),
    _IMGREAD.integer("xmin", 0, -1_000_000, 1_000_000, "Sub-image first column in pixels (with read-subimg)"),
    _IMGREAD.integer("xmax", 0, -1_000_000, 1_000_000, "Sub-image last column in pixels (with read-subimg)"),
    _IMGREAD.integer("ymin", 0, -1_000_000, 1_000_000, "Sub-image first row in pixels (with read-subimg)"),
    _IMGREAD.integer("ymax", 0, -1_000_000, 1_000_000, "Sub-image last row in pixels (with read-subimg)"),
    # -- IMGSTATS ----------------------------------------------------------------------
    _IMGSTATS.flag(
        "no-parallelmedian",
        "Compute image medians serially instead of with the parallel algorithm",
        advanced=True,
    ),
    # -- IMGBKG ------------------------------------------------------------------------
    _IMGBKG.number(
        "bmaj",
        10,
        0,
        3600,
        "Beam major axis FWHM in arcsec, used only if the header has no BMAJ",
        advanced=True,
    ),
    _IMGBKG.number(
        "bmin",
        5,
        0,
        3600,
        "Beam minor axis FWHM in arcsec, used only if the header has no BMIN",
        advanced=True,
    ),
    _IMGBKG.number(
        "bpa", 0, 0, 180, "Beam position angle in deg, used only if the header has no BPA", advanced=True
    ),
    _IMGBKG.number(
        "mappixsize", 1, 0, 3600, "Pixel size in arcsec, used only if the header has no CDELT", advanced=True
    ),
    _IMGBKG.flag("globalbkg", "Use one global background and noise level instead of local maps"),
    _IMGBKG.choice(
        "bkgestimator",
        "Median",
        {"Mean": "1", "Median": "2", "BiWeight": "3", "ClippedMedian": "4"},
        "Estimator of background and noise in each box",
    ),
    _IMGBKG.flag("bkgboxpix", "Give bkgbox in pixels instead of in beams"),
    _IMGBKG.number(
        "bkgbox", 20, 0.01, 1000, "Local background box size, in beams (in pixels with bkgboxpix)"
    ),
    _IMGBKG.number("bkggrid", 0.2, 0, 1, "Background interpolation grid step, as a fraction of the box size"),
    _IMGBKG.flag(
        "no-bkg2ndpass", "Skip the second background pass (with the first-pass sources masked)", advanced=True
    ),
    _IMGBKG.flag(
        "bkgskipoutliers", "Exclude outlier pixels (bright sources) from the local background", advanced=True
    ),
    _IMGBKG.integer(
        "sourcebkgboxborder",
        20,
        0,
        1000,
        "Border in pixels around a source used for its local background",
        advanced=True,
    ),
    # -- COMPACT-SOURCES -------------------------------------------------------------------
    _COMPACT.flag("no-compactsearch", "Disable the compact source search"),
    _COMPACT.integer("npixmin", 5, 0, 10_000, "Minimum number of pixels of a compact source"),
    _COMPACT.number(
        "seedthr", 5, 0, 10_000, "Seed threshold in sigma above the background for flood-fill detection"
    ),
    _COMPACT.number(
        "mergethr", 2.6, 0, 10_000, "Merge threshold in sigma down to which islands grow from their seeds"
    ),
    _COMPACT.integer(
        "compactsearchiters",
        1,
        0,
        100,
        "Number of compact search iterations (the seed threshold is lowered by seedthrstep each time)",
    ),
    _COMPACT.number("seedthrstep", 0.5, 0, 10, "Seed threshold decrement in sigma between iterations"),
    # -- COMPACT-SOURCES / SELECTION -------------------------------------------------------
    _SELECTION.flag("selectsources", "Apply the quality cuts below and tag point-like sources"),
    _SELECTION.flag("no-boundingboxcut", "Disable the minimum bounding box cut"),
    _SELECTION.integer(
        "minboundingbox", 2, 0, 1_000_000, "Minimum bounding box size in pixels of a good source"
    ),
    _SELECTION.flag(
        "no-circratiocut", "Disable the circularity ratio cut for point-like sources", advanced=True
    ),
    _SELECTION.number(
        "circratiothr", 0.4, 0, 1, "Circularity ratio above which a source can be point-like", advanced=True
    ),
    _SELECTION.flag("no-elongationcut", "Disable the elongation cut for point-like sources", advanced=True),
    _SELECTION.number(
        "elongationthr", 0.7, 0, 1, "Elongation below which a source can be point-like", advanced=True
    ),
    _SELECTION.flag(
        "ellipsearearatiocut",
        "Enable the cut on source area / fitted ellipse area for point-like sources",
        advanced=True,
    ),
    _SELECTION.number(
        "ellipsearearatiominthr",
        0.6,
        0,
        10,
        "Minimum source/ellipse area ratio of a point-like source",
        advanced=True,
    ),
    _SELECTION.number(
        "ellipsearearatiomaxthr",
        1.4,
        0,
        10,
        "Maximum source/ellipse area ratio of a point-like source",
        advanced=True,
    ),
    _SELECTION.flag("maxnpixcut", "Enable the maximum number of pixels cut for point-like sources"),
    _SELECTION.integer(
        "maxnpix", 1000, 0, 10_000_000, "Maximum number of pixels of a point-like source (with maxnpixcut)"
    ),
    _SELECTION.flag("no-nbeamscut", "Disable the maximum area in beams cut for point-like sources"),
    _SELECTION.number("nbeamsthr", 3, 0, 1000, "Maximum area in beams of a point-like source"),
    # -- COMPACT-SOURCES / NESTED-SOURCES --------------------------------------------------
    _NESTED.flag("no-nestedsearch", "Disable the search for sources nested in larger ones"),
    _NESTED.choice(
        "blobmaskmethod",
        "MultiScaleLoG",
        {"GausLaplacian": "1", "MultiScaleLoG": "2"},
        "Blob detector for nested sources (Laplacian of Gaussian, single or multi-scale)",
    ),
    _NESTED.number(
        "nested-sourcetobeamthr",
        5,
        0,
        1_000_000,
        "Search nested sources only in sources larger than this many beams",
    ),
    _NESTED.number("nested-blobthr", 0, 0, 100, "Threshold in sigma on the blob mask", advanced=True),
    _NESTED.integer(
        "nested-minmotherdist",
        2,
        0,
        100,
        "Minimum distance in pixels of a nested blob from its mother's centroid",
        advanced=True,
    ),
    _NESTED.number(
        "nested-maxmotherpixmatch",
        0.5,
        0,
        1,
        "Maximum fraction of the mother's pixels a nested source may cover",
        advanced=True,
    ),
    _NESTED.number(
        "nested-blobpeakzthr", 5, 0, 10_000, "Peak significance threshold in sigma of a nested blob"
    ),
    _NESTED.number(
        "nested-blobpeakzthrmerge",
        2.5,
        0,
        10_000,
        "Significance in sigma down to which nested blobs are grown",
    ),
    _NESTED.number("nested-blobminscale", 1, 0, 10_000, "Smallest blob search scale, in beams"),
    _NESTED.number("nested-blobmaxscale", 3, 0, 10_000, "Largest blob search scale, in beams"),
    _NESTED.number("nested-blobscalestep", 1, 0, 10_000, "Step of the blob search scale, in beams"),
    _NESTED.number(
        "nested-blobkernfactor", 1, 0, 1000, "Blob filter kernel size in units of its sigma", advanced=True
    ),
    # -- COMPACT-SOURCES / FITTING ---------------------------------------------------------
    _FITTING.flag("fitsources", "Fit compact sources with a mixture of 2-D Gaussians"),
    _FITTING.flag("fit-usethreads", "Use several threads in the fit minimizer", advanced=True),
    _FITTING.flag(
        "fit-usenestedascomponents",
        "Start the fit from the nested sources instead of the detected peaks",
        advanced=True,
    ),
    _FITTING.flag("fit-freebkg", "Fit the background level too (else it is fixed)"),
    _FITTING.flag("fit-estimatedbkg", "Start the background from the background map"),
    _FITTING.flag("fit-usebkgboxestimate", "Start the background from the source's local box estimate"),
    _FITTING.number(
        "fit-bkg", 0, -1_000_000, 1_000_000, "Background level in Jy/beam used when not estimated"
    ),
    _FITTING.choice(
        "fit-minimizer", "Minuit2", ("Minuit", "Minuit2"), "ROOT minimizer library", advanced=True
    ),
    _FITTING.choice(
        "fit-minimizeralgo",
        "minimize",
        ("migrad", "simplex", "minimize", "scan", "fumili"),
        "Minimizer algorithm",
        advanced=True,
    ),
    _FITTING.integer("fit-printlevel", 0, 0, 3, "Minimizer verbosity", advanced=True),
    _FITTING.integer(
        "fit-strategy", 2, 0, 3, "Minuit strategy (0 = fastest, higher = more accurate)", advanced=True
    ),
    _FITTING.integer("fit-maxnbeams", 20, 0, 100_000, "Fit only sources smaller than this many beams"),
    _FITTING.integer(
        "fit-maxcomponents", 3, 0, 100, "Maximum number of Gaussian components fitted per source"
    ),
    _FITTING.flag("prefit-freeampl", "Leave the amplitudes free in the pre-fit", advanced=True),
    _FITTING.flag("fit-nobkglimits", "Do not bound the fitted background"),
    _FITTING.flag("fit-noampllimits", "Do not bound the fitted amplitudes"),
    _FITTING.number(
        "fit-ampllimit", 0.3, 0, 2, "Allowed amplitude change as a fraction of the starting value"
    ),
    _FITTING.flag("fit-nosigmalimits", "Do not bound the fitted component widths"),
    _FITTING.number("fit-sigmalimit", 0.3, 0, 2, "Allowed width change as a fraction of the beam width"),
    _FITTING.flag("fit-noposlimits", "Do not bound the fitted component positions"),
    _FITTING.integer("fit-poslimit", 3, 0, 1000, "Allowed centroid shift in pixels"),
    _FITTING.flag("prefit-freepos", "Leave the positions free in the pre-fit"),
    _FITTING.flag("fit-nothetalimits", "Do not bound the fitted position angles"),
    _FITTING.number("fit-thetalimit", 90, 0, 360, "Allowed position angle change in deg"),
    _FITTING.flag("fit-fixsigma", "Fix the component widths to the beam in the fit", advanced=True),
    _FITTING.flag("prefit-fixsigma", "Fix the component widths to the beam in the pre-fit", advanced=True),
    _FITTING.flag("fit-fixtheta", "Fix the position angles to the beam's in the fit", advanced=True),
    _FITTING.flag("prefit-fixtheta", "Fix the position angles to the beam's in the pre-fit", advanced=True),
    _FITTING.integer(
        "fit-peakminkern",
        3,
        0,
        100,
        "Smallest dilation kernel in pixels used to find the starting peaks",
        advanced=True,
    ),
    _FITTING.integer(
        "fit-peakmaxkern",
        7,
        0,
        100,
        "Largest dilation kernel in pixels used to find the starting peaks",
        advanced=True,
    ),
    _FITTING.integer(
        "fit-peakmultiplicitythr",
        1,
        -1,
        100,
        "Number of kernels that must find a peak to keep it (-1 = all)",
        advanced=True,
    ),
    _FITTING.integer(
        "fit-peakshifttol",
        2,
        0,
        20,
        "Shift in pixels within which peaks of different kernels are the same",
        advanced=True,
    ),
    _FITTING.number(
        "fit-peakzthrmin", 1, 0, 1000, "Minimum significance in sigma of a peak to start a component"
    ),
    _FITTING.number("fit-fcntol", 0.01, 0, 100, "Minimizer tolerance on the fit function", advanced=True),
    _FITTING.integer(
        "fit-maxniters", 10_000, 0, 1_000_000, "Maximum number of minimizer iterations", advanced=True
    ),
    _FITTING.flag(
        "fit-noimproveconvergence", "Do not retry non-converged fits with wider bounds", advanced=True
    ),
    _FITTING.flag("fit-noretry", "Do not retry failed fits with fewer components", advanced=True),
    _FITTING.integer("fit-nretries", 10, 0, 100_000, "Maximum number of fit retries", advanced=True),
    _FITTING.number(
        "fit-parboundincreasestep",
        0.1,
        0,
        10,
        "Fractional widening of the parameter bounds at each retry",
        advanced=True,
    ),
    _FITTING.flag("fit-improveerrors", "Run HESSE/MINOS to improve the parameter errors", advanced=True),
    _FITTING.flag("fit-scaledatatomax", "Scale the data to its maximum before fitting", advanced=True),
    _FITTING.flag("fit-nochi2cut", "Do not flag fits with a large reduced chi-square"),
    _FITTING.number("fit-chi2cut", 5, 0, 1000, "Reduced chi-square above which a fit is flagged as bad"),
    _FITTING.flag(
        "fit-useellipsecuts", "Flag fitted components with unphysical ellipse parameters", advanced=True
    ),
    # -- IMGRES ------------------------------------------------------------------------
    _IMGRES.flag("computeresiduals", "Compute the residual map (compact sources removed)"),
    _IMGRES.flag("res-removenested", "Also remove nested sources from the residual map"),
    _IMGRES.number(
        "res-zthr",
        5,
        0,
        10_000,
        "Significance in sigma above which pixels of removed-type sources are removed",
    ),
    _IMGRES.number(
        "res-zhighthr", 10, 0, 10_000, "Significance in sigma above which pixels of any source are removed"
    ),
    _IMGRES.integer(
        "dilatekernsize", 9, 1, 1001, "Size in pixels of the dilation kernel that removes sources"
    ),
    _IMGRES.choice(
        "res-removedsourcetype",
        "POINT-LIKE",
        {"ALL": "-1", "COMPACT": "1", "POINT-LIKE": "2", "EXTENDED": "3"},
        "Type of sources removed from the residual map",
    ),
    _IMGRES.choice(
        "res-pssubtractionmethod",
        "DILATION",
        {"DILATION": "1", "FITMODEL": "2"},
        "How point sources are removed (dilation or fitted model subtraction)",
    ),
    _IMGRES.flag(
        "res-bkgaroundsource",
        "Fill removed pixels with the background around the source (else the local background map)",
    ),
    # -- IMGSMOOTH ---------------------------------------------------------------------
    _IMGSMOOTH.flag("no-presmoothing", "Do not smooth the residual map before the extended source search"),
    _IMGSMOOTH.choice(
        "smoothfilter",
        "GUIDED",
        {"GAUSSIAN": "1", "GUIDED": "2"},
        "Smoothing filter applied before the extended source search",
    ),
    _IMGSMOOTH.number("guidedfilter-radius", 12, 0, 1000, "Guided filter radius in pixels"),
    _IMGSMOOTH.number("guidedfilter-eps", 0.04, 0, 1000, "Guided filter regularisation (edge preservation)"),
    # -- EXTENDED-SOURCES --------------------------------------------------------------
    _EXTENDED.flag("no-extendedsearch", "Disable the extended source search"),
    _EXTENDED.choice(
        "extsfinder",
        "SALIENCY-THRESH",
        {"WT-THRESH": "1", "SP-HIERCLUST": "2", "ACTIVE-CONTOUR": "3", "SALIENCY-THRESH": "4"},
        "Extended source algorithm: wavelet thresholding, superpixel "
        "clustering, active contours or saliency thresholding",
    ),
    _EXTENDED.choice(
        "activecontour",
        "CHANVESE",
        {"CHANVESE": "1", "LRAC": "2"},
        "Active contour model (Chan-Vese or localized region-based)",
    ),
    # -- EXTENDED-SOURCES / SALIENCY ---------------------------------------------------
    _SALIENCY.integer("sp-size", 20, 5, 10_000, "Superpixel size in pixels"),
    _SALIENCY.number(
        "sp-beta", 1, 1e-10, 10_000_000_000, "Superpixel regularisation (larger = more compact superpixels)"
    ),
    _SALIENCY.integer("sp-minarea", 10, 1, 10_000, "Minimum superpixel area in pixels"),
    _SALIENCY.flag(
        "saliency-nooptimalthr", "Use saliency-thr instead of the optimal (Otsu) saliency threshold"
    ),
    _SALIENCY.number("saliency-thr", 2.8, 0, 10, "Saliency threshold as a multiple of the median saliency"),
    _SALIENCY.integer("saliency-minreso", 20, 1, 1000, "Finest multi-resolution saliency scale, in pixels"),
    _SALIENCY.integer("saliency-maxreso", 60, 1, 1000, "Coarsest multi-resolution saliency scale, in pixels"),
    _SALIENCY.integer("saliency-resostep", 10, 1, 100, "Step between saliency scales, in pixels"),
    _SALIENCY.number(
        "saliency-nn", 1, 0, 1, "Fraction of nearest neighbours used in the saliency", advanced=True
    ),
    _SALIENCY.flag("saliency-usebkgmap", "Use the background map in the saliency", advanced=True),
    _SALIENCY.flag("saliency-usermsmap", "Use the noise map in the saliency", advanced=True),
    _SALIENCY.flag("saliency-userobustpars", "Use robust statistics (median, MAD) in the saliency"),
    # -- EXTENDED-SOURCES / ACTIVE-CONTOUR ---------------------------------------------
    _ACTIVE_CONTOUR.integer("ac-niters", 1000, 1, 100_000, "Maximum number of active contour iterations"),
    _ACTIVE_CONTOUR.choice(
        "ac-levelset", "CIRCLE", {"CIRCLE": "1", "CHECKERBOARD": "2", "SALIENCY": "3"}, "Initial level set"
    ),
    _ACTIVE_CONTOUR.number(
        "ac-levelsetsize", 0.1, 0, 1, "Initial level set size as a fraction of the image size"
    ),
    _ACTIVE_CONTOUR.number("ac-tolerance", 0.1, 0, 1, "Active contour convergence tolerance"),
    _ACTIVE_CONTOUR.integer("cv-nitersinner", 5, 0, 100_000, "Chan-Vese inner iterations", advanced=True),
    _ACTIVE_CONTOUR.integer(
        "cv-nitersreinit",
        5,
        0,
        100_000,
        "Chan-Vese iterations between level set re-initialisations",
        advanced=True,
    ),
    _ACTIVE_CONTOUR.number("cv-timestep", 0.007, 0, 1000, "Chan-Vese time step"),
    _ACTIVE_CONTOUR.number("cv-wsize", 1, 0, 1000, "Chan-Vese window size"),
    _ACTIVE_CONTOUR.number("cv-lambda1", 1, 0, 100, "Chan-Vese weight of the inside fit term"),
    _ACTIVE_CONTOUR.number("cv-lambda2", 2, 0, 100, "Chan-Vese weight of the outside fit term"),
    _ACTIVE_CONTOUR.number("cv-mu", 0.5, 0, 100, "Chan-Vese contour length penalty"),
    _ACTIVE_CONTOUR.number("cv-nu", 0, 0, 100, "Chan-Vese area penalty"),
    _ACTIVE_CONTOUR.number("cv-p", 1, 0, 100, "Chan-Vese exponent of the length term"),
    # -- EXTENDED-SOURCES / WAVELET-TRANSFORM ------------------------------------------
    _WAVELET.integer("wtscalemin", 3, 1, 10, "Smallest wavelet scale used for extended sources"),
    _WAVELET.integer("wtscalemax", 6, 1, 10, "Largest wavelet scale used for extended sources"),
    # -- RUN ---------------------------------------------------------------------------
    _RUN.choice("loglevel", "INFO", ("INFO", "DEBUG", "WARN", "ERROR", "OFF"), "Log level"),
    _RUN.flag("no-logredir", "Do not redirect the logs to a file in the job directory"),
    _RUN.flag("no-mpi", "Run without MPI"),
    _RUN.integer("nproc", 1, 1, 1000, "Number of MPI processes per node"),
    _RUN.integer("nthreads", 1, -1, 1000, "OpenMP threads per process (-1 = all cores)"),
    _RUN.flag("tilesplit", "Split the image into tiles processed in parallel"),
    _RUN.integer("tilesize", 0, 0, 10_000_000, "Tile size in pixels (0 = whole image)"),
    _RUN.number(
        "tilestep", 1, 0.001, 1, "Tile step as a fraction of the tile size (< 1 = overlapping tiles)"
    ),
    _RUN.flag("mergeedgesources", "Merge sources cut by tile edges"),
    _RUN.flag("no-mergesources", "Do not merge overlapping sources from different tiles"),
)


class CaesarApp(ContainerApp):
    """CAESAR source finder, run from ``sriggi/caesar-job`` via ``SFinderSubmitter.sh``."""

    name = "caesar"
    version = "latest"  # the image tag: the tool's version is whatever the image holds
    description = (
        "CAESAR (Compact And Extended Source Automated Recognition): background and "
        "noise maps, compact and nested source detection with Gaussian fitting, and "
        "extended source segmentation (saliency, wavelets, active contours); container "
        "image only."
    )
    container_image = "sriggi/caesar-job:latest"
    command = (
        "SFinderSubmitter.sh",
        "--run",
        "--save-summaryplot",
        "--save-regions",
        "--save-catalog-to-json",
    )
    # ROOT + OpenCV: a large baseline; images are copied a few times (maps, residuals).
    default_wall_time_s = 4 * 3600
    memory_floor_mb = 2048
    memory_base_mb = 1536
    memory_per_image_mib = 40
    options = _OPTIONS
    rules = (
        NotGreaterThan("mergethr", "seedthr", "islands grow from seeds down to the merge threshold"),
        NotGreaterThan(
            "nested-blobpeakzthrmerge",
            "nested-blobpeakzthr",
            "nested blobs grow from peaks down to the merge threshold",
        ),
        NotGreaterThan("nested-blobminscale", "nested-blobmaxscale", "they bound the range of blob scales"),
        NotGreaterThan(
            "ellipsearearatiominthr", "ellipsearearatiomaxthr", "they bound the accepted area ratios"
        ),
        NotGreaterThan("fit-peakminkern", "fit-peakmaxkern", "they bound the kernel sizes"),
        NotGreaterThan("res-zthr", "res-zhighthr", "the high threshold must be the higher one"),
        NotGreaterThan("saliency-minreso", "saliency-maxreso", "they bound the saliency scales"),
        NotGreaterThan("wtscalemin", "wtscalemax", "they bound the wavelet scales"),
    )

    def cores(self, params: ValidatedParams) -> int:
        """``nproc`` MPI processes (one with ``no-mpi``) times ``nthreads`` threads.

        ``nthreads = -1`` ("all cores") cannot be known before placement; it counts as
        one thread here, so the scheduler may under-reserve such jobs.
        """
        self._check_params(params)
        nproc = 1 if params.effective["no-mpi"] else int(params.effective["nproc"])
        nthreads = int(params.effective["nthreads"])
        return nproc * max(nthreads, 1)
