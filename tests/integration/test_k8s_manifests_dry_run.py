"""The Kubernetes manifests pass a server-side dry-run on a real API server (issue 16).

The API server of ``scripts/k8s.sh`` (v1.34, RBAC on) gets the vendored CRDs of the
optional components for real (server-side apply: they are cluster-scoped and shared with
other tests, so applying them again is harmless), then every kustomization a user may
apply (tests/unit/test_k8s_manifests.py lists them) is applied with
``--server-side --dry-run=server`` into a fresh namespace: the server runs its defaulting,
validation, admission (RBAC escalation checks of the Role included) and the CRDs'
schemas, and stores nothing.
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.kube_support import k8s_env
from tests.unit.test_k8s_manifests import (
    CRD_DIR,
    kubectl_binary,
    kustomization_targets,
    kustomize,
    wrapper_kustomization,
)

pytestmark = pytest.mark.kubernetes

FIELD_MANAGER = "caesar-test"
ESTABLISHED_TIMEOUT = "60s"


@dataclass(frozen=True)
class Kubectl:
    """kubectl as the cluster's administrator."""

    binary: str
    kubeconfig: str

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, "--kubeconfig", self.kubeconfig, *args], capture_output=True, text=True, timeout=180
        )

    def check(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, f"{shlex.join(result.args)} failed:\n{result.stderr}"
        return result.stdout


def admin_kubeconfig() -> str:
    """The cluster-admin kubeconfig of the running test cluster; fails if it is not up."""
    path = k8s_env()["CAESAR_K8S_ADMIN_KUBECONFIG"]
    if not Path(path).is_file():
        pytest.fail(f"no Kubernetes test cluster ({path} is missing); run scripts/k8s.sh start")
    return path


@pytest.fixture(scope="module")
def kubectl() -> Kubectl:
    tool = Kubectl(kubectl_binary(), admin_kubeconfig())
    crd_names = [
        doc["metadata"]["name"]
        for path in sorted(CRD_DIR.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    tool.check(
        "apply", "--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}", "-f", str(CRD_DIR)
    )
    tool.check(
        "wait",
        "--for=condition=Established",
        f"--timeout={ESTABLISHED_TIMEOUT}",
        *(f"crd/{n}" for n in crd_names),
    )
    return tool


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"caesar-manifests-{uuid.uuid4().hex[:8]}"
    kubectl.check("create", "namespace", name)
    yield name
    kubectl.check("delete", "namespace", name, "--wait=false")


def dry_run(kubectl: Kubectl, directory: Path) -> subprocess.CompletedProcess[str]:
    return kubectl.run(
        "apply", "--server-side", "--dry-run=server", f"--field-manager={FIELD_MANAGER}", "-k", str(directory)
    )


@pytest.mark.parametrize("target", sorted(kustomization_targets()))
def test_kustomization_passes_server_side_dry_run(kubectl: Kubectl, namespace: str, target: str) -> None:
    resource, components = kustomization_targets()[target]
    with tempfile.TemporaryDirectory() as tmp:
        directory = wrapper_kustomization(Path(tmp), resource, components, namespace)
        objects = kustomize(kubectl.binary, directory)
        result = dry_run(kubectl, directory)
    assert result.returncode == 0, f"{target}: {shlex.join(result.args)} failed:\n{result.stderr}"
    applied = [line for line in result.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(applied) == len(objects), f"{target}: not every object was sent:\n{result.stdout}"
    # A dry run stores nothing (kube-root-ca.crt is the controller manager's, if it runs).
    stored = kubectl.check("get", "deployments,roles,configmaps", "-n", namespace, "-o", "name").split()
    assert set(stored) <= {"configmap/kube-root-ca.crt"}, stored


def test_the_dry_run_refuses_what_the_server_would(kubectl: Kubectl, namespace: str) -> None:
    """The check can fail: a ScaledObject without triggers (its CRD requires them) is refused."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "broken.yaml").write_text(
            yaml.safe_dump_all(
                [
                    {
                        "apiVersion": "keda.sh/v1alpha1",
                        "kind": "ScaledObject",
                        "metadata": {"name": "broken"},
                        "spec": {"scaleTargetRef": {"name": "caesar-runner"}},
                    }
                ]
            )
        )
        (directory / "kustomization.yaml").write_text(
            yaml.safe_dump({"namespace": namespace, "resources": ["broken.yaml"]})
        )
        result = dry_run(kubectl, directory)
    assert result.returncode != 0
    assert "triggers" in result.stderr, result.stderr
