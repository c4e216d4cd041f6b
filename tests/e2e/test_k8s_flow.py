"""The whole stack with a Kubernetes pool: jobs become batch/v1 Jobs on a real API server.

All five services run as processes, plus a runner serving ``runner.k8s`` with
``CAESAR_EXECUTOR=kubernetes`` against the test cluster of ``scripts/k8s.sh`` (etcd,
kube-apiserver, the Job controller, the scheduler; kwok plays the node). The runner
authenticates with a real ServiceAccount token bound by the manifests' Role, in a
namespace of this module's own.

kwok runs no container: a pod's fate is its annotation ``kwok.caesar-rest.io/outcome``.
The runner puts ``hang`` on every pod (``CAESAR_K8S_POD_ANNOTATIONS``), and the tests
decide when a job's pod ends by changing that annotation on the live pod, as the
container ending would.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lightkube import AsyncClient
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod

from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, write_simulation
from tests.e2e.conftest import make_stack, status, submit, timeline, upload, wait_state
from tests.kube_support import OUTCOME_ANNOTATION, KubeNamespace, load_admin_config, runner_namespace

pytestmark = [pytest.mark.e2e, pytest.mark.kubernetes]
RUNNER = "runner-k8s"
RUNNER_ID = "e2e-k8s"
JOB_LABEL = "caesar-rest.io/job-id"


@pytest.fixture(scope="module")
def namespace() -> Iterator[KubeNamespace]:
    """One namespace for the module (its runner lives as long as the stack)."""
    loop = asyncio.new_event_loop()
    context = runner_namespace(load_admin_config())
    try:
        yield loop.run_until_complete(context.__aenter__())
    finally:
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()


def start_k8s_runner(stack: Stack, kubeconfig: Path, namespace: str) -> None:
    stack.start(
        "runner",
        instance=RUNNER,
        CAESAR_EXECUTOR="kubernetes",
        CAESAR_RUNNER_ID=RUNNER_ID,
        CAESAR_K8S_KUBECONFIG=str(kubeconfig),
        CAESAR_K8S_NAMESPACE=namespace,
        CAESAR_K8S_DEFAULT_IMAGE="ghcr.io/caesar-rest/runner:e2e",
        CAESAR_K8S_POD_ANNOTATIONS=f'{{"{OUTCOME_ANNOTATION}": "hang"}}',
        CAESAR_K8S_UNAVAILABLE_GRACE_S="60",
    )
    stack.wait_ready(RUNNER)


@pytest.fixture(scope="module")
def runner_kubeconfig(tmp_path_factory: pytest.TempPathFactory, namespace: KubeNamespace) -> Path:
    return namespace.write_runner_kubeconfig(tmp_path_factory.mktemp("k8s-runner") / "kubeconfig")


@pytest.fixture(scope="module")
def k8s_stack(
    tmp_path_factory: pytest.TempPathFactory, namespace: KubeNamespace, runner_kubeconfig: Path
) -> Iterator[Stack]:
    for stack in make_stack(
        tmp_path_factory.mktemp("k8s-stack"),
        CAESAR_POOLS='["local", "k8s"]',
        CAESAR_POOL_RULES='[{"pool": "k8s", "apps": ["trivial"]}]',
        CAESAR_RUNNABLE_EXECUTORS="local,k8s",
        CAESAR_HEARTBEAT_INTERVAL_S="1",
        # Runners of other pools are declared lost after 6 s; k8s keeps its own 900 s.
        CAESAR_RUNNER_TIMEOUT_S="6",
        CAESAR_WATCHDOG_INTERVAL_S="1",
        CAESAR_ENABLE_TEST_APPS="true",
    ):
        start_k8s_runner(stack, runner_kubeconfig, namespace.name)
        yield stack


@pytest.fixture
async def admin(namespace: KubeNamespace) -> AsyncIterator[AsyncClient]:
    client = AsyncClient(namespace.admin_config, field_manager="caesar-e2e")
    yield client
    await client.close()


async def jobs_of(admin: AsyncClient, namespace: str, job_id: str) -> list[Job]:
    return [job async for job in admin.list(Job, namespace=namespace, labels={JOB_LABEL: job_id})]


async def live_pod(admin: AsyncClient, namespace: str, job_id: str, timeout_s: float = 60) -> Pod:
    """The job's pod once kwok runs it."""
    deadline = time.monotonic() + timeout_s
    while True:
        pods = [p async for p in admin.list(Pod, namespace=namespace, labels={JOB_LABEL: job_id})]
        running = [p for p in pods if p.status is not None and p.status.phase == "Running"]
        if running:
            return running[0]
        assert time.monotonic() < deadline, f"no running pod for job {job_id}: {pods}"
        await asyncio.sleep(0.2)  # polling the API server, not ordering events


