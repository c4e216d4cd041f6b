"""How long the web page's job list takes to show 1,000 jobs, in Debian's Chromium.

Issue 15's target: the list of 1,000 jobs renders in under a second. A stack with the
test apps runs one trivial job; its record is copied in the api's database under new ids
(as ``bench_status_at_scale.py`` does) until the caller has ``--jobs`` jobs. The page is
loaded at ``#/jobs`` ``--repeat`` times in a fresh browser context each; the page's own
performance marks give the times:

* ``load to rendered``: navigation start to the last row in the DOM (fetching the page,
  its modules, the config and the list included): what a user waits for;
* ``render``: from the list's JSON in hand to the rows in the DOM (the page's own work);
* ``fetch``: the ``GET /api/v2/jobs?limit=1000`` itself (the api's work).

The baseline is the same page with the list holding one job, measured in the same run
(same machine, same load). Printed, never asserted.

    .venv/bin/python bench/web_job_list.py [--jobs 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from pymongo import MongoClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._stack import (
    MONGO_URL,
    REPO,
    TERMINAL,
    fmt,
    loadavg,
    markdown_table,
    running_stack,
    submit,
    upload,
    wait_state,
    write_result,
)

from caesar_testkit.skysim import SimulationSpec, write_simulation

ENV = {"CAESAR_ENABLE_TEST_APPS": "true", "CAESAR_SLOTS": "2", "CAESAR_LOG_LEVEL": "WARNING"}
TARGET_MS = 1000.0

MEASURE = """() => {
    const at = (name) => performance.getEntriesByName(name)[0].startTime;
    return {
        load_ms: at('jobs-rendered'),
        render_ms: at('jobs-rendered') - at('jobs-fetched'),
        fetch_ms: at('jobs-fetched') - at('jobs-fetch-start'),
        rows: document.querySelectorAll('#jobs-body tr').length,
    };
}"""


def chromium_path() -> str:
    result = subprocess.run(
        [str(REPO / "scripts" / "browser.sh"), "path"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise SystemExit("Chromium is not installed: scripts/browser.sh install")
    return result.stdout.strip()


def fill(jobs: Any, template: dict[str, Any], count: int) -> None:
    """Insert ``count`` copies of a finished job under new ids."""
    base = {k: v for k, v in template.items() if k not in ("_id", "outbox", "outbox_pending")}
    if count > 0:
        jobs.insert_many([{**base, "_id": str(uuid.uuid4())} for _ in range(count)], ordered=False)


def measure(api: str, expected_rows: int, repeat: int) -> list[dict[str, float]]:
    """Load ``#/jobs`` ``repeat`` times, each in a fresh context (no cache); the marks."""
    from playwright.sync_api import sync_playwright

    runs: list[dict[str, float]] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            for _ in range(repeat + 1):  # the first load warms the api and the disk cache
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.goto(f"{api}/#/jobs")
                page.wait_for_function(
                    "(n) => document.getElementById('jobs-table').dataset.rendered === String(n)",
                    arg=expected_rows,
                    timeout=60_000,
                )
                runs.append(page.evaluate(MEASURE))
                context.close()
        finally:
            browser.close()
    return runs[1:]


def summary(runs: list[dict[str, float]]) -> dict[str, float]:
    return {
        key: statistics.median(r[key] for r in runs) for key in ("load_ms", "render_ms", "fetch_ms", "rows")
    }


async def run(n_jobs: int, repeat: int) -> dict[str, Any]:
    with running_stack("web-job-list", **ENV) as stack:  # type: ignore[arg-type]
        image = stack.root / "tiny.fits"
        write_simulation(SimulationSpec(size=64, seed=1, n_sources=2), image)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            file_id = (await upload(http, stack.v1, image))["uuid"]
            first = await submit(
                http, stack.v1, {"app": "trivial", "job_inputs": {"seconds": 0.1}, "data_inputs": file_id}
            )
            await wait_state(http, stack.v1, first, TERMINAL)
        client: MongoClient[dict[str, Any]] = MongoClient(MONGO_URL, tz_aware=True)
        jobs = client[f"{stack.db_prefix}_api"]["jobs"]
        template = jobs.find_one({"_id": first})
        assert template is not None
        baseline = await asyncio.to_thread(measure, stack.api, 1, repeat)
        await asyncio.to_thread(fill, jobs, template, n_jobs - 1)
        full = await asyncio.to_thread(measure, stack.api, n_jobs, repeat)
        client.close()
    return {
        "jobs": n_jobs,
        "repeat": repeat,
        "baseline": summary(baseline),
        "full": summary(full),
        "runs": {"baseline": baseline, "full": full},
        "load": loadavg(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    result = asyncio.run(run(args.jobs, args.repeat))
    write_result("web_job_list", result)
    base, full = result["baseline"], result["full"]
    rows = [
        [
            what,
            str(int(figures["rows"])),
            fmt(figures["load_ms"]),
            fmt(figures["render_ms"]),
            fmt(figures["fetch_ms"]),
        ]
        for what, figures in (("1 job (baseline)", base), (f"{args.jobs} jobs", full))
    ]
    print(markdown_table(["list", "rows", "load to rendered ms", "render ms", "fetch ms"], rows))
    print(
        f"\n{args.jobs} jobs vs baseline: load {fmt(full['load_ms'] / max(base['load_ms'], 1e-9), 2)}x, "
        f"render {fmt(full['render_ms'] / max(base['render_ms'], 1e-9), 2)}x; "
        f"target: load to rendered under {TARGET_MS:.0f} ms "
        f"({'met' if full['load_ms'] < TARGET_MS else 'NOT met'}). "
        f"Median of {args.repeat}; load {result['load']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
