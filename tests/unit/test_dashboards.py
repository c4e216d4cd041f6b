"""The Grafana dashboards are code: the committed JSON is what the generator writes, every
panel reads the provisioned data source, and every query is valid PromQL on metrics the
services export.

Whether the queries return data from a live stack is tests/e2e/test_dashboards.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.dashboard_support import (
    DASHBOARD_DIR,
    GRAFANA_DIR,
    REPO,
    concrete,
    load_generator,
    panel_queries,
    run_promtool,
)

generator = load_generator()
METRIC_RE = re.compile(r"\b(caesar_[a-z_]+|rabbitmq_[a-z_]+)\b")
SOURCES = [*REPO.glob("libs/*/src/**/*.py"), *REPO.glob("services/*/src/**/*.py")]


def boards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def test_committed_dashboards_are_what_the_generator_writes() -> None:
    rendered = generator.render_all()
    committed = {path.name: path.read_text() for path in DASHBOARD_DIR.glob("*.json")}
    assert set(committed) == set(rendered), "a dashboard file is missing or left over"
    stale = sorted(name for name, text in rendered.items() if committed[name] != text)
    assert not stale, f"stale {stale}: run `make dashboards` (python deploy/grafana/dashboards.py)"
    assert generator.main(["--check"]) == 0


def test_the_check_notices_a_stale_file(tmp_path: Path, monkeypatch: Any) -> None:
    for name, text in generator.render_all().items():
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(generator, "OUT_DIR", tmp_path)
    assert generator.main(["--check"]) == 0
    (tmp_path / "jobs.json").write_text("{}\n")
    assert generator.main(["--check"]) == 1
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0


def test_four_dashboards_with_fixed_uids_and_the_provisioned_data_source() -> None:
    loaded = boards()
    assert set(loaded) == {"jobs.json", "runners.json", "users.json", "infrastructure.json"}
    assert [b["uid"] for b in loaded.values()] == [
        "caesar-infrastructure",
        "caesar-jobs",
        "caesar-runners",
        "caesar-users",
    ]
    provisioned = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = provisioned["datasources"][0]["uid"]
    assert uid == generator.DATASOURCE_UID
    for name, board in loaded.items():
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}, (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            assert panel.get("description"), f"{name}: {panel['title']} says nothing about what it shows"
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid
                assert target["expr"].strip()
        for variable in board["templating"]["list"]:
            assert variable["datasource"]["uid"] == uid
            assert variable["allValue"] == ".*"


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query (variables filled in) as a recording rule."""
    queries = panel_queries()
    rules = {
        "groups": [
            {
                "name": "panels",
                "rules": [
                    {"record": f"panel:query_{i}", "expr": concrete(q.expr)} for i, q in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_queries_read_metrics_the_code_exports() -> None:
    """A renamed metric breaks its panels: each caesar_* name is defined somewhere."""
    source = "\n".join(path.read_text() for path in SOURCES)
    for query in panel_queries():
        for metric in METRIC_RE.findall(query.expr):
            if metric.startswith("rabbitmq_"):
                continue  # RabbitMQ's plugin: the e2e test reads them from the real broker
            base = re.sub(r"_(bucket|count|sum)$", "", metric)
            assert f'"{base}"' in source, f"{query}: no metric {base} in libs/ or services/"


def test_concrete_fills_in_grafana_variables() -> None:
    expr = 'sum by (app) (rate(x_total{app=~"$app", pool=~"${pool}"}[$__rate_interval])) / y[$__range]'
    assert concrete(expr, "5m") == 'sum by (app) (rate(x_total{app=~".*", pool=~".*"}[5m])) / y[5m]'
    assert not [q for q in panel_queries() if "$" in concrete(q.expr)]
