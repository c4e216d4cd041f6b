"""Aegean in a process of ours, so that the finalize work can follow in the same process.

``python -m caesar_runner.catalogs.aegean_run <image> <aegean options> [--finalize]``
runs AegeanTools' own command line (``AegeanTools.CLI.aegean.main``, what the ``aegean``
console script calls) with exactly those arguments, then, with ``--finalize``, writes
the harmonised catalogue, the preview and ``catalog.json`` like the finalize step does.

Why: the finalize step as a process of its own pays a second interpreter start, the
astropy import and the image read, about 0.7-0.9 s on 2 cores: 3-4 % of Aegean's time on
a 2048^2 map, 25 % on 512^2. Aegean has imported astropy already when it ends, so the
same work costs only the harmonisation and the drawing here. Without ``--finalize`` the
module is the ``aegean`` command itself (the benchmarks' direct run uses it that way).

The image is the first argument and the ``--table`` files are written in the job
directory, as :class:`caesar_common.apps.aegean.AegeanApp` plans them; finalize reads
the VOTable component list from there.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from caesar_runner.finalize import FINALIZE_FLAG

__all__ = ["main", "outputs_of"]


def outputs_of(args: Sequence[str]) -> tuple[Path, Path]:
    """``(job directory, image)`` of an aegean argument list as the app plans it.

    Raises
    ------
    ValueError
        No image first or no ``--table`` argument: not a plan of ours.
    """
    if not args or args[0].startswith("-"):
        raise ValueError("the image must be the first argument")
    try:
        tables = args[list(args).index("--table") + 1]
    except (ValueError, IndexError):
        raise ValueError("--table is required to know the job directory") from None
    return Path(tables.split(",")[0]).parent, Path(args[0])


def main(argv: Sequence[str] | None = None) -> int:
    """Run Aegean with ``argv`` (default: the command line); finalize after it if asked."""
    args = list(sys.argv[1:] if argv is None else argv)
    finalize_after = FINALIZE_FLAG in args
    args = [a for a in args if a != FINALIZE_FLAG]
    target = outputs_of(args) if finalize_after else None  # refuse before a long run
    from AegeanTools.CLI.aegean import main as aegean_main

    sys.argv = ["aegean", *args]  # Aegean's parser reads sys.argv, like its console script
    code = aegean_main()
    if code:
        return int(code)
    if target is not None:
        from caesar_runner.finalize import finalize, report

        job_dir, image = target
        print(report(finalize("aegean", job_dir, image)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
