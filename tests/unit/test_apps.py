"""Unit tests of the app registry (caesar_common.apps).

The option tables are checked against an independent transcription of the v1 option
list, validation against every kind of bad input, the JSON Schema against the validator
(property test), and the Aegean plan by really running BANE and aegean on a small
simulated radio map.
"""

from __future__ import annotations

import csv
import math
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from caesar_common.apps import (
    APPS,
    NON_OPTION_INPUTS,
    App,
    ParameterError,
    PlanContext,
    Resources,
    Step,
    ValidatedParams,
    app_names,
    get_app,
)
from caesar_common.apps.aegean import AegeanApp

AEGEAN = APPS["aegean"]
CAESAR = APPS["caesar"]
MRCNN = APPS["mrcnn"]
CUTEX = APPS["cutex"]

# ---------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------


def test_registry_lists_the_v1_apps_in_order() -> None:
    assert app_names()[:4] == ["caesar", "mrcnn", "aegean", "cutex"]  # the v1 apps first
    assert app_names()[4:6] == ["bdsf", "sfind"]
    assert list(APPS) == app_names()
    for name in app_names():
        app = get_app(name)
        assert isinstance(app, App)
        assert app.name == name
    assert get_app("nope") is None
    with pytest.raises(TypeError):
        APPS["x"] = AEGEAN  # type: ignore[index]


def test_app_metadata() -> None:
    assert AEGEAN.executors == frozenset({"local", "slurm", "k8s"})
    assert AEGEAN.default_wall_time_s == 3600
    assert AEGEAN.version == "2.3.5"  # the aegeantools installed in the venv
    assert AEGEAN.container_image is None
    images = {
        "caesar": "sriggi/caesar-job:latest",
        "mrcnn": "sriggi/mrcnn-detect:latest",
        "cutex": "sriggi/cutex-job:latest",
    }
    for name, image in images.items():
        app = APPS[name]
        assert app.executors == frozenset({"k8s"})
        assert app.container_image == image
        assert app.default_wall_time_s > 0
    for app in APPS.values():
        assert app.description
        assert app.version


# ---------------------------------------------------------------------------------------
# v1 describe
# ---------------------------------------------------------------------------------------

DESCRIBE_KEYS = (
    "description",
    "mandatory",
    "type",
    "default",
    "min",
    "max",
    "enum",
    "allowed_values",
    "category",
    "subcategory",
    "advanced",
)


def test_mrcnn_describe_matches_the_v1_example_verbatim() -> None:
    describe = MRCNN.describe_v1()
    assert list(describe) == ["scoreThr", "iouThr"]
    assert describe["scoreThr"] == {
        "description": "Detected object score threshold to select as final object (default=0.7)",
        "mandatory": False,
        "type": "float",
        "default": 0.7,
        "min": 0,
        "max": 1,
    }
    assert describe["iouThr"]["default"] == 0.6
    assert describe["iouThr"]["description"].endswith("(default=0.6)")


@pytest.mark.parametrize("app", list(APPS.values()), ids=list(APPS))
def test_describe_shape(app: App) -> None:
    describe = app.describe_v1()
    assert describe, "every app has options"
    for name, entry in describe.items():
        assert set(entry) <= set(DESCRIBE_KEYS), name
        assert list(entry) == [k for k in DESCRIBE_KEYS if k in entry], f"key order of {name}"
        assert isinstance(entry["description"], str)
        assert entry["description"].strip()
        assert entry["mandatory"] is False  # no v1 option is mandatory
        kind = entry["type"]
        assert kind in {"int", "float", "str", "none"}
        if kind == "none":
            assert entry["default"] is False
            assert not {"min", "max", "enum", "allowed_values"} & set(entry)
        elif kind == "str":
            assert entry["enum"] is True
            assert entry["default"] in entry["allowed_values"]
            assert entry["description"].endswith(f"(default={entry['default']})")
        else:
            assert not {"enum", "allowed_values"} & set(entry)
            assert entry["min"] <= entry["default"] <= entry["max"]
            assert entry["description"].endswith(f"(default={entry['default']})")
            if kind == "int":
                assert type(entry["default"]) is int
        if "advanced" in entry:
            assert entry["advanced"] in (0, 1)
    # A fresh document each time: callers may modify it.
    describe["x"] = {}
    assert "x" not in app.describe_v1()


V1_AEGEAN = [
    "save-bkgmap",
    "save-rmsmap",
    "bkgbox",
    "bkggrid",
    "seedthr",
    "mergethr",
    "fit-maxcomponents",
    "no-logredir",
    "ncores",
]
AEGEANTOOLS_EXTRAS = ["bmaj", "bmin", "bpa", "nocov", "island", "negative", "slice", "hdu"]


def test_aegean_describe() -> None:
    describe = AEGEAN.describe_v1()
    # The old service's options first, unchanged; then the AegeanTools options we add.
    assert list(describe) == V1_AEGEAN + AEGEANTOOLS_EXTRAS
    extras = {name: describe.pop(name) for name in AEGEANTOOLS_EXTRAS}
    assert extras["bmaj"]["type"] == "float"
    assert extras["nocov"]["type"] == "none"
    assert extras["slice"]["type"] == "int"
    got = {name: (e["type"], e.get("default"), e.get("min"), e.get("max")) for name, e in describe.items()}
    assert got == {
        "save-bkgmap": ("none", False, None, None),
        "save-rmsmap": ("none", False, None, None),
        "no-logredir": ("none", False, None, None),
        "bkgbox": ("int", 100, 5, 10000),
        "bkggrid": ("int", 20, 5, 1000),
        "seedthr": ("float", 5, 0, 10000),
        "mergethr": ("float", 2.6, 0, 10000),
        "fit-maxcomponents": ("int", 3, 0, 100),
        "ncores": ("int", 1, 1, 100),
    }
    assert describe["save-bkgmap"]["category"] == "OUTPUT"
    assert describe["no-logredir"]["category"] == "RUN"
    assert describe["fit-maxcomponents"]["subcategory"] == "FITTING"
    assert all(e["advanced"] == 0 for e in describe.values())


