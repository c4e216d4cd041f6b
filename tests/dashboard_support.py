"""What the dashboard and alert-rule tests share: the generated dashboards' queries, made
concrete, and promtool.

A Grafana query holds variables Prometheus does not know (``$__rate_interval``,
``$__range``, the dashboards' own ``$app`` ...); :func:`concrete` puts in what Grafana
would for the "All" selection and a time window, so Prometheus (or promtool) can run it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent
GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARD_DIR = GRAFANA_DIR / "dashboards"
GENERATOR = GRAFANA_DIR / "dashboards.py"
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
ALERT_RULES = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"

# Grafana's interval variables; every other $name is a dashboard variable set to "All".
_WINDOW_VARIABLES = re.compile(r"\$(?:__rate_interval|__range|__interval)\b")
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
# Exported by accounting once a quota policy is configured (the quota work in progress).
QUOTA_METRICS = ("caesar_quota_used", "caesar_quota_limit")


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel of a generated dashboard."""

    dashboard: str
    panel: str
    ref_id: str
    expr: str

    @property
    def needs_quotas(self) -> bool:
        return any(metric in self.expr for metric in QUOTA_METRICS)

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} [{self.ref_id}]"


def panel_queries(directory: Path = DASHBOARD_DIR) -> list[PanelQuery]:
    """Every target of every panel of the committed dashboards, in file and panel order."""
    found = []
    for path in sorted(directory.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets") or []:
                found.append(PanelQuery(board["title"], panel["title"], target["refId"], target["expr"]))
    return found


def concrete(expr: str, window: str = "10m") -> str:
    """``expr`` with Grafana's variables replaced: windows by ``window``, others by ``.*``."""
    expr = _WINDOW_VARIABLES.sub(window, expr)
    return _VARIABLE.sub(".*", expr)


def load_generator() -> ModuleType:
    """deploy/grafana/dashboards.py as a module (deploy/ is no package)."""
    spec = importlib.util.spec_from_file_location("caesar_dashboards", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def promtool() -> str:
    """The promtool binary (Debian's prometheus package: scripts/prometheus.sh install).

    Missing, the test is skipped, except under `make test` (scripts/test.sh installs it).
    """
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CAESAR_TEST_RUN_ID"):
            pytest.fail(
                "promtool missing although scripts/test.sh installs it (scripts/prometheus.sh install)"
            )
        pytest.skip("promtool not installed (scripts/prometheus.sh install)")
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, check=False)
