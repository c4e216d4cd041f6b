"""``scripts/jaeger.sh``: the Jaeger configuration it writes, without building or running it.

Every listener of the Jaeger it starts must be on 127.0.0.1 and at the ports it is given;
everything of the all-in-one defaults that caesar-rest does not use must be left out.
The running binary's sockets are checked end to end in ``tests/e2e/test_tracing.py``.
Run with a temporary run and tools directory, so nothing of the checkout's is touched.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "jaeger.sh"
PORTS = {"CAESAR_JAEGER_OTLP_PORT": "24318", "CAESAR_JAEGER_UI_PORT": "26686"}


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "CAESAR_RUN_DIR": str(tmp_path / "run"),
        "CAESAR_TOOLS_DIR": str(tmp_path / "tools"),
    }
    full.update(env)
    return subprocess.run(
        [str(SCRIPT), *args], env=full, capture_output=True, text=True, timeout=60, check=False
    )


def endpoints(node: Any, path: str = "") -> dict[str, str]:
    """Every ``endpoint`` value of the configuration, by its path."""
    found: dict[str, str] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "endpoint":
                found[where] = str(value)
            else:
                found.update(endpoints(value, where))
    return found


def test_config_listens_on_loopback_only_and_uses_the_given_ports(tmp_path: Path) -> None:
    done = run(tmp_path, "config", CAESAR_JAEGER_QUERY_GRPC_PORT="26685", **PORTS)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    assert endpoints(config) == {
        "extensions.jaeger_query.http.endpoint": "127.0.0.1:26686",
        "extensions.jaeger_query.grpc.endpoint": "127.0.0.1:26685",
        "receivers.otlp.protocols.http.endpoint": "127.0.0.1:24318",
    }
    # Only what is used: OTLP over HTTP in (no gRPC, Jaeger or Zipkin receivers), the
    # memory store and the query service; no health check, zpages, expvar, pprof or
    # sampling extension; no metrics endpoint (:8888); no self-tracing to localhost:4317.
    assert list(config["receivers"]) == ["otlp"]
    assert list(config["receivers"]["otlp"]["protocols"]) == ["http"]
    assert config["service"]["extensions"] == ["jaeger_storage", "jaeger_query"]
    assert config["service"]["pipelines"] == {
        "traces": {"receivers": ["otlp"], "exporters": ["jaeger_storage_exporter"]}
    }
    assert config["service"]["telemetry"]["metrics"] == {"level": "none"}
    assert config["extensions"]["jaeger_query"]["enable_tracing"] is False
    assert config["extensions"]["jaeger_storage"]["backends"] == {
        "memstore": {"memory": {"max_traces": 100000}}
    }


def test_env_and_url_point_at_the_configured_ports(tmp_path: Path) -> None:
    done = run(tmp_path, "env", "url", **PORTS)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:24318",
        "http://127.0.0.1:26686",
    ]


def test_nothing_is_installed_in_an_empty_tools_dir(tmp_path: Path) -> None:
    done = run(tmp_path, "installed")
    assert done.returncode == 1
    assert done.stdout == ""


def test_a_binary_of_another_version_is_not_taken_for_it(tmp_path: Path) -> None:
    fake = tmp_path / "tools" / "jaeger-v1.76.0" / "jaeger"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    # With Go at hand its build record is read: a file that has none is not Jaeger v1.76.0.
    go = "/usr/local/go/bin/go"
    if Path(go).exists():
        assert run(tmp_path, "installed", CAESAR_GO=go).returncode == 1
    # Without Go the directory's version is trusted.
    assert run(tmp_path, "installed", CAESAR_GO="/nonexistent/go").stdout.strip() == str(fake)


def test_stop_with_a_tag_that_started_nothing_stops_nothing(tmp_path: Path) -> None:
    done = run(tmp_path, "stop", "--tag", "unit")
    assert done.returncode == 0, done.stderr
    assert "not started with tag 'unit'" in done.stderr
    status = run(tmp_path, "status", CAESAR_JAEGER_UI_PORT="1")
    assert status.stdout.strip() == "jaeger:     stopped"


def test_unknown_commands_are_refused(tmp_path: Path) -> None:
    done = run(tmp_path, "build")
    assert done.returncode != 0
    assert "usage:" in done.stderr