def test_cutex_describe() -> None:
    got = {
        name: (e["type"], e.get("default"), e.get("min"), e.get("max"))
        for name, e in CUTEX.describe_v1().items()
    }
    assert got == {
        "seedthr": ("float", 5, 0, 10000),
        "npixmin": ("int", 4, 1, 10000),
        "npixpsf": ("float", 2.7, 1, 10000),
        "psflimmin": ("float", 0.5, 0.0001, 100),
        "psflimmax": ("float", 2.0, 0.0001, 100),
        "no-logredir": ("none", False, None, None),
    }


# An independent transcription of the caesar list in apps-v1-options.md:
# "CATEGORY[/SUB] | flags a b* ..." or "| n1 [n2 ...] int|float default min max"
# or "| name enum default V1,V2,... [code1,code2,...]" (no codes: the value is passed as
# is). A trailing * marks an advanced option.
CAESAR_V1 = """
OUTPUT | flags save-fits save-inputmap save-bkgmap save-rmsmap save-significancemap
OUTPUT | flags save-residualmap save-saliencymap save-segmentedmap convertregionstowcs*
OUTPUT | regionwcs* enum J2000 J2000,B1950,GALACTIC 0,1,2
IMGREAD | flags read-subimg
IMGREAD | xmin xmax ymin ymax int 0 -1e6 1e6
IMGSTATS | flags no-parallelmedian*
IMGBKG | bmaj* float 10 0 3600
IMGBKG | bmin* float 5 0 3600
IMGBKG | bpa* float 0 0 180
IMGBKG | mappixsize* float 1 0 3600
IMGBKG | flags globalbkg bkgboxpix no-bkg2ndpass* bkgskipoutliers*
IMGBKG | bkgestimator enum Median Mean,Median,BiWeight,ClippedMedian 1,2,3,4
IMGBKG | bkgbox float 20 0.01 1000
IMGBKG | bkggrid float 0.2 0 1
IMGBKG | sourcebkgboxborder* int 20 0 1000
COMPACT-SOURCES | flags no-compactsearch
COMPACT-SOURCES | npixmin int 5 0 10000
COMPACT-SOURCES | seedthr float 5 0 10000
COMPACT-SOURCES | mergethr float 2.6 0 10000
COMPACT-SOURCES | compactsearchiters int 1 0 100
COMPACT-SOURCES | seedthrstep float 0.5 0 10
COMPACT-SOURCES/SELECTION | flags selectsources no-boundingboxcut no-circratiocut*
COMPACT-SOURCES/SELECTION | flags no-elongationcut* ellipsearearatiocut* maxnpixcut no-nbeamscut
COMPACT-SOURCES/SELECTION | minboundingbox int 2 0 1e6
COMPACT-SOURCES/SELECTION | circratiothr* float 0.4 0 1
COMPACT-SOURCES/SELECTION | elongationthr* float 0.7 0 1
COMPACT-SOURCES/SELECTION | ellipsearearatiominthr* float 0.6 0 10
COMPACT-SOURCES/SELECTION | ellipsearearatiomaxthr* float 1.4 0 10
COMPACT-SOURCES/SELECTION | maxnpix int 1000 0 1e7
COMPACT-SOURCES/SELECTION | nbeamsthr float 3 0 1000
COMPACT-SOURCES/NESTED-SOURCES | flags no-nestedsearch
COMPACT-SOURCES/NESTED-SOURCES | blobmaskmethod enum MultiScaleLoG GausLaplacian,MultiScaleLoG 1,2
COMPACT-SOURCES/NESTED-SOURCES | nested-sourcetobeamthr float 5 0 1e6
COMPACT-SOURCES/NESTED-SOURCES | nested-blobthr* float 0 0 100
COMPACT-SOURCES/NESTED-SOURCES | nested-minmotherdist* int 2 0 100
COMPACT-SOURCES/NESTED-SOURCES | nested-maxmotherpixmatch* float 0.5 0 1
COMPACT-SOURCES/NESTED-SOURCES | nested-blobpeakzthr float 5 0 1e4
COMPACT-SOURCES/NESTED-SOURCES | nested-blobpeakzthrmerge float 2.5 0 1e4
COMPACT-SOURCES/NESTED-SOURCES | nested-blobminscale float 1 0 1e4
COMPACT-SOURCES/NESTED-SOURCES | nested-blobmaxscale float 3 0 1e4
COMPACT-SOURCES/NESTED-SOURCES | nested-blobscalestep float 1 0 1e4
COMPACT-SOURCES/NESTED-SOURCES | nested-blobkernfactor* float 1 0 1000
COMPACT-SOURCES/FITTING | flags fitsources fit-usethreads* fit-usenestedascomponents*
COMPACT-SOURCES/FITTING | flags fit-freebkg fit-estimatedbkg fit-usebkgboxestimate
COMPACT-SOURCES/FITTING | flags prefit-freeampl* fit-nobkglimits fit-noampllimits
COMPACT-SOURCES/FITTING | flags fit-nosigmalimits fit-noposlimits prefit-freepos fit-nothetalimits
COMPACT-SOURCES/FITTING | flags fit-fixsigma* prefit-fixsigma* fit-fixtheta* prefit-fixtheta*
COMPACT-SOURCES/FITTING | flags fit-noimproveconvergence* fit-noretry* fit-improveerrors*
COMPACT-SOURCES/FITTING | flags fit-scaledatatomax* fit-nochi2cut fit-useellipsecuts*
COMPACT-SOURCES/FITTING | fit-minimizer* enum Minuit2 Minuit,Minuit2
COMPACT-SOURCES/FITTING | fit-minimizeralgo* enum minimize migrad,simplex,minimize,scan,fumili
COMPACT-SOURCES/FITTING | fit-printlevel* int 0 0 3
COMPACT-SOURCES/FITTING | fit-strategy* int 2 0 3
COMPACT-SOURCES/FITTING | fit-maxnbeams int 20 0 1e5
COMPACT-SOURCES/FITTING | fit-maxcomponents int 3 0 100
COMPACT-SOURCES/FITTING | fit-bkg float 0 -1e6 1e6
COMPACT-SOURCES/FITTING | fit-ampllimit float 0.3 0 2
COMPACT-SOURCES/FITTING | fit-sigmalimit float 0.3 0 2
COMPACT-SOURCES/FITTING | fit-thetalimit float 90 0 360
COMPACT-SOURCES/FITTING | fit-poslimit int 3 0 1000
COMPACT-SOURCES/FITTING | fit-peakminkern* int 3 0 100
COMPACT-SOURCES/FITTING | fit-peakmaxkern* int 7 0 100
COMPACT-SOURCES/FITTING | fit-peakmultiplicitythr* int 1 -1 100
COMPACT-SOURCES/FITTING | fit-peakshifttol* int 2 0 20
COMPACT-SOURCES/FITTING | fit-peakzthrmin float 1 0 1000
COMPACT-SOURCES/FITTING | fit-fcntol* float 0.01 0 100
COMPACT-SOURCES/FITTING | fit-maxniters* int 10000 0 1e6
COMPACT-SOURCES/FITTING | fit-nretries* int 10 0 1e5
COMPACT-SOURCES/FITTING | fit-parboundincreasestep* float 0.1 0 10
COMPACT-SOURCES/FITTING | fit-chi2cut float 5 0 1000
IMGRES | flags computeresiduals res-removenested res-bkgaroundsource
IMGRES | res-zthr float 5 0 1e4
IMGRES | res-zhighthr float 10 0 1e4
IMGRES | dilatekernsize int 9 1 1001
IMGRES | res-removedsourcetype enum POINT-LIKE ALL,COMPACT,POINT-LIKE,EXTENDED -1,1,2,3
IMGRES | res-pssubtractionmethod enum DILATION DILATION,FITMODEL 1,2
IMGSMOOTH | flags no-presmoothing
IMGSMOOTH | smoothfilter enum GUIDED GAUSSIAN,GUIDED 1,2
IMGSMOOTH | guidedfilter-radius float 12 0 1000
IMGSMOOTH | guidedfilter-eps float 0.04 0 1000
EXTENDED-SOURCES | flags no-extendedsearch
EXTENDED-SOURCES | extsfinder enum SALIENCY-THRESH \
WT-THRESH,SP-HIERCLUST,ACTIVE-CONTOUR,SALIENCY-THRESH 1,2,3,4
EXTENDED-SOURCES | activecontour enum CHANVESE CHANVESE,LRAC 1,2
EXTENDED-SOURCES/SALIENCY | sp-size int 20 5 1e4
EXTENDED-SOURCES/SALIENCY | sp-beta float 1 1e-10 1e10
EXTENDED-SOURCES/SALIENCY | sp-minarea int 10 1 1e4
EXTENDED-SOURCES/SALIENCY | flags saliency-nooptimalthr
EXTENDED-SOURCES/SALIENCY | saliency-thr float 2.8 0 10
EXTENDED-SOURCES/SALIENCY | saliency-minreso int 20 1 1000
EXTENDED-SOURCES/SALIENCY | saliency-maxreso int 60 1 1000
EXTENDED-SOURCES/SALIENCY | saliency-resostep int 10 1 100
EXTENDED-SOURCES/SALIENCY | saliency-nn* float 1 0 1
EXTENDED-SOURCES/SALIENCY | flags saliency-usebkgmap* saliency-usermsmap* saliency-userobustpars
EXTENDED-SOURCES/ACTIVE-CONTOUR | ac-niters int 1000 1 1e5
EXTENDED-SOURCES/ACTIVE-CONTOUR | ac-levelset enum CIRCLE CIRCLE,CHECKERBOARD,SALIENCY 1,2,3
EXTENDED-SOURCES/ACTIVE-CONTOUR | ac-levelsetsize ac-tolerance float 0.1 0 1
EXTENDED-SOURCES/ACTIVE-CONTOUR | cv-nitersinner* cv-nitersreinit* int 5 0 1e5
EXTENDED-SOURCES/ACTIVE-CONTOUR | cv-timestep float 0.007 0 1000
EXTENDED-SOURCES/ACTIVE-CONTOUR | cv-wsize float 1 0 1000
EXTENDED-SOURCES/ACTIVE-CONTOUR | cv-lambda1 float 1 0 100
EXTENDED-SOURCES/ACTIVE-CONTOUR | cv-lambda2 float 2 0 100
EXTENDED-SOURCES/ACTIVE-CONTOUR | cv-mu float 0.5 0 100
EXTENDED-SOURCES/ACTIVE-CONTOUR | cv-nu float 0 0 100
EXTENDED-SOURCES/ACTIVE-CONTOUR | cv-p float 1 0 100
EXTENDED-SOURCES/WAVELET-TRANSFORM | wtscalemin int 3 1 10
EXTENDED-SOURCES/WAVELET-TRANSFORM | wtscalemax int 6 1 10
RUN | loglevel enum INFO INFO,DEBUG,WARN,ERROR,OFF
RUN | flags no-logredir no-mpi tilesplit mergeedgesources no-mergesources
RUN | nproc int 1 1 1000
RUN | nthreads int 1 -1 1000
RUN | tilesize int 0 0 1e7
RUN | tilestep float 1 0.001 1
"""


