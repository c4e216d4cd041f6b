"""Every panel of the generated Grafana dashboards shows data from a live stack.

A real Prometheus (Debian's package: scripts/prometheus.sh install) scrapes this module's
stack and the local broker's rabbitmq_prometheus plugin every second, with the alert
rules of deploy/prometheus/alerts.yml loaded. A few jobs run through the v1 API (sfind and
aegean on a simulated sky, a test job that succeeds and one that fails); then each
panel's query, as Grafana would send it with every variable on "All", goes through
Prometheus' HTTP API and must return series with values. The queries are read from the
committed JSON (deploy/grafana/dashboards/*.json), so a test id names its dashboard,
panel and target.

The quota panel reads the gauges accounting exports under a quota policy; the stack gets
a generous one (CAESAR_QUOTAS_FILE), so nobody is held, and the panel is checked like the
others wherever the services know that setting (skipped, saying so, where they do not).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from caesar_common.settings import ServiceSettings
from caesar_testkit.devstack import SERVICES, Stack, free_port
from caesar_testkit.skysim import SimulationSpec, write_simulation
from tests.dashboard_support import ALERT_RULES, PanelQuery, concrete, panel_queries
from tests.e2e.conftest import make_stack, submit, upload, wait_state

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

RABBITMQ_PROMETHEUS_PORT = int(os.environ.get("CAESAR_RABBITMQ_PROMETHEUS_PORT", "15692"))
# Longer than the whole module runs: every counter's rate covers every job it ran.
WINDOW = "15m"
DATA_DEADLINE_S = 180.0
QUERIES = panel_queries()
# Quotas are a setting of every service once the quota work has landed.
QUOTAS_KNOWN = "quotas_file" in ServiceSettings.model_fields


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Gauges recounted, pools announced and outboxes swept every second."""
    policy = tmp_path_factory.mktemp("quotas") / "quotas.json"
    limits = {"running_jobs": 50, "cpu_hours_month": 1000, "stored_bytes": 10**12}
    policy.write_text(json.dumps({"default": limits}))
    yield from make_stack(
        tmp_path_factory.mktemp("stack"),
        CAESAR_SLOTS="2",
        CAESAR_HEARTBEAT_INTERVAL_S="1",
        CAESAR_METRICS_INTERVAL_S="1",
        CAESAR_POOL_STATUS_INTERVAL_S="1",
        CAESAR_OUTBOX_SWEEP_INTERVAL_S="1",
        CAESAR_ENABLE_TEST_APPS="true",
        CAESAR_QUOTAS_FILE=str(policy),
    )


def scrape_config(stack: Stack) -> dict[str, Any]:
    """What deploy/prometheus/prometheus.yml scrapes in compose, at this stack's ports."""
    jobs: list[dict[str, Any]] = [
        {
            "job_name": f"caesar-{name}",
            "static_configs": [{"targets": [f"127.0.0.1:{stack.ports[name]}"], "labels": {"service": name}}],
        }
        for name in SERVICES
    ]
    jobs.append(
        {
            "job_name": "rabbitmq",
            "metrics_path": "/metrics/detailed",
            "params": {"family": ["queue_coarse_metrics", "queue_consumer_count"]},
            "static_configs": [{"targets": [f"127.0.0.1:{RABBITMQ_PROMETHEUS_PORT}"]}],
        }
    )
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERT_RULES)],
        "scrape_configs": jobs,
    }


