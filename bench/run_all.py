"""Run every benchmark and print one combined markdown table (also ``bench/results/summary.md``).

Each benchmark runs as its own process with its own stack (``make bench`` calls this):

1. ``bench_api.py all``: ``POST /job`` submissions/s with 8 clients, then
   ``GET /job/<id>/status`` with 1 and 8 clients (stack without a runner);
   ``bench_api.py submissions --api-only``: the same submissions to the api alone
   (diagnostic: the api's own share of the cost);
2. ``bench_upload.py``: ``POST /upload`` MB/s for 64 MiB and 1 GiB against ``dd``;
3. ``bench_aegean.py``: an aegean job through the service against BANE + aegean run
   directly, 512^2 and 2048^2;
4. ``bench_pipeline.py``: a burst of trivial jobs through the whole stack: CPU, database
   commands, publishes and deliveries per job and service, and the pipeline's jobs/s
   against the database's and the broker's raw rates measured in the same run.

The defaults take about four to five minutes on two cores; ``--quick`` is a smoke run of the
whole chain (seconds per benchmark, not meaningful figures). The machine's load average
is printed at the start and the end: figures from a busy machine are not comparable.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _stack import OLD_LABEL, OLD_REFERENCE, RESULTS_DIR, check_infra, fmt, loadavg, machine, markdown_table

BENCH_DIR = Path(__file__).resolve().parent
RESULT_FILES = {
    "api": ("api_submissions", "api_status"),
    "api-only": ("api_submissions_api_only",),
    "upload": ("upload",),
    "aegean": ("aegean",),
    "pipeline": ("pipeline",),
}


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def commands(args: argparse.Namespace) -> dict[str, list[str]]:
    py = sys.executable
    if args.quick:
        api = ["all", "--duration", "3", "--status-duration", "2", "--status-jobs", "50"]
        api_only = ["submissions", "--api-only", "--duration", "3"]
        upload = ["--sizes", "64"]
        aegean = ["--sizes", "512", "--repeat", "1"]
        pipeline = ["--duration", "3", "--idle", "1", "--raw-duration", "1"]
    else:
        api = ["all", "--duration", str(args.duration), "--status-duration", str(args.status_duration)]
        api_only = ["submissions", "--api-only", "--duration", str(args.api_only_duration)]
        upload = ["--sizes", "64", *([] if args.skip_1g else ["1024"])]
        aegean = ["--sizes", *(str(s) for s in args.aegean_sizes), "--repeat", str(args.repeat)]
        pipeline = ["--duration", str(args.pipeline_duration)]
    return {
        "api": [py, str(BENCH_DIR / "bench_api.py"), *api],
        "api-only": [py, str(BENCH_DIR / "bench_api.py"), *api_only],
        "upload": [py, str(BENCH_DIR / "bench_upload.py"), *upload],
        "aegean": [py, str(BENCH_DIR / "bench_aegean.py"), *aegean],
        "pipeline": [py, str(BENCH_DIR / "bench_pipeline.py"), *pipeline],
    }


def x(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}x"


def api_rows(sub: dict[str, Any] | None, status: dict[str, Any] | None) -> list[list[str]]:
    rows: list[list[str]] = []
    if sub is None:
        rows.append(["POST /job (submissions)", "failed", "-", "-", "see the log above"])
    else:
        r = sub["result"]
        ratios = sub["ratio_vs_old"]
        rows += [
            [
                f"POST /job, {r['clients']} clients: submissions/s",
                fmt(r["requests_per_s"]),
                f"{OLD_REFERENCE['submissions_per_s']:g} (old)",
                x(ratios["throughput"]),
                f"{r['requests']} jobs in {r['window_s']:g} s, {r['errors']} errors",
            ],
            [
                "POST /job: p50 / p99 latency ms",
                f"{fmt(r['p50_ms'])} / {fmt(r['p99_ms'])}",
                f"{OLD_REFERENCE['submit_p50_ms']:g} / {OLD_REFERENCE['submit_p99_ms']:g} (old)",
                f"{x(ratios['p50_speedup'])} / {x(ratios['p99_speedup'])}",
                f"api {r['api_cpu_ms_per_request']} ms CPU per job; machine busy "
                f"{100 * r['machine_cpu_busy']:.0f}%",
            ],
        ]
    if status is None:
        rows.append(["GET /job/<id>/status", "failed", "-", "-", "see the log above"])
    else:
        for r in status["results"]:
            p50 = OLD_REFERENCE["status_p50_ms"] / r["p50_ms"] if r["p50_ms"] else math.nan
            p99 = OLD_REFERENCE["status_p99_ms"] / r["p99_ms"] if r["p99_ms"] else math.nan
            rows.append(
                [
                    f"GET status, {r['clients']} client(s): p50 / p99 ms",
                    f"{fmt(r['p50_ms'], 2)} / {fmt(r['p99_ms'], 2)}",
                    f"{OLD_REFERENCE['status_p50_ms']:g} / {OLD_REFERENCE['status_p99_ms']:g} (old)",
                    f"{x(p50)} / {x(p99)}",
                    f"{fmt(r['requests_per_s'])} req/s; api {r['api_cpu_ms_per_request']} ms CPU per request",
                ]
            )
    return rows


def api_only_rows(sub: dict[str, Any] | None) -> list[list[str]]:
    if sub is None:
        return [["POST /job, api alone", "failed", "-", "-", "see the log above"]]
    r = sub["result"]
    return [
        [
            f"POST /job, api alone (diagnostic), {r['clients']} clients: submissions/s",
            fmt(r["requests_per_s"]),
            f"{OLD_REFERENCE['submissions_per_s']:g} (old)",
            x(sub["ratio_vs_old"]["throughput"]),
            f"p50 / p99 {fmt(r['p50_ms'])} / {fmt(r['p99_ms'])} ms; no scheduler/monitor/accounting",
        ]
    ]


def upload_rows(up: dict[str, Any] | None) -> list[list[str]]:
    if up is None:
        return [["POST /upload", "failed", "-", "-", "see the log above"]]
    old = f"{OLD_REFERENCE['upload_mb_s_low']:g}-{OLD_REFERENCE['upload_mb_s_high']:g} MB/s (old)"
    rows = []
    for r in up["results"]:
        rows += [
            [
                f"POST /upload {r['size_mib']} MiB: MB/s",
                fmt(r["upload_mb_s"]),
                old,
                f"{r['vs_old'][0]:.2f}-{r['vs_old'][1]:.2f}x",
                f"api peak RSS {r['api_vmhwm_mib_before']:.0f} -> {r['api_vmhwm_mib_after']:.0f} MiB",
            ],
            [
                "  same size with dd conv=fsync: MB/s",
                fmt(r["dd_mb_s"]),
                "(same run)",
                f"upload/dd {r['upload_vs_dd']:.2f}",
                "",
            ],
        ]
    return rows


def aegean_rows(ae: dict[str, Any] | None) -> list[list[str]]:
    if ae is None:
        return [["aegean job", "failed", "-", "-", "see the log above"]]
    rows = []
    for r in ae["results"]:
        extra = r.get("extra_step")
        like_for_like = (
            f"; direct incl. {extra} {fmt(r['direct_with_extra_s'], 2)} s "
            f"(service/that {r['service_over_direct_with_extra']:.2f})"
            if extra
            else ""
        )
        rows.append(
            [
                f"aegean {r['size']}^2: submit -> SUCCESS s",
                fmt(r["service_s"], 2),
                f"{fmt(r['direct_s'], 2)} s BANE+aegean direct (same run)",
                f"service/direct {r['service_over_direct']:.2f}",
                f"overhead {r['overhead_s']:+.2f} s{like_for_like}; median of {r['repeat']}",
            ]
        )
    return rows


def pipeline_rows(pl: dict[str, Any] | None) -> list[list[str]]:
    if pl is None:
        return [["trivial jobs through the stack", "failed", "-", "-", "see the log above"]]
    b, raw, per_job = pl["burst"], pl["raw"], pl["per_job_all_services"]
    update = raw.get("db update by _id", {}).get("per_s", math.nan)
    insert = raw.get("db insert", {}).get("per_s", math.nan)
    publish = raw.get("broker publish", {}).get("per_s", math.nan)
    finished, accepted = b["finished_per_s"], b["accepted_per_s"]
    return [
        [
            f"trivial jobs, {pl['settings']['clients']} clients: accepted / finished jobs/s",
            f"{fmt(accepted)} / {fmt(finished)}",
            f"db insert {fmt(insert)}/s, update {fmt(update)}/s; publish {fmt(publish)}/s (same run)",
            f"finished/update {finished / update:.3f}" if update else "n/a",
            f"{b['jobs_accepted']} jobs; drained {fmt(b['drain_s'])} s after submissions; "
            f"accepted/insert {accepted / insert:.3f}, finished/publish {finished / publish:.3f}"
            if insert and publish
            else f"{b['jobs_accepted']} jobs",
        ],
        [
            "  per job, all services: DB commands (writes) / publishes / deliveries / CPU ms",
            f"{fmt(per_job['db_commands'])} ({fmt(per_job['db_writes'])}) / {fmt(per_job['publishes'])} / "
            f"{fmt(per_job['deliveries'])} / {fmt(per_job['cpu_ms'])}",
            "-",
            f"DB writes at {per_job['db_writes'] * finished / update:.2f} of raw update/s"
            if update
            else "n/a",
            "per service in pipeline.json and the benchmark's own tables",
        ],
    ]


def summary_table(ran: Sequence[str]) -> str:
    """The combined table of the benchmarks in ``ran`` (missing results show as failed)."""
    rows: list[list[str]] = []
    if "api" in ran:
        rows += api_rows(load("api_submissions"), load("api_status"))
    if "api-only" in ran:
        rows += api_only_rows(load("api_submissions_api_only"))
    if "upload" in ran:
        rows += upload_rows(load("upload"))
    if "aegean" in ran:
        rows += aegean_rows(load("aegean"))
    if "pipeline" in ran:
        rows += pipeline_rows(load("pipeline"))
    head = ["benchmark", "caesar-rest 2", "reference", "ratio", "notes"]
    return markdown_table(head, rows)


def run_one(name: str, argv: list[str]) -> bool:
    for result in RESULT_FILES[name]:
        (RESULTS_DIR / f"{result}.json").unlink(missing_ok=True)
    print(f"\n=== {name}: {' '.join(Path(a).name if a.endswith('.py') else a for a in argv[1:])}", flush=True)
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=BENCH_DIR.parent, check=False)
    print(f"=== {name}: exit {proc.returncode} after {time.monotonic() - t0:.0f} s", flush=True)
    return proc.returncode == 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=tuple(RESULT_FILES),
        default=list(RESULT_FILES),
        help="run only these benchmarks",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: seconds per benchmark")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of submissions")
    parser.add_argument(
        "--api-only-duration", type=float, default=10.0, help="seconds of submissions to the api alone"
    )
    parser.add_argument("--status-duration", type=float, default=10.0, help="seconds per status run")
    parser.add_argument("--skip-1g", action="store_true", help="upload 64 MiB only")
    parser.add_argument("--aegean-sizes", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--repeat", type=int, default=2, help="aegean runs of each way per size")
    parser.add_argument(
        "--pipeline-duration", type=float, default=10.0, help="seconds of trivial-job submissions"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check_infra()  # once, before any benchmark: each would fail the same way
    load0 = loadavg()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    t0 = time.monotonic()
    print(f"run_all: loadavg {load0} at start ({os.cpu_count()} CPUs){' [quick]' if args.quick else ''}")
    argvs = commands(args)
    ok = {name: run_one(name, argvs[name]) for name in args.only}
    load1 = loadavg()
    minutes = (time.monotonic() - t0) / 60

    table = summary_table(list(ok))
    facts = machine()
    lines = [
        "# caesar-rest benchmarks",
        "",
        f"Run {started}{' (--quick: smoke run, figures not meaningful)' if args.quick else ''}, "
        f"{minutes:.1f} min; {facts['cpus']} CPUs, Python {facts['python']}, {facts['platform']}.",
        f"Load average (1/5/15 min): {load0} at start, {load1} at end.",
        f"Ratios against the old service use its published figures ({OLD_LABEL}); "
        "latency ratios are speed-ups (old / ours), dd and direct aegean are measured in the same run.",
        "",
        table,
        "",
    ]
    per_bench = []
    for name in ok:
        for result in RESULT_FILES[name]:
            data = load(result)
            if data and "loadavg_start" in data:
                per_bench.append(f"{result} {data['loadavg_start'][0]:g} -> {data['loadavg_end'][0]:g}")
    if per_bench:
        lines += [f"1-min load per benchmark (start -> end): {'; '.join(per_bench)}.", ""]
    failed = [name for name, good in ok.items() if not good]
    if failed:
        lines += [f"Failed: {', '.join(failed)} (see the output above).", ""]
    text = "\n".join(lines)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "summary.md").write_text(text)
    print("\n" + text)
    print(f"run_all: loadavg {load1} at end; summary in {RESULTS_DIR / 'summary.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