def _caesar_v1_table() -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for line in CAESAR_V1.strip().splitlines():
        where, spec = (part.strip() for part in line.split("|"))
        category, _, subcategory = where.partition("/")
        base = {"category": category, "subcategory": subcategory or None}
        tokens = spec.split()
        entries: list[tuple[str, dict[str, Any]]] = []
        if tokens[0] == "flags":
            entries = [(name, {"type": "none", "default": False}) for name in tokens[1:]]
        elif tokens[1] == "enum":
            values = tokens[3].split(",")
            codes = dict(zip(values, tokens[4].split(",") if len(tokens) > 4 else values, strict=True))
            entries = [(tokens[0], {"type": "str", "default": tokens[2], "codes": codes})]
        else:
            kind_at = next(i for i, t in enumerate(tokens) if t in {"int", "float"})
            default, low, high = (float(t) for t in tokens[kind_at + 1 :])
            entries = [
                (name, {"type": tokens[kind_at], "default": default, "min": low, "max": high})
                for name in tokens[:kind_at]
            ]
        for raw_name, entry in entries:
            name = raw_name.rstrip("*")
            assert name not in table, name
            table[name] = {**base, **entry, "advanced": int(raw_name.endswith("*"))}
    return table


def test_caesar_option_counts() -> None:
    describe = CAESAR.describe_v1()
    assert len(describe) == 156
    assert Counter(e["type"] for e in describe.values()) == {"none": 61, "float": 48, "int": 35, "str": 12}
    assert not any(e["mandatory"] for e in describe.values())