@dataclass
class Prometheus:
    url: str
    log: Path

    async def query(self, http: aiohttp.ClientSession, expr: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar) of ``expr`` now; a query error fails the test."""
        async with http.get(f"{self.url}/api/v1/query", params={"query": expr}) as resp:
            body = await resp.json()
        assert body.get("status") == "success", f"{expr}: {body}"
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    async def get(self, http: aiohttp.ClientSession, path: str) -> Any:
        async with http.get(f"{self.url}{path}") as resp:
            body = await resp.json()
        assert body.get("status") == "success", f"{path}: {body}"
        return body["data"]


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        if os.environ.get("CAESAR_TEST_RUN_ID"):
            pytest.fail(
                "prometheus missing although scripts/test.sh installs it (scripts/prometheus.sh install)"
            )
        pytest.skip("prometheus not installed (scripts/prometheus.sh install)")
    return path


@pytest.fixture(scope="module")
def prometheus(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Our own Prometheus on a free port of 127.0.0.1, its data in a temporary directory."""
    binary = prometheus_binary()
    root = tmp_path_factory.mktemp("prometheus")
    config = root / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(stack)))
    port = free_port()
    log = root / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log)
        yield Prometheus(url, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"prometheus exited:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:  # noqa: S310 (our loopback server)
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"prometheus not ready after {timeout_s} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


@dataclass
class Observed:
    """Each panel query's result once every one had data (or the deadline passed)."""

    results: dict[PanelQuery, list[dict[str, Any]]] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)
    waited_s: float = 0.0


def has_values(result: list[dict[str, Any]]) -> bool:
    """At least one series with a number (a quantile of no observation is NaN)."""
    return any(not math.isnan(float(series["value"][1])) for series in result)


def required(query: PanelQuery) -> bool:
    return QUOTAS_KNOWN or not query.needs_quotas


@pytest.fixture(scope="module")
async def observed(
    stack: Stack, prometheus: Prometheus, tmp_path_factory: pytest.TempPathFactory
) -> Observed:
    """Run the jobs, then poll Prometheus until every panel query shows data."""
    seen = Observed()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        # Every target scraped before the first job: rate() cannot see what a series'
        # first sample already holds (a queue wait observed a moment after submission).
        await wait_scraped(http, prometheus, {f"caesar-{name}" for name in SERVICES} | {"rabbitmq"})
        # One upload per job, as users do: jobs sharing an input are not what this measures.
        sky = tmp_path_factory.mktemp("sky")
        files = {}
        for seed, name in enumerate(("sfind", "aegean", "trivial", "failing"), start=13):
            image = sky / f"{name}.fits"
            write_simulation(SimulationSpec(size=128, seed=seed), image)
            files[name] = await upload(http, stack, image)
        payloads = {
            "sfind": {"app": "sfind", "job_inputs": {}},
            "aegean": {"app": "aegean", "job_inputs": {"bkgbox": 40, "bkggrid": 10}},
            "trivial": {"app": "trivial", "job_inputs": {"seconds": 1}},
            "failing": {"app": "trivial", "job_inputs": {"seconds": 0.5, "exit-code": 3}},
        }
        for name, payload in payloads.items():
            payload["data_inputs"] = files[name]
        seen.jobs = {name: await submit(http, stack, payload) for name, payload in payloads.items()}
        finals = {
            name: (await wait_state(http, stack, job_id))["state"] for name, job_id in seen.jobs.items()
        }
        assert finals == {"sfind": "SUCCESS", "aegean": "SUCCESS", "trivial": "SUCCESS", "failing": "FAILURE"}

        t0 = time.monotonic()
        while True:
            seen.results = {q: await prometheus.query(http, concrete(q.expr, WINDOW)) for q in QUERIES}
            missing = [q for q in QUERIES if required(q) and not has_values(seen.results[q])]
            if not missing or time.monotonic() - t0 > DATA_DEADLINE_S:
                break
            await asyncio.sleep(1.0)  # the next scrapes and rule evaluations
        seen.waited_s = time.monotonic() - t0
    report(seen)
    return seen


