"""The Kubernetes executor's bookkeeping (the watched view) and its settings, without a cluster."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, cast

import pytest
from lightkube import AsyncClient
from pydantic import ValidationError

from caesar_runner.executors.factory import build_executor
from caesar_runner.executors.kubernetes import KubernetesExecutor
from caesar_runner.executors.kubernetes.factory import kube_config, pod_settings
from caesar_runner.executors.kubernetes.watcher import ClusterView
from caesar_runner.settings import RunnerSettings

JOB = "caesar-j-1"


def view() -> ClusterView:
    return ClusterView(cast(AsyncClient, None), "ns", {"app.kubernetes.io/managed-by": "caesar-rest"})


def job(name: str = JOB) -> dict[str, Any]:
    return {"metadata": {"name": name}}


def pod(name: str = f"{JOB}-abcde", job_name: str = JOB) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"batch.kubernetes.io/job-name": job_name}}}


def test_a_job_deleted_after_it_was_known_is_gone() -> None:
    v = view()
    v.apply_event("jobs", "ADDED", job())
    known_at = time.monotonic()
    assert v.job(JOB) == job()
    assert not v.gone(JOB, known_at)
    v.apply_event("jobs", "DELETED", job())
    assert v.job(JOB) is None
    assert v.gone(JOB, known_at)


def test_a_job_not_yet_seen_is_not_gone_until_a_later_listing_lacks_it() -> None:
    v = view()
    created_at = time.monotonic()
    assert not v.gone(JOB, created_at)  # the watch may just be late
    v.replace_listing("jobs", {}, created_at - 1)  # a listing from before the create
    assert not v.gone(JOB, created_at)
    v.replace_listing("jobs", {}, time.monotonic())
    assert v.gone(JOB, created_at)


def test_a_listing_that_lacks_a_known_job_marks_it_gone() -> None:
    v = view()
    v.replace_listing("jobs", {JOB: job()}, time.monotonic())
    known_at = time.monotonic()
    v.replace_listing("jobs", {}, known_at - 1)  # started earlier, but the job vanished
    assert v.gone(JOB, known_at)
    v.forget(JOB)
    assert not v.gone(JOB, known_at)


def test_deleted_pods_are_kept_as_deleted_while_their_job_exists() -> None:
    v = view()
    v.apply_event("jobs", "ADDED", job())
    v.apply_event("pods", "ADDED", pod())
    v.apply_event("pods", "DELETED", pod())
    (kept,) = v.pods_of(JOB)
    assert kept["metadata"]["deletionTimestamp"]
    v.apply_event("jobs", "DELETED", job())
    assert v.pods_of(JOB) == []


def test_pods_missing_from_a_listing_count_as_deleted() -> None:
    v = view()
    v.apply_event("jobs", "ADDED", job())
    v.apply_event("pods", "ADDED", pod())
    v.apply_event("pods", "ADDED", pod("other-pod", "other-job"))
    v.replace_listing("pods", {}, time.monotonic())
    (kept,) = v.pods_of(JOB)
    assert kept["metadata"]["deletionTimestamp"]
    assert v.pods_of("other-job") == []  # its Job is unknown: nothing to explain


def test_every_change_sets_the_event_taken_before_it() -> None:
    v = view()
    tick = v.next_change()
    assert not tick.is_set()
    v.apply_event("jobs", "MODIFIED", job())
    assert tick.is_set()
    assert not v.next_change().is_set()


def test_outage_is_zero_while_the_api_answers() -> None:
    assert view().outage_s() == 0.0


# -- settings ------------------------------------------------------------------------------


def test_the_kubernetes_executor_needs_an_image_and_serves_the_k8s_pool() -> None:
    with pytest.raises(ValidationError, match="CAESAR_K8S_DEFAULT_IMAGE"):
        RunnerSettings(executor="kubernetes")
    settings = RunnerSettings(executor="kubernetes", k8s_default_image="runner:1")
    assert settings.pool == "k8s"
    assert settings.runner_id.endswith("-k8s")


def test_mappings_come_from_json_in_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CAESAR_EXECUTOR", "kubernetes")
    monkeypatch.setenv("CAESAR_K8S_DEFAULT_IMAGE", "runner:1")
    monkeypatch.setenv("CAESAR_K8S_IMAGES", json.dumps({"caesar": "mirror/caesar:7"}))
    monkeypatch.setenv("CAESAR_K8S_POD_ANNOTATIONS", json.dumps({"kwok.caesar-rest.io/outcome": "hang"}))
    monkeypatch.setenv("CAESAR_K8S_TOLERATIONS", json.dumps([{"key": "astro", "operator": "Exists"}]))
    monkeypatch.setenv("CAESAR_K8S_IMAGE_PULL_SECRETS", '["regcred"]')
    settings = RunnerSettings(data_root=tmp_path / "data", jobs_root=tmp_path / "jobs")
    pods = pod_settings(settings, Path("/app/.venv/bin"), "caesar")
    assert pods.images == {"caesar": "mirror/caesar:7"}
    assert pods.pod_annotations == {"kwok.caesar-rest.io/outcome": "hang"}
    assert pods.tolerations == ({"key": "astro", "operator": "Exists"},)
    assert pods.image_pull_secrets == ("regcred",)
    assert (pods.data.mount_path, pods.data.read_only) == (tmp_path / "data", True)
    assert (pods.jobs.mount_path, pods.jobs.read_only) == (tmp_path / "jobs", False)
    assert (pods.namespace, pods.pool, pods.default_image) == ("caesar", "k8s", "runner:1")


def test_the_kubeconfig_context_is_chosen_by_name(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    clusters = [
        {"name": name, "cluster": {"server": f"https://{name}.example.org:6443"}} for name in ("one", "two")
    ]
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": clusters,
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "one", "context": {"cluster": "one", "user": "u", "namespace": "a"}},
                    {"name": "two", "context": {"cluster": "two", "user": "u", "namespace": "b"}},
                ],
                "current-context": "one",
            }
        )
    )
    base: dict[str, Any] = {"executor": "kubernetes", "k8s_default_image": "runner:1", "k8s_kubeconfig": path}
    assert kube_config(RunnerSettings(**base)).cluster.server == "https://one.example.org:6443"
    chosen = kube_config(RunnerSettings(**base, k8s_context="two"))
    assert (chosen.cluster.server, chosen.namespace) == ("https://two.example.org:6443", "b")


async def test_the_factory_builds_the_executor_in_the_contexts_namespace(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://k8s.example.org:6443"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "astro"}}],
                "current-context": "c",
            }
        )
    )
    settings = RunnerSettings(
        executor="kubernetes", k8s_default_image="runner:1", k8s_kubeconfig=path, jobs_root=tmp_path / "jobs"
    )
    executor = build_executor(settings, Path("/app/.venv/bin"))
    try:
        assert isinstance(executor, KubernetesExecutor)
        assert (executor.kind, executor.pool, executor.reattaches) == ("k8s", "k8s", True)
        assert executor.namespace == "astro"  # the context's, as no namespace is set
    finally:
        await executor.aclose()