def test_caesar_options_match_the_v1_list() -> None:
    expected = _caesar_v1_table()
    describe = CAESAR.describe_v1()
    assert set(describe) == set(expected)
    for name, want in expected.items():
        got = describe[name]
        assert got["type"] == want["type"], name
        assert got["default"] == want["default"], name
        assert got.get("min") == want.get("min"), name
        assert got.get("max") == want.get("max"), name
        assert got["advanced"] == want["advanced"], name
        assert got["category"] == want["category"], name
        assert got.get("subcategory") == want["subcategory"], name
        if want["type"] == "str":
            assert got["allowed_values"] == list(want["codes"]), name
            for value, code in want["codes"].items():
                params = CAESAR.validate({name: value})
                assert CAESAR.v1_argv(params) == [f"--{name}={code}"], name


def test_caesar_categories() -> None:
    pairs = {(e["category"], e.get("subcategory")) for e in CAESAR.describe_v1().values()}
    assert pairs == {
        ("OUTPUT", None),
        ("IMGREAD", None),
        ("IMGSTATS", None),
        ("IMGBKG", None),
        ("COMPACT-SOURCES", None),
        ("COMPACT-SOURCES", "SELECTION"),
        ("COMPACT-SOURCES", "NESTED-SOURCES"),
        ("COMPACT-SOURCES", "FITTING"),
        ("IMGRES", None),
        ("IMGSMOOTH", None),
        ("EXTENDED-SOURCES", None),
        ("EXTENDED-SOURCES", "SALIENCY"),
        ("EXTENDED-SOURCES", "ACTIVE-CONTOUR"),
        ("EXTENDED-SOURCES", "WAVELET-TRANSFORM"),
        ("RUN", None),
    }


# ---------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------

INVALID_AEGEAN: list[tuple[dict[str, Any], str]] = [
    ({"seedthr": "5"}, "Option 'seedthr' must be a number"),
    ({"seedthr": True}, "Option 'seedthr' must be a number"),
    ({"seedthr": None}, "Option 'seedthr' must be a number"),
    ({"seedthr": [5]}, "Option 'seedthr' must be a number"),
    ({"seedthr": float("nan")}, "Option 'seedthr' must be a finite number"),
    ({"seedthr": float("inf")}, "Option 'seedthr' must be a finite number"),
    ({"mergethr": float("-inf")}, "Option 'mergethr' must be a finite number"),
    ({"seedthr": 20000}, "Option 'seedthr' must be <= 10000 (got 20000)"),
    ({"seedthr": 10000.5}, "Option 'seedthr' must be <= 10000 (got 10000.5)"),
    # Huge values are cut short in messages.
    ({"seedthr": 10**400}, "Option 'seedthr' must be <= 10000 (got 1" + "0" * 36 + "...)"),
    ({"seedthr": -0.5}, "Option 'seedthr' must be >= 0 (got -0.5)"),
    ({"ncores": True}, "Option 'ncores' must be an integer"),
    ({"ncores": False}, "Option 'ncores' must be an integer"),
    ({"ncores": "2"}, "Option 'ncores' must be an integer"),
    ({"ncores": 2.5}, "Option 'ncores' must be an integer"),
    ({"ncores": None}, "Option 'ncores' must be an integer"),
    ({"ncores": float("nan")}, "Option 'ncores' must be an integer"),
    ({"ncores": 0}, "Option 'ncores' must be >= 1 (got 0)"),
    ({"ncores": 101}, "Option 'ncores' must be <= 100 (got 101)"),
    ({"ncores": 101.0}, "Option 'ncores' must be <= 100 (got 101)"),
    ({"bkgbox": 4}, "Option 'bkgbox' must be >= 5 (got 4)"),
    ({"bkggrid": 1001, "bkgbox": 10000}, "Option 'bkggrid' must be <= 1000 (got 1001)"),
    ({"fit-maxcomponents": -1}, "Option 'fit-maxcomponents' must be >= 0 (got -1)"),
    ({"save-bkgmap": 1}, "Option 'save-bkgmap' must be true or false"),
    ({"save-bkgmap": "true"}, "Option 'save-bkgmap' must be true or false"),
    ({"no-logredir": None}, "Option 'no-logredir' must be true or false"),
    ({"foo": 1, "seedthr": 5, "bar": 2}, "Unknown option(s): foo, bar"),
    ({"fit_maxcomponents": 3}, "Unknown option(s): fit_maxcomponents"),
    ({"SeedThr": 3}, "Unknown option(s): SeedThr"),
    ({"inputfile": "x"}, "Unknown option(s): inputfile"),
]


@pytest.mark.parametrize(
    ("options", "message"), INVALID_AEGEAN, ids=[str(i) for i in range(len(INVALID_AEGEAN))]
)
def test_aegean_rejects(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ParameterError) as caught:
        AEGEAN.validate(options)
    assert caught.value.errors == [message]
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"mergethr": 6},
            "Option 'mergethr' must be <= option 'seedthr': islands grow from "
            "seeds down to the flood threshold (got mergethr=6, seedthr=5 (default))",
        ),
        (
            {"seedthr": 2},
            "Option 'mergethr' must be <= option 'seedthr': islands grow from "
            "seeds down to the flood threshold (got mergethr=2.6 (default), seedthr=2)",
        ),
        (
            {"seedthr": 3, "mergethr": 3.5},
            "Option 'mergethr' must be <= option 'seedthr': islands grow from seeds down to the "
            "flood threshold (got mergethr=3.5, seedthr=3)",
        ),
        (
            {"bkgbox": 10},
            "Option 'bkggrid' must be <= option 'bkgbox': the background grid step "
            "cannot exceed the box it samples (got bkggrid=20 (default), bkgbox=10)",
        ),
        (
            {"bkggrid": 200},
            "Option 'bkggrid' must be <= option 'bkgbox': the background grid step "
            "cannot exceed the box it samples (got bkggrid=200, bkgbox=100 (default))",
        ),
    ],
)
def test_aegean_cross_field_rules(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ParameterError) as caught:
        AEGEAN.validate(options)
    assert caught.value.errors == [message]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"seedthr": 5, "mergethr": 5},
        {"bkgbox": 50, "bkggrid": 50},
        {"seedthr": 0, "mergethr": 0},
        {"seedthr": 10000},
        {"bkgbox": 5, "bkggrid": 5},
        {"bkgbox": 10000, "bkggrid": 1000},
        {"fit-maxcomponents": 0},
        {"fit-maxcomponents": 100},
        {"ncores": 1},
        {"ncores": 100},
        {"save-bkgmap": True, "save-rmsmap": False, "no-logredir": True},
    ],
)
def test_aegean_accepts_boundaries(options: dict[str, Any]) -> None:
    params = AEGEAN.validate(options)
    assert set(params.given) == set(options)


