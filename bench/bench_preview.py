"""The preview step: what ``preview.png`` + ``preview.json`` cost a job, against the finder.

The finalize step draws a preview for every job, in the finder's own process (sfind,
PyBDSF and Aegean wrappers) or in its own, so its price is paid on every job. On a skysim
map (2048^2 by default) with sfind's harmonised catalogue, this measures:

* **cold**: a fresh interpreter that has loaded the image and the catalogue (what the
  finder's process holds) and then imports the preview and draws it, as the job does;
  the import is part of the price. Median of ``--repeat`` processes.
* **warm**: in this process, the layout (block averaging, zscale, ticks, ellipses) and
  the drawing + PNG encoding separately. Median of ``--repeat`` runs.
* **references**: sfind's ``find_sources`` on the same map (what the preview is a
  fraction of) and, unless ``--no-matplotlib``, the same figure made with matplotlib's
  WCSAxes (zscale + asinh, colour bar, beam, one ellipse per source, constrained layout),
  cold: the alternative the preview's design avoids.

    .venv/bin/python bench/bench_preview.py
    .venv/bin/python bench/bench_preview.py --size 4096 --repeat 3

Wall and CPU seconds are both reported; on a shared machine compare CPU seconds. Result:
a table on stdout (with the ratios preview/finder and matplotlib/preview) and
``bench/results/preview.json``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _stack import loadavg, markdown_table, write_result

from caesar_runner.catalogs.harmonise import read_native
from caesar_runner.catalogs.image import load_image
from caesar_runner.catalogs.preview import draw_scene, scene_for
from caesar_runner.catalogs.sfind import OUTPUT_NAME, find_sources
from caesar_testkit.skysim import SimulationSpec, write_simulation

_SETUP = """
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from caesar_runner.catalogs.harmonise import read_native
from caesar_runner.catalogs.image import load_image
image = load_image(sys.argv[1])
table = read_native("sfind", Path(sys.argv[2]))
out = Path(sys.argv[3])
t1, c1 = time.perf_counter(), time.process_time()
"""
_REPORT = """
print(json.dumps({"setup_s": t1 - t0, "wall_s": time.perf_counter() - t1, "cpu_s": time.process_time() - c1}))
"""
OURS = """
from caesar_runner.catalogs.preview import write_preview
write_preview(out / "preview.png", out / "preview.json", table, image)
"""
MATPLOTLIB = """
import matplotlib
matplotlib.use("Agg")
import numpy as np
from astropy.visualization import AsinhStretch, ImageNormalize, ZScaleInterval
from matplotlib.collections import EllipseCollection
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse
from caesar_runner.catalogs.display import decimate
small, f = decimate(image.data, 800)
wcs = image.wcs[::f, ::f] if f > 1 else image.wcs
norm = ImageNormalize(small, interval=ZScaleInterval(), stretch=AsinhStretch(0.1))
fig = Figure(figsize=(8.9, 7.7), dpi=100, layout="constrained")
ax = fig.add_subplot(projection=wcs)
im = ax.imshow(small, origin="lower", cmap="gray_r", norm=norm, interpolation="nearest")
ax.coords[0].set_axislabel("RA (J2000)")
ax.coords[1].set_axislabel("Dec (J2000)")
fig.colorbar(im, ax=ax).set_label(str(image.header.get("BUNIT", "")))
x, y = wcs.world_to_pixel_values(np.asarray(table["ra"]), np.asarray(table["dec"]))
px = 1.0 / (image.pixel_deg * 3600.0 * f)
ax.add_collection(EllipseCollection(
    np.asarray(table["maj"]) * px, np.asarray(table["min"]) * px, np.asarray(table["pa"]) + 90.0,
    units="xy", offsets=np.c_[x, y], offset_transform=ax.transData,
    facecolors="none", edgecolors="red", linewidths=0.6))
