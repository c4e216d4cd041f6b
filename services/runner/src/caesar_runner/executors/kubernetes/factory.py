"""The Kubernetes executor built from the runner's settings (``CAESAR_K8S_*``)."""

from __future__ import annotations

from pathlib import Path

from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig, SingleConfig

from caesar_runner.executors.kubernetes.executor import KubernetesExecutor
from caesar_runner.executors.kubernetes.jobspec import PodSettings, VolumeSettings
from caesar_runner.settings import RunnerSettings


def kube_config(settings: RunnerSettings) -> SingleConfig:
    """The kubeconfig file's context if one is set, else the pod's service account."""
    if settings.k8s_kubeconfig is None:
        config = KubeConfig.from_service_account()
    else:
        config = KubeConfig.from_file(settings.k8s_kubeconfig)
    single = config.get(settings.k8s_context or None)
    if single is None:
        raise ValueError(f"no context {settings.k8s_context!r} in the kubeconfig")
    return single


def pod_settings(settings: RunnerSettings, bin_dir: Path, namespace: str) -> PodSettings:
    return PodSettings(
        namespace=namespace,
        pool=settings.pool,
        default_image=settings.k8s_default_image,
        data=VolumeSettings(
            settings.k8s_data_claim, settings.data_root, settings.k8s_data_sub_path, read_only=True
        ),
        jobs=VolumeSettings(settings.k8s_jobs_claim, settings.jobs_root, settings.k8s_jobs_sub_path),
        bin_dir=bin_dir,
        images=dict(settings.k8s_images),
        image_pull_policy=settings.k8s_image_pull_policy,
        image_pull_secrets=tuple(settings.k8s_image_pull_secrets),
        run_as_user=settings.k8s_run_as_user,
        run_as_group=settings.k8s_run_as_group,
        fs_group=settings.k8s_fs_group,
        ttl_after_finished_s=settings.k8s_ttl_after_finished_s,
        termination_grace_s=round(settings.kill_grace_s),
        tmp_size_mb=settings.k8s_tmp_size_mb,
        pod_annotations=dict(settings.k8s_pod_annotations),
        pod_labels=dict(settings.k8s_pod_labels),
        node_selector=dict(settings.k8s_node_selector),
        tolerations=tuple(settings.k8s_tolerations),
        service_account=settings.k8s_service_account,
    )


def kubernetes_executor(settings: RunnerSettings, bin_dir: Path) -> KubernetesExecutor:
    config = kube_config(settings)
    client = AsyncClient(config, namespace=settings.k8s_namespace or None)
    namespace = settings.k8s_namespace or str(client.namespace)
    return KubernetesExecutor(
        client,
        pod_settings(settings, bin_dir, namespace),
        backoff_s=settings.k8s_backoff_s,
        max_backoff_s=settings.k8s_max_backoff_s,
        unavailable_grace_s=settings.k8s_unavailable_grace_s,
        watch_timeout_s=settings.k8s_watch_timeout_s,
        log_timeout_s=settings.k8s_log_timeout_s,
        image_pull_grace_s=settings.k8s_image_pull_grace_s,
    )