def test_all_errors_are_collected_in_option_order() -> None:
    bad = {
        "zzz": 1,
        "ncores": 0,
        "seedthr": "high",
        "save-rmsmap": "yes",
        "aaa": 2,
        "bkgbox": 5.5,
        "mergethr": float("nan"),
        "fit-maxcomponents": 1000,
    }
    with pytest.raises(ParameterError) as caught:
        AEGEAN.validate(bad)
    assert caught.value.errors == [
        "Unknown option(s): zzz, aaa",
        "Option 'save-rmsmap' must be true or false",
        "Option 'bkgbox' must be an integer",
        "Option 'seedthr' must be a number",
        "Option 'mergethr' must be a finite number",
        "Option 'fit-maxcomponents' must be <= 100 (got 1000)",
        "Option 'ncores' must be >= 1 (got 0)",
    ]
    assert str(caught.value) == "; ".join(caught.value.errors)
    assert isinstance(caught.value, ValueError)


def test_cross_field_errors_are_reported_with_the_others() -> None:
    with pytest.raises(ParameterError) as caught:
        AEGEAN.validate({"mergethr": 7, "ncores": -3, "bkgbox": 6})
    assert [e.split(" must")[0] for e in caught.value.errors] == [
        "Option 'ncores'",
        "Option 'mergethr'",
        "Option 'bkggrid'",
    ]


def test_cross_field_rule_skipped_when_an_operand_is_invalid() -> None:
    with pytest.raises(ParameterError) as caught:
        AEGEAN.validate({"seedthr": "low"})
    assert caught.value.errors == ["Option 'seedthr' must be a number"]


@pytest.mark.parametrize("options", [[], "seedthr=5", None, 5, {1: 2}])
def test_options_must_be_an_object_with_string_keys(options: Any) -> None:
    with pytest.raises(ParameterError) as caught:
        AEGEAN.validate(options)
    assert caught.value.errors[0].startswith(("Options must be", "Option names must"))


def test_caesar_enum_errors() -> None:
    with pytest.raises(ParameterError) as caught:
        CAESAR.validate(
            {
                "bkgestimator": "median",
                "extsfinder": 4,
                "regionwcs": None,
                "loglevel": "; rm -rf /",
                "seedthr": 20000,
            }
        )
    assert caught.value.errors == [
        "Option 'regionwcs' must be one of J2000, B1950, GALACTIC",
        "Option 'bkgestimator' must be one of Mean, Median, BiWeight, ClippedMedian",
        "Option 'seedthr' must be <= 10000 (got 20000)",
        "Option 'extsfinder' must be one of WT-THRESH, SP-HIERCLUST, ACTIVE-CONTOUR, SALIENCY-THRESH",
        "Option 'loglevel' must be one of INFO, DEBUG, WARN, ERROR, OFF",
    ]


def test_caesar_cross_field_rules() -> None:
    with pytest.raises(ParameterError) as caught:
        CAESAR.validate({"wtscalemin": 7, "saliency-maxreso": 10, "mergethr": 5.5})
    assert [e.split(":")[0] for e in caught.value.errors] == [
        "Option 'mergethr' must be <= option 'seedthr'",
        "Option 'saliency-minreso' must be <= option 'saliency-maxreso'",
        "Option 'wtscalemin' must be <= option 'wtscalemax'",
    ]


def test_v1_caesar_job_inputs_example() -> None:
    """The v1 contract's caesar example, once the api removed the non-option keys."""
    job_inputs = {
        "inputfile": "/opt/caesar-rest/data/67a49bf7555b41739095681bf52a1f99.fits",
        "run": True,
        "no-logredir": True,
        "envfile": "/home/user/setvars.sh",
        "no-mpi": True,
        "no-nestedsearch": True,
        "no-extendedsearch": True,
    }
    options = {k: v for k, v in job_inputs.items() if k not in NON_OPTION_INPUTS}
    params = CAESAR.validate(options)
    assert params.given == {
        "no-nestedsearch": True,
        "no-extendedsearch": True,
        "no-logredir": True,
        "no-mpi": True,
    }


def test_normalization_given_and_effective() -> None:
    params = AEGEAN.validate({"ncores": 2.0, "seedthr": 6, "save-rmsmap": True, "mergethr": 3})
    assert isinstance(params, ValidatedParams)
    assert params.app == "aegean"
    # In table order, typed: 6 -> 6.0 (float option), 2.0 -> 2 (int option).
    assert list(params.given.items()) == [
        ("save-rmsmap", True),
        ("seedthr", 6.0),
        ("mergethr", 3.0),
        ("ncores", 2),
    ]
    assert type(params.given["seedthr"]) is float
    assert type(params.given["ncores"]) is int
    assert params.effective == {
        "save-bkgmap": False,
        "save-rmsmap": True,
        "bkgbox": 100,
        "bkggrid": 20,
        "seedthr": 6.0,
        "mergethr": 3.0,
        "fit-maxcomponents": 3,
        "no-logredir": False,
        "ncores": 2,
        "bmaj": 0.0,
        "bmin": 0.0,
        "bpa": 0.0,
        "nocov": False,
        "island": False,
        "negative": False,
        "slice": 0,
        "hdu": 0,
    }
    assert all(type(params.effective[k]) is float for k in ("seedthr", "mergethr"))
    # Validating the stored (given) options again gives the same params: that is how
    # the runner rebuilds them from a job record.
    assert AEGEAN.validate(params.given) == params


