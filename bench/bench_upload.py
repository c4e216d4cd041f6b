"""Upload throughput of ``POST /upload`` against ``dd`` writing the same size to the same disk.

For each size a FITS file of zeros (a valid float32 image header, then sparse data) is
uploaded as ``multipart/form-data``, streamed from disk by aiohttp (never read into
memory). The reference, in the same run, is
``dd if=/dev/zero of=<the api's data directory>/dd.bin bs=1M count=N conv=fsync``: what
the disk takes when a single writer does nothing else. The api hashes (SHA-256) and writes
the stream and reads the FITS header; it does not fsync, so on a machine with free memory
it may beat dd. The api's peak resident memory (``VmHWM``) is read before and after each
upload: streaming means it must not grow with the file size.

    .venv/bin/python bench/bench_upload.py                 # 64 MiB and 1 GiB
    .venv/bin/python bench/bench_upload.py --skip-1g       # 64 MiB only
    .venv/bin/python bench/bench_upload.py --sizes 16 256  # any sizes in MiB

Result: ``bench/results/upload.json``. MB/s are 10^6 bytes per second (as dd prints them).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from _stack import (
    MB,
    MIB,
    OLD_LABEL,
    OLD_REFERENCE,
    check_infra,
    fmt,
    loadavg,
    markdown_table,
    peak_rss_mb,
    process_cpu,
    running_stack,
    settle,
    upload,
    write_result,
    write_zero_fits,
)

from caesar_testkit.devstack import Stack


def run_dd(target: Path, mib: int) -> float:
    """Seconds ``dd ... conv=fsync`` takes to write ``mib`` MiB to ``target`` (then removed)."""
    t0 = time.monotonic()
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={mib}", "conv=fsync"],
        check=True,
        capture_output=True,
        timeout=900,
    )
    seconds = time.monotonic() - t0
    target.unlink()
    return seconds


async def timed_upload(stack: Stack, path: Path) -> tuple[float, dict[str, Any]]:
    timeout = aiohttp.ClientTimeout(total=1800)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        t0 = time.monotonic()
        body = await upload(session, stack.v1, path)
        return time.monotonic() - t0, body


def measure(stack: Stack, mib: int) -> dict[str, Any]:
    source_dir = stack.root / "source"
    source_dir.mkdir(exist_ok=True)
    source = source_dir / f"zeros-{mib}MiB.fits"
    size = write_zero_fits(source, mib)
    api_pid = stack.procs["api"].pid

    settle(stack)
    dd_s = run_dd(stack.root / "data" / f"dd-{mib}MiB.bin", mib)

    rss_before = peak_rss_mb(api_pid)
    cpu0 = process_cpu(stack)
    client0 = time.process_time()
    upload_s, body = asyncio.run(timed_upload(stack, source))
    client_cpu = time.process_time() - client0
    cpu1 = process_cpu(stack)
    rss_after = peak_rss_mb(api_pid)
    source.unlink()

    upload_rate = size / upload_s / MB
    dd_rate = mib * MIB / dd_s / MB
    return {
        "size_mib": mib,
        "file_bytes": size,
        "upload_s": round(upload_s, 3),
        "upload_mb_s": round(upload_rate, 1),
        "dd_s": round(dd_s, 3),
        "dd_mb_s": round(dd_rate, 1),
        "upload_vs_dd": round(upload_rate / dd_rate, 3),
        "vs_old": [
            round(upload_rate / OLD_REFERENCE["upload_mb_s_high"], 2),
            round(upload_rate / OLD_REFERENCE["upload_mb_s_low"], 2),
        ],
        "api_vmhwm_mib_before": round(rss_before, 1),
        "api_vmhwm_mib_after": round(rss_after, 1),
        "api_cpu_s": round(cpu1["api"] - cpu0["api"], 2),
        "client_cpu_s": round(client_cpu, 2),
        "client_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "uploaded_size_field_mib": body.get("size"),
    }


def table(rows: Sequence[dict[str, Any]]) -> str:
    old = f"{OLD_REFERENCE['upload_mb_s_low']:g}-{OLD_REFERENCE['upload_mb_s_high']:g} MB/s"
    head = [
        "upload",
        "MB/s",
        "dd MB/s",
        "upload/dd",
        f"x old ({old})",
        "api VmHWM MiB before/after",
        "api CPU s",
        "client CPU s",
    ]
    body = [
        [
            f"{r['size_mib']} MiB",
            fmt(r["upload_mb_s"]),
            fmt(r["dd_mb_s"]),
            fmt(r["upload_vs_dd"], 2),
            f"{r['vs_old'][0]:.2f}-{r['vs_old'][1]:.2f}x",
            f"{r['api_vmhwm_mib_before']:.0f} / {r['api_vmhwm_mib_after']:.0f}",
            fmt(r["api_cpu_s"]),
            fmt(r["client_cpu_s"]),
        ]
        for r in rows
    ]
    return markdown_table(head, body) + f"\n(x old = {OLD_LABEL})"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 1024], help="file sizes in MiB")
    parser.add_argument("--skip-1g", action="store_true", help="leave out sizes of 1 GiB and more")
    parser.add_argument("--keep", action="store_true", help="keep the stack directory and logs")
    parser.add_argument(
        "--base-dir",
        type=Path,
        default=None,
        help="where the stack (api data dir, dd target) lives; default: system temp dir",
    )
    args = parser.parse_args(argv)
    if args.skip_1g:
        args.sizes = [s for s in args.sizes if s < 1024]
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    check_infra()
    load0 = loadavg()
    print(f"bench_upload: loadavg {load0} at start")
    rows = []
    with running_stack("upload", ("api",), base_dir=args.base_dir, keep=args.keep) as stack:
        for mib in args.sizes:
            rows.append(measure(stack, mib))
            print(f"  {mib} MiB: {rows[-1]['upload_mb_s']} MB/s (dd {rows[-1]['dd_mb_s']} MB/s)", flush=True)
        data_dir = str(stack.root / "data")
    print(table(rows))
    load1 = loadavg()
    path = write_result(
        "upload",
        {
            "loadavg_start": load0,
            "loadavg_end": load1,
            "disk_dir": data_dir,
            "results": rows,
            "reference_old_mb_s": [OLD_REFERENCE["upload_mb_s_low"], OLD_REFERENCE["upload_mb_s_high"]],
        },
    )
    print(f"-> {path}")
    print(f"bench_upload: loadavg {load1} at end")


if __name__ == "__main__":
    main()