async def end_pod(admin: AsyncClient, pod: Pod, outcome: str) -> None:
    """What the container ending would do: kwok's stage for ``outcome`` takes the pod on."""
    assert pod.metadata is not None
    assert pod.metadata.name is not None
    patch: dict[str, Any] = {"metadata": {"annotations": {OUTCOME_ANNOTATION: outcome}}}
    await admin.patch(Pod, pod.metadata.name, patch, namespace=pod.metadata.namespace)


async def submit_trivial(http: aiohttp.ClientSession, stack: Stack, tmp_path: Path) -> str:
    image = tmp_path / "tiny.fits"
    write_simulation(SimulationSpec(size=64, seed=5, n_sources=2), image)
    file_id = await upload(http, stack, image)
    return await submit(http, stack, {"app": "trivial", "job_inputs": {"seconds": 1}, "data_inputs": file_id})


async def test_a_job_runs_as_a_kubernetes_job_and_succeeds(
    http: aiohttp.ClientSession,
    k8s_stack: Stack,
    namespace: KubeNamespace,
    admin: AsyncClient,
    tmp_path: Path,
) -> None:
    job_id = await submit_trivial(http, k8s_stack, tmp_path)
    running = await wait_state(http, k8s_stack, job_id, {"RUNNING"}, timeout_s=60)
    assert running["pool"] == "k8s"
    pod = await live_pod(admin, namespace.name, job_id)
    [job] = await jobs_of(admin, namespace.name, job_id)
    assert job.spec is not None
    assert job.spec.backoffLimit == 0
    await end_pod(admin, pod, "succeed")
    final = await wait_state(http, k8s_stack, job_id, timeout_s=60)
    assert final["state"] == "SUCCESS", final
    assert final["exit_code"] == 0


async def test_a_failing_container_fails_the_job_with_its_exit_code(
    http: aiohttp.ClientSession,
    k8s_stack: Stack,
    namespace: KubeNamespace,
    admin: AsyncClient,
    tmp_path: Path,
) -> None:
    job_id = await submit_trivial(http, k8s_stack, tmp_path)
    await end_pod(admin, await live_pod(admin, namespace.name, job_id), "fail-7")
    final = await wait_state(http, k8s_stack, job_id, timeout_s=60)
    assert final["state"] == "FAILURE", final
    assert final["exit_code"] == 7


async def test_cancel_deletes_the_kubernetes_job(
    http: aiohttp.ClientSession,
    k8s_stack: Stack,
    namespace: KubeNamespace,
    admin: AsyncClient,
    tmp_path: Path,
) -> None:
    job_id = await submit_trivial(http, k8s_stack, tmp_path)
    await live_pod(admin, namespace.name, job_id)
    async with http.get(f"{k8s_stack.v1}/job/{job_id}/cancel") as resp:
        assert resp.status == 200
    final = await wait_state(http, k8s_stack, job_id, timeout_s=60)
    assert final["state"] == "CANCELED", final
    deadline = time.monotonic() + 60
    while await jobs_of(admin, namespace.name, job_id):
        assert time.monotonic() < deadline, "the cancelled job's Kubernetes Job is still there"
        await asyncio.sleep(0.2)  # polling the API server, not ordering events


async def test_a_restarted_runner_reattaches_and_resubmits_nothing(
    http: aiohttp.ClientSession,
    k8s_stack: Stack,
    namespace: KubeNamespace,
    runner_kubeconfig: Path,
    admin: AsyncClient,
    tmp_path: Path,
) -> None:
    """The Job runs on while its runner is down; the restarted runner (same id) finds it by
    its labels and reports its end. One attempt, one Kubernetes Job."""
    job_id = await submit_trivial(http, k8s_stack, tmp_path)
    pod = await live_pod(admin, namespace.name, job_id)
    k8s_stack.kill(RUNNER, signal.SIGKILL)
    assert (await status(http, k8s_stack, job_id))["state"] == "RUNNING"
    assert len(await jobs_of(admin, namespace.name, job_id)) == 1
    start_k8s_runner(k8s_stack, runner_kubeconfig, namespace.name)
    await end_pod(admin, pod, "succeed")
    final = await wait_state(http, k8s_stack, job_id, timeout_s=90)
    assert final["state"] == "SUCCESS", final
    assert len(await jobs_of(admin, namespace.name, job_id)) == 1
    events = await timeline(http, k8s_stack, job_id)
    assert {e.get("attempt") for e in events if e.get("attempt")} == {1}
    assert not [e for e in events if e.get("state") == "FAILURE"]
