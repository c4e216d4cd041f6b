"""The alert rules (deploy/prometheus/alerts.yml) are valid, and each one is unit-tested
with promtool: it fires where it must and stays quiet in the look-alike case.

Whether a real Prometheus loads them next to a live stack is tests/e2e/test_dashboards.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.dashboard_support import ALERT_RULES, ALERT_TESTS, PROMETHEUS_DIR, REPO, run_promtool

ALERTS = {"CaesarJobStuck", "CaesarDeadLetters", "CaesarPoolWithoutRunners", "CaesarFailureRateSpike"}
SOURCES = [*REPO.glob("libs/*/src/**/*.py"), *REPO.glob("services/*/src/**/*.py")]


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    result = run_promtool("check", "rules", str(ALERT_RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    # promtool resolves rule_files relative to the test file.
    result = run_promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_issue_s_alerts_exist_with_severity_and_text() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    assert by_name.keys() >= ALERTS
    for name, rule in by_name.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["description"], name
        assert rule.get("for"), f"{name}: fires on one bad evaluation"


def test_every_alert_is_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test") or []:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in rules()}
    assert firing == names, f"never seen firing: {sorted(names - firing)}"
    assert quiet == names, f"never seen quiet: {sorted(names - quiet)}"


def test_rules_read_metrics_the_code_exports() -> None:
    source = "\n".join(path.read_text() for path in SOURCES)
    for rule in rules():
        for metric in re.findall(r"\bcaesar_[a-z_]+\b", rule["expr"]):
            assert f'"{metric}"' in source, f"{rule['alert']}: no metric {metric} in libs/ or services/"


def test_compose_prometheus_config_is_valid(tmp_path: Path) -> None:
    """deploy/prometheus/prometheus.yml as compose mounts it, rules included."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    config["rule_files"] = [str(ALERT_RULES)]  # where compose mounts it, here
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = run_promtool("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
