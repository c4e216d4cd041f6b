"""The last step of every runnable job: harmonised catalogues, preview, catalogue record.

Run as ``python -m caesar_runner.finalize --app <name> --job-dir <dir> --input <image>``,
appended by the runner to the app's plan. Being a job step (not code in the runner
process) keeps it executor-agnostic (it runs on the Slurm node next to the files) and
inside the job's wall-time and memory limits; a 4096^2 preview costs about 0.5 GB.

It reads the finder's native catalogue (none = no source found = an empty catalogue, not a
failure), writes ``sources.{vot,fits,csv,json,reg}`` (and ``components.*`` for finders
whose components differ from their sources, i.e. PyBDSF's Gaussian list), draws
``preview.png`` and records what it did in ``catalog.json``, which the runner copies
into the job manifest (native file -> harmonised files, source counts).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from caesar_common.apps.base import PlanContext, Step

__all__ = ["PREVIEW", "RECORD", "finalize", "finalize_step", "main", "read_record"]

RECORD: Final = "catalog.json"
PREVIEW: Final = "preview.png"


def finalize_step(app: str, ctx: PlanContext) -> Step | None:
    """The step to append to ``app``'s plan, or ``None`` for apps without a catalogue reader."""
    from caesar_common.apps.base import Step
    from caesar_runner.catalogs.harmonise import NATIVE_FILES

    if app not in NATIVE_FILES:
        return None
    argv = (
        str(ctx.bin_dir / "python"),
        "-m",
        "caesar_runner.finalize",
        "--app",
        app,
        "--job-dir",
        str(ctx.job_dir),
        "--input",
        str(ctx.input_path),
    )
    return Step("finalize", argv, {"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"})


def read_record(job_dir: Path) -> dict[str, Any] | None:
    """The finalize step's record (for the manifest), or ``None`` if it did not run."""
    try:
        data = json.loads((job_dir / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def finalize(app: str, job_dir: Path, input_path: Path) -> dict[str, Any]:
    """Harmonise ``app``'s output in ``job_dir``, draw the preview; return the record."""
    from caesar_runner.catalogs.harmonise import NATIVE_FILES, read_native
    from caesar_runner.catalogs.image import ImageError, load_image
    from caesar_runner.catalogs.writers import write_catalog

    started = time.perf_counter()
    natives = NATIVE_FILES[app]
    record: dict[str, Any] = {"app": app, "catalogs": {}, "preview": None}
    sources = None
    kinds = ["sources"] if natives["components"] == natives["sources"] else ["sources", "components"]
    for kind in kinds:
        table = read_native(app, job_dir, kind)
        native = natives[kind] if (job_dir / natives[kind]).is_file() else None
        record["catalogs"][kind] = {
            "native": native,
            "n_rows": len(table),
            "files": write_catalog(table, job_dir, kind),
        }
        if kind == "sources":
            sources = table
    if "components" not in record["catalogs"]:
        record["catalogs"]["components"] = record["catalogs"]["sources"]
    try:
        from caesar_runner.catalogs.preview import render_preview

        image = load_image(input_path)
        assert sources is not None
        render_preview(image, sources, job_dir / PREVIEW)
        record["preview"] = PREVIEW
    except ImageError as exc:
        record["preview_error"] = str(exc)
    record["elapsed_s"] = round(time.perf_counter() - started, 3)
    tmp = job_dir / f".{RECORD}.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, job_dir / RECORD)
    return record


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point of the finalize step."""
    parser = argparse.ArgumentParser(prog="python -m caesar_runner.finalize")
    parser.add_argument("--app", required=True)
    parser.add_argument("--job-dir", type=Path, required=True)
    parser.add_argument("--input", type=Path, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    from caesar_runner.catalogs.preview import private_matplotlib_config

    with private_matplotlib_config():
        record = finalize(args.app, args.job_dir, args.input)
    counts = {kind: c["n_rows"] for kind, c in record["catalogs"].items()}
    print(f"finalize: {args.app} {counts} preview={record['preview']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