def test_defaults_are_typed() -> None:
    params = CAESAR.validate({})
    assert params.given == {}
    assert len(params.effective) == 156
    for name, value in params.effective.items():
        kind = CAESAR.describe_v1()[name]["type"]
        expected = {"int": int, "float": float, "str": str, "none": bool}[kind]
        assert type(value) is expected, name


# ---------------------------------------------------------------------------------------
# JSON Schema
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("app", list(APPS.values()), ids=list(APPS))
def test_json_schema_is_valid_2020_12(app: App) -> None:
    schema = app.json_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert list(schema["properties"]) == list(app.describe_v1())
    assert "required" not in schema
    describe = app.describe_v1()
    json_type = {"int": "integer", "float": "number", "none": "boolean", "str": "string"}
    for name, prop in schema["properties"].items():
        entry = describe[name]
        assert prop["type"] == json_type[entry["type"]], name
        assert prop["default"] == entry["default"], name
        assert prop.get("minimum") == entry.get("min"), name
        assert prop.get("maximum") == entry.get("max"), name
        assert prop.get("enum") == entry.get("allowed_values"), name
        assert prop["description"] == entry["description"], name
        assert prop.get("x-category") == entry.get("category"), name
    validator = Draft202012Validator(schema)
    assert validator.is_valid({})
    assert not validator.is_valid({"no-such-option": 1})
    # A copy each time.
    schema["properties"].clear()
    assert app.json_schema()["properties"]


def test_json_schema_agrees_with_validate_on_the_examples() -> None:
    validator = Draft202012Validator(AEGEAN.json_schema())
    for options, _ in INVALID_AEGEAN:
        if any(isinstance(v, float) and not math.isfinite(v) for v in options.values()):
            continue  # not JSON: Python's json would write NaN, which no JSON parser reads
        assert not validator.is_valid(options), options
    assert validator.is_valid({"ncores": 2.0, "seedthr": 6, "save-rmsmap": True})
    assert "mergethr <= seedthr" in AEGEAN.json_schema()["description"]


def _outcome(app: App, options: dict[str, Any]) -> ValidatedParams | list[str]:
    """The params, or the error messages if ``validate`` refuses the options."""
    try:
        return app.validate(options)
    except ParameterError as exc:
        return exc.errors


def _json_values() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.booleans(),
        st.none(),
        st.integers(min_value=-20, max_value=12_000),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.floats(min_value=-5, max_value=12_000, allow_nan=False),
        st.integers(min_value=-5, max_value=12_000).map(float),
        st.text(max_size=5),
        st.sampled_from(["5", "true", "; rm -rf /", ""]),
        st.lists(st.integers(), max_size=2),
    )


_AEGEAN_KEYS = st.sampled_from([*AEGEAN.describe_v1(), "foo", "fit_maxcomponents", "run"])


@settings(max_examples=400, deadline=None)
@given(options=st.dictionaries(_AEGEAN_KEYS, _json_values(), max_size=6))
def test_validate_accepts_iff_json_schema_accepts(options: dict[str, Any]) -> None:
    schema_ok = Draft202012Validator(AEGEAN.json_schema()).is_valid(options)
    outcome = _outcome(AEGEAN, options)
    if isinstance(outcome, ValidatedParams):
        assert schema_ok, options
        assert set(outcome.given) == set(options)
    elif schema_ok:  # only the cross-field rules go beyond the schema
        assert outcome
        assert all("must be <= option" in e for e in outcome), outcome


def _valid_value(entry: dict[str, Any]) -> st.SearchStrategy[Any]:
    kind = entry["type"]
    if kind == "none":
        return st.booleans()
    if kind == "str":
        return st.sampled_from(entry["allowed_values"])
    if kind == "int":
        return st.integers(min_value=int(entry["min"]), max_value=int(entry["max"]))
    return st.floats(min_value=entry["min"], max_value=entry["max"], allow_nan=False)


_CAESAR_DESCRIBE = CAESAR.describe_v1()
_CAESAR_OPTIONS = st.sets(st.sampled_from(sorted(_CAESAR_DESCRIBE)), max_size=25).flatmap(
    lambda names: st.fixed_dictionaries(
        {name: _valid_value(_CAESAR_DESCRIBE[name]) for name in sorted(names)}
    )
)
_SAFE_ARG = re.compile(r"^--[A-Za-z][A-Za-z0-9-]*(=[-+.0-9A-Za-z]+)?$")


@settings(max_examples=200, deadline=None)
@given(options=_CAESAR_OPTIONS)
def test_caesar_argv_is_one_safe_token_per_option(options: dict[str, Any]) -> None:
    params = _outcome(CAESAR, options)
    if not isinstance(params, ValidatedParams):  # random values may break a cross-field rule
        assert all("must be <= option" in e for e in params), params
        return
    args = CAESAR.v1_argv(params)
    assert all(_SAFE_ARG.fullmatch(a) for a in args), args
    value_names = [n for n, v in params.given.items() if _CAESAR_DESCRIBE[n]["type"] != "none"]
    true_flags = [n for n, v in params.given.items() if _CAESAR_DESCRIBE[n]["type"] == "none" and v]
    assert len(args) == len(value_names) + len(true_flags)


# ---------------------------------------------------------------------------------------
# Plans and argv
# ---------------------------------------------------------------------------------------


def _ctx(tmp_path: Path) -> PlanContext:
    return PlanContext(
        input_path=tmp_path / "data" / "0123abcd.fits", job_dir=tmp_path / "job", bin_dir=tmp_path / "bin"
    )


