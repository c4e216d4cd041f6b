"""End-to-end demo against a running stack, through the v1.0 API only.

Makes a simulated radio map with a known source list, uploads it, runs Aegean on it,
follows the job until it ends, downloads the output tarball and reports how many of
the injected sources the service found. Exits non-zero if anything goes wrong, so
``make up`` fails loudly instead of pretending the stack works.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import sys
import tarfile
import time
from pathlib import Path

import aiohttp

from caesar_testkit.skysim import SimulationSpec, crossmatch, write_simulation

TERMINAL = {"SUCCESS", "FAILURE", "TIMED-OUT", "CANCELED", "ABORTED"}


async def run(api: str, workdir: Path, size: int, timeout_s: float) -> int:
    v1 = f"{api.rstrip('/')}/caesar/api/v1.0"
    workdir.mkdir(parents=True, exist_ok=True)
    image = workdir / "demo-field.fits"
    spec = SimulationSpec(size=size, seed=2020)
    truth = write_simulation(spec, image, workdir / "demo-truth.ecsv")
    print(f"1/4 simulated a {size}x{size} map with {len(truth)} sources: {image}")

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
        form = aiohttp.FormData()
        form.add_field("file", image.read_bytes(), filename=image.name, content_type="application/fits")
        async with http.post(f"{v1}/upload", data=form) as resp:
            upload = await resp.json()
            if resp.status != 200:
                print(f"upload failed ({resp.status}): {upload}", file=sys.stderr)
                return 1
        print(f"2/4 uploaded as file {upload['uuid']} ({upload['size']:.2f} MiB)")

        job = {
            "app": "aegean",
            "job_inputs": {"seedthr": 5, "mergethr": 4},
            "data_inputs": upload["uuid"],
        }
        async with http.post(f"{v1}/job", json=job) as resp:
            submitted = await resp.json()
            if resp.status != 202:
                print(f"submit failed ({resp.status}): {submitted}", file=sys.stderr)
                return 1
        job_id = submitted["job_id"]
        print(f"3/4 submitted aegean job {job_id}")

        started = time.monotonic()
        state, last = "PENDING", ""
        while time.monotonic() - started < timeout_s:
            async with http.get(f"{v1}/job/{job_id}/status") as resp:
                status = await resp.json()
            state = status["state"]
            if state != last:
                print(f"    {time.monotonic() - started:6.1f} s  {state}")
                last = state
            if state in TERMINAL:
                break
            await asyncio.sleep(0.5)
        if state != "SUCCESS":
            print(f"job ended {state}: {status}", file=sys.stderr)
            return 1

        async with http.get(f"{v1}/job/{job_id}/output") as resp:
            blob = await resp.read()
    tarball = workdir / f"{job_id}.tar.gz"
    tarball.write_bytes(blob)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("catalog_comp.csv"))
        handle = tar.extractfile(member)
        assert handle is not None
        rows = list(csv.DictReader(io.TextIOWrapper(handle)))
    match = crossmatch(
        truth,
        [float(r["ra"]) for r in rows],
        [float(r["dec"]) for r in rows],
        spec.beam.bmaj_arcsec,
    )
    quality = f"completeness {match.completeness(10):.0%} above 10 sigma"
    quality += f", reliability {match.reliability:.0%}"
    print(f"4/4 Aegean found {len(rows)} sources; {match.n_matched} of {len(truth)} injected ({quality})")
    print(f"    output: {tarball}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api", default="http://127.0.0.1:8080")
    parser.add_argument("--workdir", type=Path, default=Path(".run/demo"))
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    return asyncio.run(run(args.api, args.workdir, args.size, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