bmaj, bmin, bpa = image.beam_deg
beam_px = (bmaj / image.pixel_deg / f, bmin / image.pixel_deg / f)
ax.add_patch(Ellipse((10, 10), *beam_px, angle=bpa + 90.0, fc="orange"))
ax.set_title(f"sfind: {len(table)} sources")
fig.savefig(out / "preview_mpl.png", dpi=100)
"""


def timed(repeat: int, fn: Callable[[], object]) -> dict[str, float]:
    """Median wall and CPU seconds of ``repeat`` calls of ``fn`` in this process."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus)}


def cold_median(repeat: int, script: str, image: Path, job: Path) -> dict[str, float]:
    """Median wall and CPU seconds of ``script`` in ``repeat`` fresh interpreters."""
    runs = [cold(script, image, job, job) for _ in range(repeat)]
    return {key: statistics.median(r[key] for r in runs) for key in ("wall_s", "cpu_s")}


def cold(script: str, image: Path, job: Path, out: Path) -> dict[str, float]:
    """One fresh interpreter running the setup, ``script`` and the report."""
    proc = subprocess.run(
        [sys.executable, "-c", _SETUP + script + _REPORT, str(image), str(job), str(out)],
        capture_output=True,
        text=True,
        check=True,
        env={"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(out)},
    )
    figures: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-matplotlib", action="store_true", help="skip the matplotlib reference")
    args = parser.parse_args(argv)
    print(f"load average at start: {loadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench-preview-") as tmp:
        job = Path(tmp)
        image_path = job / "in.fits"
        write_simulation(SimulationSpec(size=args.size, seed=3), image_path)
        image = load_image(image_path)
        native = find_sources(image)
        native.write(job / OUTPUT_NAME, format="fits")
        table = read_native("sfind", job)

        scene = scene_for(image, table)
        figures = {
            "sfind find_sources (reference)": timed(args.repeat, lambda: find_sources(image)),
            "load image (reference)": timed(args.repeat, lambda: load_image(image_path)),
            "preview, warm: layout": timed(args.repeat, lambda: scene_for(image, table)),
            "preview, warm: draw + PNG": timed(
                args.repeat, lambda: draw_scene(scene).save(job / "warm.png", compress_level=3)
            ),
            "preview step, cold (import + PNG + JSON)": cold_median(args.repeat, OURS, image_path, job),
        }
        if not args.no_matplotlib:
            figures["matplotlib WCSAxes figure, cold"] = cold_median(args.repeat, MATPLOTLIB, image_path, job)
        sizes = {name: (job / name).stat().st_size for name in ("preview.png", "preview.json")}

    finder = figures["sfind find_sources (reference)"]
    ours = figures["preview step, cold (import + PNG + JSON)"]
    mpl = figures.get("matplotlib WCSAxes figure, cold")
    result: dict[str, Any] = {
        "size": args.size,
        "sources": len(table),
        "repeat": args.repeat,
        "figures": figures,
        "preview_over_finder_cpu": ours["cpu_s"] / finder["cpu_s"],
        "matplotlib_over_preview_cpu": None if mpl is None else mpl["cpu_s"] / ours["cpu_s"],
        "png_bytes": sizes["preview.png"],
        "json_bytes": sizes["preview.json"],
        "loadavg_end": loadavg(),
    }
    rows = [
        [what, f"{f['wall_s']:.3f}", f"{f['cpu_s']:.3f}", f"{f['cpu_s'] / finder['cpu_s']:.2f}"]
        for what, f in figures.items()
    ]
    print(f"\n{args.size}^2 skysim map, {len(table)} sources, medians of {args.repeat}\n")
    print(markdown_table(["what", "wall s", "CPU s", "CPU / finder"], rows))
    if mpl is not None:
        print(f"\nmatplotlib / ours (CPU): {mpl['cpu_s'] / ours['cpu_s']:.1f}x")
    print(f"preview.png {sizes['preview.png'] / 1024:.0f} KiB, preview.json {sizes['preview.json']} B")
    print(f"load average at end: {result['loadavg_end']}")
    print(f"wrote {write_result('preview', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
