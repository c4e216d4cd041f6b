"""The test Kubernetes cluster of ``scripts/k8s.sh``, as pytest fixtures.

The cluster is real (etcd, kube-apiserver with RBAC, the controller manager's Job and
garbage-collector controllers, the scheduler), with kwok playing the node: a pod's fate
is chosen by its annotation :data:`OUTCOME_ANNOTATION` (see scripts/k8s/kwok-stages.yaml).

Each test gets a namespace of its own, with the runner's ServiceAccount, Role and
RoleBinding applied from ``deploy/kubernetes/base/runner-rbac.yaml`` and a real token of
that ServiceAccount (TokenRequest): the executor is tested with exactly the privileges
the manifests grant it, not as a cluster admin.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lightkube import AsyncClient
from lightkube.codecs import load_all_yaml
from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.core.exceptions import ApiError
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.core_v1 import (
    HostPathVolumeSource,
    ObjectReference,
    PersistentVolumeClaimSpec,
    PersistentVolumeSpec,
    VolumeResourceRequirements,
)
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, PersistentVolume, PersistentVolumeClaim, ServiceAccount

REPO = Path(__file__).resolve().parents[1]
K8S_SH = REPO / "scripts" / "k8s.sh"
RUNNER_RBAC = REPO / "deploy" / "kubernetes" / "base" / "runner-rbac.yaml"
RUNNER_ACCOUNT = "caesar-runner"
CLAIMS = ("caesar-data", "caesar-jobs")
"""The runner's default claims (uploads, job directories), made in every test namespace."""
OUTCOME_ANNOTATION = "kwok.caesar-rest.io/outcome"
"""Pod annotation read by kwok's stages: ``succeed`` (default), ``fail-<N>``, ``hang``, ``evict``."""
NAMESPACE_READY_S = 30.0


def k8s_env() -> dict[str, str]:
    """``scripts/k8s.sh env`` as a mapping (kubeconfig and kubectl paths)."""
    out = subprocess.run(
        [str(K8S_SH), "env"], check=True, capture_output=True, text=True, env={**os.environ}
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def kubectl_path() -> Path:
    """The kubectl built by ``scripts/k8s.sh install``; fails the test if it is missing."""
    path = Path(k8s_env()["CAESAR_KUBECTL"])
    if not path.is_file():
        pytest.fail(f"kubectl is not built ({path}); run scripts/k8s.sh install")
    return path


@dataclass(frozen=True)
class KubeNamespace:
    """A fresh namespace holding the runner's identity, and configs to act in it."""

    name: str
    runner_kubeconfig: dict[str, Any]
    """The ``caesar-runner`` ServiceAccount's token: the manifests' Role, nothing more."""
    admin_config: KubeConfig

    @property
    def runner_config(self) -> KubeConfig:
        return KubeConfig.from_dict(self.runner_kubeconfig)

    def write_runner_kubeconfig(self, path: Path) -> Path:
        """The runner's kubeconfig as a file (mode 0600), for a runner process."""
        path.write_text(json.dumps(self.runner_kubeconfig))
        path.chmod(0o600)
        return path


def _single(config: KubeConfig) -> SingleConfig:
    single = config.get()
    assert single is not None, "the kubeconfig has no current context"
    return single


def token_kubeconfig(admin: KubeConfig, token: str, namespace: str) -> dict[str, Any]:
    """A kubeconfig document for the same cluster that authenticates with ``token``."""
    cluster = _single(admin).cluster
    ca_data = cluster.certificate_auth_data
    if ca_data is None:
        assert cluster.certificate_auth is not None, "the admin kubeconfig names no CA"
        ca_data = base64.b64encode(Path(cluster.certificate_auth).read_bytes()).decode()
    context = {"cluster": "test", "user": RUNNER_ACCOUNT, "namespace": namespace}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": cluster.server, "certificate-authority-data": ca_data}}
        ],
        "users": [{"name": RUNNER_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "test", "context": context}],
        "current-context": "test",
    }


def runner_rbac_objects(namespace: str) -> list[Any]:
    """The manifests' runner RBAC, placed in ``namespace`` (the RoleBinding's subject too)."""
    objects = load_all_yaml(RUNNER_RBAC.read_text())
    for obj in objects:
        assert obj.metadata is not None
        obj.metadata.namespace = namespace
        for subject in getattr(obj, "subjects", None) or []:
            if subject.kind == "ServiceAccount":
                subject.namespace = namespace
    return objects