def test_aegean_plan_for_defaults(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    steps = AEGEAN.plan(AEGEAN.validate({}), ctx)
    img, job, bin_ = str(ctx.input_path), str(ctx.job_dir), str(ctx.bin_dir)
    assert [s.name for s in steps] == ["bane", "aegean"]
    assert steps[0].argv == (
        f"{bin_}/BANE",
        "--cores",
        "1",
        "--grid",
        "20",
        "20",
        "--box",
        "100",
        "100",
        "--out",
        f"{job}/image",
        img,
    )
    assert steps[1].argv == (
        f"{bin_}/python",
        "-m",
        "caesar_runner.catalogs.aegean_run",
        img,
        "--background",
        f"{job}/image_bkg.fits",
        "--noise",
        f"{job}/image_rms.fits",
        "--seedclip",
        "5.0",
        "--floodclip",
        "2.6",
        "--maxsummits",
        "3",
        "--cores",
        "1",
        "--table",
        f"{job}/catalog.vot,{job}/catalog.csv,{job}/catalog.reg",
        "--finalize",
    )
    for step in steps:
        assert dict(step.env) == {"OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


def test_aegean_plan_maps_every_option(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    params = AEGEAN.validate(
        {
            "bkgbox": 60,
            "bkggrid": 12,
            "seedthr": 4.5,
            "mergethr": 3,
            "fit-maxcomponents": 0,
            "ncores": 4,
            "no-logredir": True,
        }
    )
    bane, aegean = AEGEAN.plan(params, ctx)
    assert bane.argv[1:9] == ("--cores", "4", "--grid", "12", "12", "--box", "60", "60")
    assert "--maxsummits" not in aegean.argv  # 0 = no limit: leave Aegean's default
    args = aegean.argv
    assert args[args.index("--seedclip") + 1] == "4.5"
    assert args[args.index("--floodclip") + 1] == "3.0"
    assert args[args.index("--cores") + 1] == "4"
    assert AEGEAN.resources(params, 0) == Resources(cores=4, memory_mb=300 + 3 * 100)


def test_aegean_plan_refuses_bad_contexts(tmp_path: Path) -> None:
    params = AEGEAN.validate({})
    with pytest.raises(ValueError, match="comma"):
        AEGEAN.plan(params, PlanContext(tmp_path / "in.fits", tmp_path / "a,b", tmp_path))
    relative = PlanContext(Path("in.fits"), Path("job"), tmp_path)
    assert relative.input_path == Path.cwd() / "in.fits"
    assert relative.job_dir == Path.cwd() / "job"
    with pytest.raises(ValueError, match="validated by app"):
        AEGEAN.plan(CAESAR.validate({}), _ctx(tmp_path))


def test_aegean_resources_model() -> None:
    params = AEGEAN.validate({})
    mib = 2**20
    assert AEGEAN.resources(params, 0) == Resources(cores=1, memory_mb=512)
    assert AEGEAN.resources(params, 1 * mib).memory_mb == 512  # 512^2 float32: floor
    assert AEGEAN.resources(params, 16 * mib).memory_mb == 300 + 24 * 16  # 2048^2
    assert AEGEAN.resources(params, 64 * mib).memory_mb == 300 + 24 * 64  # 4096^2
    # Measured peaks (source-finders.md): 0.42 / 0.66 / 1.5 GB. The model covers them.
    for mib_size, measured in ((1, 419), (16, 662), (64, 1507)):
        assert AEGEAN.resources(params, mib_size * mib).memory_mb >= measured
    four = AEGEAN.validate({"ncores": 4})
    assert AEGEAN.resources(four, 64 * mib) == Resources(cores=4, memory_mb=300 + 24 * 64 + 300)


def test_aegean_discardable_outputs() -> None:
    assert AEGEAN.discardable_outputs(AEGEAN.validate({})) == {"image_bkg.fits", "image_rms.fits"}
    assert AEGEAN.discardable_outputs(AEGEAN.validate({"save-rmsmap": True})) == {"image_bkg.fits"}


def test_caesar_plan_is_the_v1_command_as_a_list(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    params = CAESAR.validate(
        {
            "no-mpi": True,
            "save-fits": False,
            "seedthr": 4,
            "bkgestimator": "ClippedMedian",
            "res-removedsourcetype": "ALL",
            "nthreads": 2,
        }
    )
    (step,) = CAESAR.plan(params, ctx)
    assert step.argv == (
        "SFinderSubmitter.sh",
        "--run",
        "--save-summaryplot",
        "--save-regions",
        "--save-catalog-to-json",
        f"--inputfile={ctx.input_path}",
        "--bkgestimator=4",
        "--seedthr=4.0",
        "--res-removedsourcetype=-1",
        "--no-mpi",
        "--nthreads=2",
    )
    assert CAESAR.resources(params, 0) == Resources(cores=2, memory_mb=2048)
    assert CAESAR.resources(CAESAR.validate({"nproc": 4, "nthreads": -1}), 0).cores == 4


def test_container_plans_for_mrcnn_and_cutex(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    (step,) = MRCNN.plan(MRCNN.validate({"scoreThr": 0.5}), ctx)
    assert step.argv == (
        "run_mrcnn.sh",
        "--runmode=detect",
        "--weights=/opt/Software/MaskR-CNN/install/share/mrcnn_weights.h5",
        f"--image={ctx.input_path}",
        "--scoreThr=0.5",
    )
    (step,) = CUTEX.plan(CUTEX.validate({"npixmin": 6, "no-logredir": True}), ctx)
    assert step.argv == (
        "cutex_submitter.sh",
        "--run",
        "--save-summaryplot",
        "--save-catalog-to-json",
        f"--inputfile={ctx.input_path}",
        "--npixmin=6",
        "--no-logredir",
    )
    with pytest.raises(ParameterError, match="psflimmin"):
        CUTEX.validate({"psflimmin": 3})


def test_shell_metacharacters_never_reach_an_argv(tmp_path: Path) -> None:
    # caesar has no free-text option: the only str options are enums.
    with pytest.raises(ParameterError, match="Option 'loglevel' must be one of"):
        CAESAR.validate({"loglevel": "INFO; rm -rf /"})
    with pytest.raises(ParameterError, match="Option 'seedthr' must be a number"):
        AEGEAN.validate({"seedthr": "5; rm -rf /"})
    with pytest.raises(ParameterError, match=re.escape("Unknown option(s): x; rm -rf /")):
        AEGEAN.validate({"x; rm -rf /": 1})
    # A hostile input path stays one argv element (no shell ever splits it).
    ctx = PlanContext(tmp_path / "a b; rm -rf ~ $(id).fits", tmp_path / "job", tmp_path)
    bane, aegean = AEGEAN.plan(AEGEAN.validate({}), ctx)
    assert bane.argv[-1] == str(ctx.input_path)
    assert aegean.argv[3] == str(ctx.input_path)
    assert all(isinstance(a, str) for a in bane.argv + aegean.argv)


def test_step_checks_its_argv() -> None:
    with pytest.raises(ValueError, match="clean str"):
        Step("x", ("prog", 5))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="clean str"):
        Step("x", ("prog", "a\x00b"))
    with pytest.raises(ValueError, match="empty"):
        Step("x", ())
    step = Step("x", ["prog", "-v"], {"A": "1"})  # type: ignore[arg-type]
    assert step.argv == ("prog", "-v")
    with pytest.raises(TypeError):
        step.env["B"] = "2"  # type: ignore[index]


# ---------------------------------------------------------------------------------------
# The real thing: BANE + aegean on a simulated radio map
# ---------------------------------------------------------------------------------------

# (x, y, peak in Jy/beam) of the injected point sources, 0-based pixels; rms is 0.1 mJy.
INJECTED = [
    (60.0, 70.0, 5e-3),
    (190.0, 60.0, 3e-3),
    (128.0, 128.0, 1e-2),
    (70.0, 200.0, 2e-3),
    (200.0, 190.0, 4e-3),
]
PIXEL_DEG = 2.0 / 3600
BEAM_FWHM_PX = 4.0
NOISE_RMS = 1e-4


def _simulated_map(path: Path, size: int = 256) -> WCS:
    """Write a small radio continuum map: beam-correlated noise plus point sources.

    The noise is white noise smoothed by the beam (as in an interferometric image) and
    rescaled to ``NOISE_RMS``; each source is the beam itself scaled to its peak. SIN
    projection, beam in degrees, Jy/beam: what Aegean expects from a real image.
    """
    from scipy.ndimage import gaussian_filter

    sigma_px = BEAM_FWHM_PX / (2 * math.sqrt(2 * math.log(2)))
    rng = np.random.default_rng(20240501)
    image = gaussian_filter(rng.normal(size=(size, size)), sigma_px)
    image *= NOISE_RMS / image.std()
    yy, xx = np.mgrid[0:size, 0:size]
    for x, y, peak in INJECTED:
        image += peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma_px**2))
    header = fits.Header()
    header.update(
        CTYPE1="RA---SIN",
        CTYPE2="DEC--SIN",
        CRVAL1=150.0,
        CRVAL2=-30.0,
        CRPIX1=size / 2 + 0.5,
        CRPIX2=size / 2 + 0.5,
        CDELT1=-PIXEL_DEG,
        CDELT2=PIXEL_DEG,
        CUNIT1="deg",
        CUNIT2="deg",
        RADESYS="FK5",
        EQUINOX=2000.0,
        BMAJ=BEAM_FWHM_PX * PIXEL_DEG,
        BMIN=BEAM_FWHM_PX * PIXEL_DEG,
        BPA=0.0,
        BUNIT="JY/BEAM",
    )
    fits.PrimaryHDU(image.astype(np.float32), header).writeto(path)
    return WCS(header)


@pytest.mark.timeout(60)
def test_aegean_really_finds_the_injected_sources(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "BANE").exists() or not (bin_dir / "aegean").exists():
        pytest.skip("AegeanTools console scripts are not installed next to this Python")
    data_dir, job_dir = tmp_path / "data", tmp_path / "job"
    data_dir.mkdir()
    job_dir.mkdir()
    image = data_dir / "67a49bf7555b41739095681bf52a1f99.fits"
    wcs = _simulated_map(image)

    app = get_app("aegean")
    assert isinstance(app, AegeanApp)
    params = app.validate({"seedthr": 5, "mergethr": 3, "ncores": 1})
    steps = app.plan(params, PlanContext(input_path=image, job_dir=job_dir, bin_dir=bin_dir))
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    for step in steps:
        done = subprocess.run(
            step.argv,
            cwd=job_dir,
            env={**base_env, **step.env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{step.name} failed:\n{done.stderr[-3000:]}"

    assert (job_dir / "image_bkg.fits").exists()
    assert (job_dir / "image_rms.fits").exists()
    for ext in ("csv", "vot", "reg"):
        assert (job_dir / f"catalog_comp.{ext}").exists(), ext
    assert not list(data_dir.glob("*_bkg.fits")), "nothing is written next to the input"
    for name in ("sources.fits", "catalog.json", "preview.png"):  # finalized in the aegean step
        assert (job_dir / name).exists(), name

    with (job_dir / "catalog_comp.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= len(INJECTED)
    found = np.array([[float(r["ra"]), float(r["dec"]), float(r["peak_flux"])] for r in rows])
    for x, y, peak in INJECTED:
        ra, dec = wcs.all_pix2world([[x, y]], 0)[0]
        sep_arcsec = 3600 * np.hypot((found[:, 0] - ra) * math.cos(math.radians(dec)), found[:, 1] - dec)
        best = int(np.argmin(sep_arcsec))
        assert sep_arcsec[best] < 2.0, (x, y, sep_arcsec[best])  # 1 pixel
        assert found[best, 2] == pytest.approx(peak, rel=0.1), (x, y)
    # The fitted shape of the brightest source is the beam (8" FWHM).
    brightest = max(rows, key=lambda r: float(r["peak_flux"]))
    assert float(brightest["a"]) == pytest.approx(8.0, rel=0.1)
    assert float(brightest["b"]) == pytest.approx(8.0, rel=0.1)


def test_aegean_plan_maps_aegeantools_options(tmp_path: Path) -> None:
    params = AEGEAN.validate(
        {
            "bmaj": 36,
            "bmin": 18,
            "bpa": 30,
            "nocov": True,
            "island": True,
            "negative": True,
            "slice": 2,
            "hdu": 1,
        }
    )
    _, aegean = AEGEAN.plan(params, _ctx(tmp_path))
    args = list(aegean.argv)
    beam = args[args.index("--beam") + 1 : args.index("--beam") + 4]
    assert [float(v) for v in beam] == [0.01, 0.005, 30.0]  # degrees
    assert {"--nocov", "--island", "--negative"} <= set(args)
    assert args[args.index("--slice") + 1] == "2"
    assert args[args.index("--hdu") + 1] == "1"
    defaults = AEGEAN.plan(AEGEAN.validate({}), _ctx(tmp_path))[1].argv
    assert not {"--beam", "--nocov", "--island", "--negative", "--slice", "--hdu"} & set(defaults)


def test_aegean_beam_rules() -> None:
    with pytest.raises(ParameterError, match="bmin"):
        AEGEAN.validate({"bmaj": 5, "bmin": 10})