async def wait_scraped(http: aiohttp.ClientSession, prometheus: Prometheus, jobs: set[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        up = {s["metric"]["job"] for s in await prometheus.query(http, "up == 1")}
        if jobs <= up:
            return
        assert time.monotonic() < deadline, (
            f"never scraped: {sorted(jobs - up)}\n{prometheus.log.read_text()[-2000:]}"
        )
        await asyncio.sleep(0.2)


def report(seen: Observed) -> None:
    """Which panel showed how many series (pytest -s, or the log of a failure)."""
    print(f"\npanel queries after {seen.waited_s:.1f} s of polling:")
    for query, result in seen.results.items():
        mark = "data" if has_values(result) else "NO DATA"
        quota = " (quota gauges)" if query.needs_quotas else ""
        print(f"  {mark:8} {len(result):3} series  {query}{quota}")


@pytest.mark.parametrize("query", QUERIES, ids=str)
def test_panel_query_has_data(query: PanelQuery, observed: Observed) -> None:
    if query.needs_quotas and not QUOTAS_KNOWN:
        pytest.skip("the services know no quota policy (CAESAR_QUOTAS_FILE) yet: no quota gauges")
    result = observed.results[query]
    assert has_values(result), (
        f"{query}: no data after {observed.waited_s:.0f} s\n  expr: {concrete(query.expr, WINDOW)}\n"
        f"  result: {result}"
    )


async def test_failure_and_usage_panels_show_these_jobs(
    observed: Observed, prometheus: Prometheus, http: aiohttp.ClientSession
) -> None:
    """Not just any data: the failing job's reason, and each app's runs."""
    per_app = {"sfind": 1.0, "aegean": 1.0, "trivial": 2.0}
    await eventually(
        http,
        prometheus,
        'sum by (app, reason) (caesar_job_failures_total{app="trivial"})',
        {("trivial", "app_error"): 1.0},
        ("app", "reason"),
    )
    await eventually(
        http, prometheus, "sum by (app) (caesar_api_jobs_submitted_total) > 0", per_app, ("app",)
    )
    await eventually(
        http, prometheus, "sum by (app) (caesar_accounting_user_jobs_total) > 0", per_app, ("app",)
    )


async def eventually(
    http: aiohttp.ClientSession,
    prometheus: Prometheus,
    expr: str,
    expected: dict[Any, float],
    labels: tuple[str, ...],
    timeout_s: float = 30.0,
) -> None:
    """Poll ``expr`` until its series (keyed by ``labels``) have the expected values.

    What a panel showed first may predate the last scrape of a counter that moved after
    it (accounting records an outcome a moment after the job's status says it ended).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = await prometheus.query(http, expr)
        got = {
            (s["metric"][labels[0]] if len(labels) == 1 else tuple(s["metric"][k] for k in labels)): float(
                s["value"][1]
            )
            for s in result
        }
        if got == expected:
            return
        assert time.monotonic() < deadline, f"{expr}: {got} != {expected}"
        await asyncio.sleep(0.5)


async def test_queue_depths_include_this_stack_s_queues(
    observed: Observed, prometheus: Prometheus, stack: Stack, http: aiohttp.ClientSession
) -> None:
    """The broker's per-queue series name our vhost's queues (the plugin's detailed endpoint)."""
    vhost = urllib.parse.unquote(urllib.parse.urlsplit(stack.amqp_url).path.lstrip("/"))
    series = await prometheus.query(http, f'rabbitmq_detailed_queue_messages_ready{{vhost="{vhost}"}}')
    queues = {s["metric"]["queue"] for s in series}
    assert {"scheduler.events", "monitor.events", "accounting.events"} <= queues, queues


async def test_prometheus_loaded_and_evaluates_the_alert_rules(
    observed: Observed, prometheus: Prometheus, http: aiohttp.ClientSession
) -> None:
    expected = {
        rule["alert"]: rule["expr"]
        for group in yaml.safe_load(ALERT_RULES.read_text())["groups"]
        for rule in group["rules"]
    }
    deadline = time.monotonic() + 30
    while True:
        groups = (await prometheus.get(http, "/api/v1/rules"))["groups"]
        rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
        if all(rules.get(name, {}).get("health") == "ok" for name in expected) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert set(rules) == set(expected)
    for name, expr in expected.items():
        assert rules[name]["health"] == "ok", f"{name}: {rules[name].get('lastError')}"
        await prometheus.query(http, expr)  # evaluates: a query error fails here
    # A healthy stack with a failed job fires nothing (one failure is no spike).
    firing = [a for a in (await prometheus.get(http, "/api/v1/alerts"))["alerts"] if a["state"] == "firing"]
    assert not firing, firing
