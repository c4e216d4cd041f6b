"""Each package stays lean and declares what it imports.

Why: the scheduler, monitor and accounting images must not carry (or pay the start-up
time and memory of) the science stack; numpy and astropy belong to the runner (its
catalogues), the api (FITS headers) and the dev-only testkit. And a package that imports
a module it does not declare works only while some other workspace member happens to
pull it in: the per-service Docker images (``uv sync --package``) would break first.
Both checks read the code, so they hold whatever the services' internals look like.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = [
    REPO / "libs" / "common",
    REPO / "libs" / "testkit",
    *sorted((REPO / "services").glob("*")),
    REPO / "clients" / "cli",
]
HEAVY = ("numpy", "astropy")

# Distributions whose import names differ from ``name.replace("-", "_")``. Dotted roots
# matter for namespace packages: the longest matching root decides which distribution an
# import needs, so ``opentelemetry.sdk`` needs opentelemetry-sdk, not opentelemetry-api.
DIST_MODULES: dict[str, tuple[str, ...]] = {
    "pyyaml": ("yaml",),
    "swagger-ui-py": ("swagger_ui",),
    "python-keycloak": ("keycloak",),
    "aegeantools": ("AegeanTools",),
    "pillow": ("PIL",),
    "pymongo": ("pymongo", "bson", "gridfs"),
    "opentelemetry-api": ("opentelemetry",),
    "opentelemetry-sdk": ("opentelemetry.sdk",),
    "opentelemetry-exporter-otlp-proto-http": ("opentelemetry.exporter.otlp.proto.http",),
    "opentelemetry-instrumentation-aio-pika": ("opentelemetry.instrumentation.aio_pika",),
    "opentelemetry-instrumentation-pymongo": ("opentelemetry.instrumentation.pymongo",),
    "opentelemetry-instrumentation-aiohttp-server": ("opentelemetry.instrumentation.aiohttp_server",),
}


def normalise(dist: str) -> str:
    """PEP 503 name, so ``Prometheus_Client`` and ``prometheus-client`` compare equal."""
    return re.sub(r"[-_.]+", "-", dist).lower()


def declared(package: Path) -> set[str]:
    """The distributions ``package``'s pyproject lists as run-time dependencies."""
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    names = set()
    for requirement in project.get("dependencies", []):
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert match, requirement
        names.add(normalise(match.group(0)))
    return names


def module_roots(dists: set[str]) -> dict[str, str]:
    """Import root -> distribution, for the declared distributions and every mapped one."""
    roots = {root: dist for dist, mods in DIST_MODULES.items() for root in mods}
    for dist in dists:
        for root in DIST_MODULES.get(dist, (dist.replace("-", "_"),)):
            roots[root] = dist
    return roots


def imports(source_dir: Path) -> Iterator[tuple[str, Path, int]]:
    """Every absolute import in the tree: (dotted module, file, line)."""
    for path in sorted(source_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield alias.name, path, node.lineno
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield node.module, path, node.lineno


def distribution_of(module: str, roots: dict[str, str]) -> str | None:
    """The distribution whose import root is the longest dotted prefix of ``module``."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        dist = roots.get(".".join(parts[:n]))
        if dist is not None:
            return dist
    return None


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_every_third_party_import_is_declared(package: Path) -> None:
    deps = declared(package)
    roots = module_roots(deps)
    (own,) = [p.name for p in (package / "src").iterdir() if p.name.startswith("caesar_")]
    missing = []
    for module, path, line in imports(package / "src"):
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top in ("__future__", own):
            continue
        dist = distribution_of(module, roots)
        if dist is None or dist not in deps:
            need = dist or f"the distribution providing {top} (map it in DIST_MODULES if it is not {top})"
            missing.append(f"{path.relative_to(REPO)}:{line}: import {module} needs {need}")
    assert not missing, f"{package.name}/pyproject.toml does not declare:\n" + "\n".join(missing)


def test_the_testkit_is_dev_only() -> None:
    """No service (nor the shared library) may depend on the simulator and the dev stack."""
    for package in PACKAGES:
        assert "caesar-testkit" not in declared(package), package.name
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "caesar-testkit" in root["dependency-groups"]["dev"]
    assert all(normalise(d) != "caesar-testkit" for d in root["project"]["dependencies"])


# Imports the entry point and bootstrap first (what a service process really loads), then
# every other module of the package, and names the first one that pulls a heavy module.
_PROBE = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    package, heavy = sys.argv[1], sys.argv[2].split(",")
    first = [package + ".__main__", package + ".bootstrap"]
    pkg = importlib.import_module(package)
    rest = [m.name for m in pkgutil.walk_packages(pkg.__path__, package + ".")]
    for name in first + sorted(set(rest) - set(first)):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        pulled = [h for h in heavy if h in sys.modules]
        if pulled:
            print(f"{name} pulls {', '.join(pulled)}")
            sys.exit(1)
    """
)


@pytest.mark.parametrize(
    "package", ["caesar_common", "caesar_scheduler", "caesar_monitor", "caesar_accounting"]
)
def test_lean_services_do_not_import_the_science_stack(package: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, package, ",".join(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
