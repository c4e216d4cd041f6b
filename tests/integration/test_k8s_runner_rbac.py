"""The runner's Kubernetes privileges are the manifests' Role, and nothing more.

The token is a real ServiceAccount token (TokenRequest) of ``caesar-runner``, bound by
``deploy/kubernetes/base/runner-rbac.yaml`` (tests/kube_support.py): what these tests
allow or refuse is what a deployed runner is allowed or refused.
"""

from __future__ import annotations

import pytest
from lightkube import ALL_NS, AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import ConfigMap, Pod, Secret

from tests.kube_support import KubeNamespace

pytestmark = pytest.mark.kubernetes


async def _status_of_listing(client: AsyncClient, kind: type, namespace: str | None) -> int:
    try:
        async for _ in client.list(kind, namespace=namespace):  # type: ignore[call-overload]
            pass
    except ApiError as exc:
        return exc.status.code or 0
    return 200


async def test_runner_may_watch_jobs_and_pods_of_its_namespace(kube_namespace: KubeNamespace) -> None:
    client = AsyncClient(kube_namespace.runner_config)
    try:
        for kind in (Job, Pod):
            assert await _status_of_listing(client, kind, kube_namespace.name) == 200
    finally:
        await client.close()


@pytest.mark.parametrize("kind", [Secret, ConfigMap, Deployment])
async def test_runner_may_not_read_anything_else(kube_namespace: KubeNamespace, kind: type) -> None:
    client = AsyncClient(kube_namespace.runner_config)
    try:
        assert await _status_of_listing(client, kind, kube_namespace.name) == 403
    finally:
        await client.close()


async def test_runner_may_not_leave_its_namespace(kube_namespace: KubeNamespace) -> None:
    client = AsyncClient(kube_namespace.runner_config)
    try:
        assert await _status_of_listing(client, Job, "default") == 403
        assert await _status_of_listing(client, Pod, ALL_NS) == 403
    finally:
        await client.close()