def claim_objects(namespace: str) -> list[PersistentVolume | PersistentVolumeClaim]:
    """:data:`CLAIMS` in ``namespace``, each bound to a volume of its own.

    The volumes are never mounted (kwok runs no container), but the scheduler places no
    pod whose claim is unbound, so they must exist and be bound as in a real cluster.
    """
    objects: list[PersistentVolume | PersistentVolumeClaim] = []
    for claim in CLAIMS:
        volume = f"{namespace}-{claim}"
        objects.append(
            PersistentVolume(
                metadata=ObjectMeta(name=volume, labels={"caesar-rest.io/test": "true"}),
                spec=PersistentVolumeSpec(
                    accessModes=["ReadWriteMany"],
                    capacity={"storage": "1Gi"},
                    hostPath=HostPathVolumeSource(path=f"/nonexistent/{volume}"),
                    storageClassName="caesar-test",
                    claimRef=ObjectReference(namespace=namespace, name=claim),
                ),
            )
        )
        objects.append(
            PersistentVolumeClaim(
                metadata=ObjectMeta(name=claim, namespace=namespace),
                spec=PersistentVolumeClaimSpec(
                    accessModes=["ReadWriteMany"],
                    resources=VolumeResourceRequirements(requests={"storage": "1Gi"}),
                    storageClassName="caesar-test",
                    volumeName=volume,
                ),
            )
        )
    return objects


async def _await_bound_claims(client: AsyncClient, namespace: str) -> None:
    """The scheduler places no pod whose claim is still unbound: wait for the binder."""
    deadline = time.monotonic() + NAMESPACE_READY_S
    for claim in CLAIMS:
        while True:
            found = await client.get(PersistentVolumeClaim, claim, namespace=namespace)
            if found.status is not None and found.status.phase == "Bound":
                break
            assert time.monotonic() < deadline, f"claim {claim} of {namespace} is still unbound"
            await asyncio.sleep(0.2)  # polling an API object, not ordering events


async def _await_default_account(client: AsyncClient, namespace: str) -> None:
    """Pods are refused until the service-account controller made ``default``."""
    deadline = time.monotonic() + NAMESPACE_READY_S
    while True:
        try:
            await client.get(ServiceAccount, "default", namespace=namespace)
            return
        except ApiError as exc:
            if exc.status.code != 404 or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)  # polling an API object, not ordering events


def load_admin_config() -> KubeConfig:
    """The cluster-admin kubeconfig of the running test cluster; fails if it is not up."""
    path = Path(k8s_env()["CAESAR_K8S_ADMIN_KUBECONFIG"])
    if not path.is_file():
        pytest.fail(f"no Kubernetes test cluster ({path} is missing); run scripts/k8s.sh start")
    return KubeConfig.from_file(path)


@pytest.fixture(scope="session")
def kube_admin_config() -> KubeConfig:
    """:func:`load_admin_config`, once per session."""
    return load_admin_config()


@asynccontextmanager
async def runner_namespace(admin: KubeConfig) -> AsyncIterator[KubeNamespace]:
    """A namespace of its own with the runner's RBAC, its claims and a token bound to it."""
    name = f"caesar-test-{uuid.uuid4().hex[:10]}"
    client = AsyncClient(admin, field_manager="caesar-tests")
    try:
        await client.create(Namespace(metadata=ObjectMeta(name=name, labels={"caesar-rest.io/test": "true"})))
        for obj in runner_rbac_objects(name):
            await client.create(obj)
        for volume_or_claim in claim_objects(name):
            await client.create(volume_or_claim)
        await _await_default_account(client, name)
        await _await_bound_claims(client, name)
        request = ServiceAccount.Token(
            metadata=ObjectMeta(name=RUNNER_ACCOUNT, namespace=name),
            spec=TokenRequestSpec(audiences=[], expirationSeconds=3600),
        )
        issued = await client.create(request, RUNNER_ACCOUNT, namespace=name)
        assert issued.status is not None
        assert issued.status.token
        yield KubeNamespace(name, token_kubeconfig(admin, issued.status.token, name), admin)
    finally:
        for kind, obj_name in [(Namespace, name)] + [(PersistentVolume, f"{name}-{c}") for c in CLAIMS]:
            try:
                await client.delete(kind, obj_name)
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
        await client.close()


@pytest.fixture
async def kube_namespace(kube_admin_config: KubeConfig) -> AsyncIterator[KubeNamespace]:
    """:func:`runner_namespace` for one test."""
    async with runner_namespace(kube_admin_config) as namespace:
        yield namespace
