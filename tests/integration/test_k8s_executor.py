"""The Kubernetes executor on a real API server (scripts/k8s.sh), pods played by kwok.

Every executor here authenticates as the ``caesar-runner`` ServiceAccount of the test's
namespace, with exactly the Role of deploy/kubernetes/base/runner-rbac.yaml. Pod fates
come from the kwok annotation (see tests/kube_support.py); the Job controller, the
garbage collector and the scheduler are the real ones.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.client import LabelSelector
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from caesar_common.apps.base import PlanContext
from caesar_common.apps.registry import APPS
from caesar_common.bus import Bus, runner_pool_queue
from caesar_common.events import Envelope
from caesar_common.jobstate import JobState
from caesar_common.runtime import ServiceRuntime
from caesar_runner.adapters.claims import INDEXES
from caesar_runner.bootstrap import OUTBOX_COLLECTIONS, build
from caesar_runner.executors.base import ExecutionResult, JobSpec
from caesar_runner.executors.kubernetes import KubernetesExecutor, PodSettings, VolumeSettings
from caesar_runner.executors.kubernetes.executor import JOB_FILE
from caesar_runner.executors.kubernetes.jobspec import LABEL_JOB, job_name
from caesar_runner.settings import RunnerSettings
from tests.integration.event_tap import EventTap, marker, outbox_drained
from tests.integration.runner_support import RunnerUnderTest, states_of
from tests.integration.runner_support import run_job as command_to_run
from tests.integration.service_support import eventually
from tests.kube_support import CLAIMS, OUTCOME_ANNOTATION, KubeNamespace

pytestmark = pytest.mark.kubernetes

BIN = Path("/app/.venv/bin")
IMAGE = "caesar-runner:test"
OWNER = "alice@example.org"
SETTLE_S = 30.0  # the real controllers' pace on a loaded 2-core machine


@dataclass
class Cluster:
    """The test's namespace with the shared volumes' claims, and an admin client."""

    ns: KubeNamespace
    admin: AsyncClient
    data_claim: str
    jobs_claim: str
    root: Path

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def jobs_root(self) -> Path:
        return self.root / "jobs"

    def executor(
        self, outcome: str = "succeed", *, config: KubeConfig | None = None, **kw: Any
    ) -> KubernetesExecutor:
        settings = PodSettings(
            namespace=kw.pop("namespace", self.ns.name),
            pool="k8s",
            default_image=IMAGE,
            data=VolumeSettings(self.data_claim, self.data_root, read_only=True),
            jobs=VolumeSettings(self.jobs_claim, self.jobs_root),
            bin_dir=BIN,
            pod_annotations={OUTCOME_ANNOTATION: outcome},
            ttl_after_finished_s=kw.pop("ttl_after_finished_s", 600),
            termination_grace_s=0,
        )
        client = AsyncClient(config or self.ns.runner_config)
        return KubernetesExecutor(
            client,
            settings,
            backoff_s=0.2,
            max_backoff_s=1.0,
            unavailable_grace_s=kw.pop("unavailable_grace_s", 60.0),
            watch_timeout_s=30,
            log_timeout_s=3.0,
        )

    def spec(self, job_id: str | None = None, attempt: int = 1, wall_time_s: int = 300) -> JobSpec:
        """An aegean attempt: BANE as an init container, aegean as the main one."""
        job_id = job_id or str(uuid.uuid4())
        app = APPS["aegean"]
        params = app.validate({})
        job_dir = self.jobs_root / OWNER / job_id / "attempts" / str(attempt)
        job_dir.mkdir(parents=True, exist_ok=True)
        staged = job_dir / "image.fits"
        staged.symlink_to(self.data_root / OWNER / "upload.fits")
        steps = app.plan(params, PlanContext(staged, job_dir, BIN))
        return JobSpec(
            job_id, OWNER, attempt, "aegean", steps, job_dir, wall_time_s, 1, 512, staged_input=staged
        )

    async def jobs_of(self, job_id: str) -> list[Job]:
        return [j async for j in self.admin.list(Job, namespace=self.ns.name, labels={LABEL_JOB: job_id})]

    async def pods_of(self, name: str) -> list[Pod]:
        labels: LabelSelector = {"batch.kubernetes.io/job-name": name}
        return [p async for p in self.admin.list(Pod, namespace=self.ns.name, labels=labels)]


@pytest.fixture
async def cluster(kube_namespace: KubeNamespace, tmp_path: Path) -> AsyncIterator[Cluster]:
    """The test's namespace (with the runner's claims, bound), a data root with an upload."""
    admin = AsyncClient(kube_namespace.admin_config, field_manager="caesar-tests")
    (tmp_path / "data" / OWNER).mkdir(parents=True)
    (tmp_path / "data" / OWNER / "upload.fits").write_bytes(b"SIMPLE  =                    T")
    try:
        yield Cluster(kube_namespace, admin, CLAIMS[0], CLAIMS[1], tmp_path)
    finally:
        await admin.close()


@dataclass
class Started:
    calls: list[int | None] = field(default_factory=list)
    event: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, pid: int | None) -> None:
        self.calls.append(pid)
        self.event.set()


async def run(
    executor: KubernetesExecutor, spec: JobSpec, cancel: asyncio.Event | None = None
) -> ExecutionResult:
    return await asyncio.wait_for(executor.run(spec, Started(), cancel or asyncio.Event()), SETTLE_S * 2)


# -- outcomes ------------------------------------------------------------------------------


async def test_an_aegean_attempt_succeeds(cluster: Cluster) -> None:
    executor = cluster.executor("succeed")
    spec = cluster.spec()
    started = Started()
    try:
        result = await asyncio.wait_for(executor.run(spec, started, asyncio.Event()), SETTLE_S * 2)
    finally:
        await executor.aclose()
    assert (result.state, result.exit_code, result.reason) == (JobState.SUCCESS, 0, "")
    assert started.calls == [None]
    (job,) = await cluster.jobs_of(spec.job_id)
    assert job.metadata is not None
    assert job.metadata.name == job_name(spec.job_id, 1)
    assert job.spec is not None
    assert job.spec.backoffLimit == 0
    assert (spec.job_dir / JOB_FILE).is_file()
    assert (spec.job_dir / "tmp").is_dir()


async def test_a_failing_step_reports_its_exit_code(cluster: Cluster) -> None:
    executor = cluster.executor("fail-3")
    try:
        result = await run(executor, cluster.spec())
    finally:
        await executor.aclose()
    assert (result.state, result.exit_code, result.retryable) == (JobState.FAILURE, 3, False)
    assert result.reason.startswith("step aegean (container 01-aegean) exited with code 3")


async def test_the_wall_time_is_enforced_by_the_job_controller(cluster: Cluster) -> None:
    executor = cluster.executor("hang")
    spec = cluster.spec(wall_time_s=2)
    try:
        result = await run(executor, spec)
    finally:
        await executor.aclose()
    assert (result.state, result.reason) == (JobState.TIMED_OUT, "wall time of 2 s exceeded")


async def test_an_evicted_pod_is_a_retryable_failure(cluster: Cluster) -> None:
    executor = cluster.executor("evict")
    try:
        result = await run(executor, cluster.spec())
    finally:
        await executor.aclose()
    assert (result.state, result.retryable, result.exit_code) == (JobState.FAILURE, True, None)
    assert "Evicted" in result.reason


# -- cancel, restart, supersession -----------------------------------------------------------


async def test_cancel_deletes_the_job_and_its_pods(cluster: Cluster) -> None:
    executor = cluster.executor("hang")
    spec = cluster.spec()
    name = job_name(spec.job_id, 1)
    started, cancel = Started(), asyncio.Event()
    try:
        task = asyncio.create_task(executor.run(spec, started, cancel))
        await asyncio.wait_for(started.event.wait(), SETTLE_S)
        assert await cluster.pods_of(name)
        cancel.set()
        result = await asyncio.wait_for(task, SETTLE_S)
    finally:
        await executor.aclose()
    assert (result.state, result.reason) == (JobState.CANCELED, "canceled by the user")

    async def all_gone() -> bool:
        return not await cluster.jobs_of(spec.job_id) and not await cluster.pods_of(name)

    await eventually(all_gone, SETTLE_S, "the Job and its pods to be deleted")


async def test_a_restarted_runner_reattaches_instead_of_creating_again(cluster: Cluster) -> None:
    spec = cluster.spec()
    first = cluster.executor("succeed")
    started = Started()
    task = asyncio.create_task(first.run(spec, started, asyncio.Event()))
    try:
        await asyncio.wait_for(started.event.wait(), SETTLE_S)
        (before,) = await cluster.jobs_of(spec.job_id)
        task.cancel()  # the runner shuts down: its task is cancelled, the Job runs on
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await first.aclose()
    assert (await cluster.jobs_of(spec.job_id))[0].metadata.uid == before.metadata.uid  # type: ignore[union-attr]

    second = cluster.executor("succeed")
    try:
        result = await run(second, spec)
    finally:
        await second.aclose()
    assert (result.state, result.exit_code) == (JobState.SUCCESS, 0)
    (after,) = await cluster.jobs_of(spec.job_id)
    assert after.metadata is not None
    assert before.metadata is not None
    assert after.metadata.uid == before.metadata.uid  # the same Job: nothing created twice


async def test_a_new_attempt_deletes_the_job_of_an_older_one(cluster: Cluster) -> None:
    job_id = str(uuid.uuid4())
    old_spec, new_spec = cluster.spec(job_id, 1), cluster.spec(job_id, 2)
    old_runner, new_runner = cluster.executor("hang"), cluster.executor("succeed")
    started = Started()
    try:
        old = asyncio.create_task(old_runner.run(old_spec, started, asyncio.Event()))
        await asyncio.wait_for(started.event.wait(), SETTLE_S)
        result = await run(new_runner, new_spec)
        old_result = await asyncio.wait_for(old, SETTLE_S)
    finally:
        await old_runner.aclose()
        await new_runner.aclose()
    assert result.state is JobState.SUCCESS
    # The old attempt sees its Job deleted from outside: a retryable failure (it was
    # superseded anyway; the runner reports nothing over the new attempt).
    assert (old_result.state, old_result.retryable) == (JobState.FAILURE, True)
    assert "deleted" in old_result.reason
    names = [j.metadata.name for j in await cluster.jobs_of(job_id) if j.metadata is not None]
    assert names == [job_name(job_id, 2)]


async def test_a_job_gone_before_its_end_was_seen_is_not_run_again(cluster: Cluster) -> None:
    spec = cluster.spec()
    (spec.job_dir / JOB_FILE).write_text("{}")  # a previous runner created it; its TTL expired
    executor = cluster.executor("succeed")
    try:
        result = await run(executor, spec)
    finally:
        await executor.aclose()
    assert (result.state, result.retryable) == (JobState.FAILURE, True)
    assert "gone" in result.reason
    assert await cluster.jobs_of(spec.job_id) == []


async def test_a_step_that_cannot_start_fails_the_attempt_at_once(cluster: Cluster) -> None:
    """An invalid image would wait until the wall time; the attempt fails with the reason.

    kwok pulls no image, so the kubelet's verdict is written into the pod's status here.
    """
    executor = cluster.executor("hang")
    spec = cluster.spec()
    name = job_name(spec.job_id, 1)
    started = Started()
    try:
        task = asyncio.create_task(executor.run(spec, started, asyncio.Event()))
        await asyncio.wait_for(started.event.wait(), SETTLE_S)
        (running,) = await cluster.pods_of(name)
        assert running.metadata is not None
        assert running.metadata.name is not None
        verdict = {"reason": "InvalidImageName", "message": 'couldn\'t parse image name "x::y"'}
        status = {"name": "01-aegean", "image": IMAGE, "imageID": "", "ready": False, "restartCount": 0}
        await cluster.admin.patch(
            Pod.Status,
            running.metadata.name,
            {"status": {"containerStatuses": [{**status, "state": {"waiting": verdict}}]}},
            namespace=cluster.ns.name,
            patch_type=PatchType.MERGE,
        )
        result = await asyncio.wait_for(task, SETTLE_S)
    finally:
        await executor.aclose()
    assert (result.state, result.retryable, result.exit_code) == (JobState.FAILURE, False, None)
    assert result.reason.startswith("step aegean (container 01-aegean) could not start (InvalidImageName")

    async def job_gone() -> bool:
        return not await cluster.jobs_of(spec.job_id)

    await eventually(job_gone, SETTLE_S, "the Job to be deleted")


# -- the API server refusing or missing --------------------------------------------------------


async def test_a_namespace_the_runner_may_not_use_is_a_clear_failure(cluster: Cluster) -> None:
    executor = cluster.executor("succeed", namespace="default")
    try:
        result = await run(executor, cluster.spec())
    finally:
        await executor.aclose()
    assert (result.state, result.retryable) == (JobState.FAILURE, False)
    assert "refused the runner's credentials" in result.reason


async def test_an_unreachable_api_server_is_a_retryable_failure_after_the_grace(cluster: Cluster) -> None:
    config = KubeConfig.from_dict(
        {
            "clusters": [{"name": "gone", "cluster": {"server": "https://127.0.0.1:9"}}],
            "users": [{"name": "runner", "user": {"token": "unused"}}],
            "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "runner"}}],
            "current-context": "gone",
        }
    )
    executor = cluster.executor("succeed", config=config, unavailable_grace_s=1.0)
    try:
        result = await run(executor, cluster.spec())
    finally:
        await executor.aclose()
    assert (result.state, result.retryable) == (JobState.FAILURE, True)
    assert "could not create the Kubernetes Job" in result.reason


# -- through the runner service (the real broker and database) --------------------------------

FILE_ID = "c" * 32


@pytest.fixture
async def start_runner(
    cluster: Cluster, amqp_url: str, mongo_url: str, db_prefix: str, tmp_path: Path
) -> AsyncIterator[Callable[[], Awaitable[RunnerUnderTest]]]:
    """Start runners of the k8s pool with one runner id (a restart keeps it), as the
    ``caesar-runner`` ServiceAccount; whatever a test did not stop is stopped after it."""
    kubeconfig = cluster.ns.write_runner_kubeconfig(tmp_path / "runner.kubeconfig")
    (cluster.data_root / "anonymous").mkdir(parents=True, exist_ok=True)
    (cluster.data_root / "anonymous" / f"{FILE_ID}.fits").write_bytes(b"SIMPLE  =                    T")
    runner_id = f"k8s-test-{uuid.uuid4().hex[:6]}"
    started: list[RunnerUnderTest] = []

    async def start() -> RunnerUnderTest:
        settings = RunnerSettings(
            amqp_url=amqp_url,
            mongo_url=mongo_url,
            mongo_db_prefix=db_prefix,
            data_root=cluster.data_root,
            jobs_root=cluster.jobs_root,
            slots=2,
            runner_id=runner_id,
            heartbeat_interval_s=0.5,
            executor="kubernetes",
            k8s_kubeconfig=kubeconfig,
            k8s_namespace=cluster.ns.name,
            k8s_default_image=IMAGE,
            k8s_pod_annotations={OUTCOME_ANNOTATION: "succeed"},
            k8s_backoff_s=0.2,
            k8s_max_backoff_s=1.0,
            k8s_log_timeout_s=3.0,
        )
        assert settings.pool == "k8s"
        runtime = ServiceRuntime("runner", settings, indexes=INDEXES, outbox_collections=OUTBOX_COLLECTIONS)
        await runtime.connect()
        job_runner = await build(runtime)
        bus = Bus(amqp_url, "test")
        await bus.connect()
        started.append(RunnerUnderTest(runtime, job_runner, bus, cluster.jobs_root))
        return started[-1]

    yield start
    for under_test in started:
        await under_test.stop()


def run_job(job_id: str, **overrides: Any) -> Envelope:
    return command_to_run(job_id, pool="k8s", file_id=FILE_ID, **overrides)


def terminal(job_id: str) -> Callable[[Envelope], bool]:
    return lambda e: (
        e.subject == job_id and e.data["state"] in {"SUCCESS", "FAILURE", "TIMED-OUT", "CANCELED"}
    )


@pytest.mark.integration
async def test_a_runner_of_the_k8s_pool_runs_an_attempt_as_a_job(
    start_runner: Callable[[], Awaitable[RunnerUnderTest]], cluster: Cluster, amqp_url: str
) -> None:
    runner = await start_runner()
    job_id = str(uuid.uuid4())
    async with EventTap(amqp_url, ["job.state.*"]) as tap:
        await runner.bus.publish(run_job(job_id), to_queue=runner_pool_queue("k8s"))
        final = await tap.wait_for(terminal(job_id), SETTLE_S * 2)
    assert final.data["state"] == "SUCCESS", final.data["reason"]
    assert states_of(tap, job_id) == ["STARTED", "RUNNING", "SUCCESS"]
    assert final.data["pool"] == "k8s"
    (job,) = await cluster.jobs_of(job_id)
    assert job.spec is not None
    containers = job.spec.template.spec.containers if job.spec.template.spec else []
    assert containers[0].command is not None
    assert containers[0].command[:3] == [
        str(runner.runner.config.bin_dir / "python"),
        "-m",
        "caesar_runner.catalogs.aegean_run",
    ]


@pytest.mark.integration
async def test_a_restarted_runner_reports_its_jobs_outcome_once(
    start_runner: Callable[[], Awaitable[RunnerUnderTest]], cluster: Cluster, amqp_url: str
) -> None:
    job_id = str(uuid.uuid4())
    first = await start_runner()
    async with EventTap(amqp_url, ["job.state.*"]) as tap:
        await first.bus.publish(run_job(job_id), to_queue=runner_pool_queue("k8s"))
        await tap.wait_for(lambda e: e.subject == job_id and e.data["state"] == "RUNNING", SETTLE_S)
        await first.stop(crash=True)
        second = await start_runner()
        final = await tap.wait_for(terminal(job_id), SETTLE_S * 2)
        # Published once the outbox is empty, and arrived once a later marker has.
        assert await outbox_drained(second.runtime.relay) == 0
        await tap.sync(second.bus.publish, marker())
    assert final.data["state"] == "SUCCESS", final.data["reason"]
    assert states_of(tap, job_id) == ["STARTED", "RUNNING", "SUCCESS"]
    assert len(await cluster.jobs_of(job_id)) == 1  # followed again, not created twice
