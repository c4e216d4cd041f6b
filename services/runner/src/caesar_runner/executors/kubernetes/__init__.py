"""The Kubernetes executor: each attempt a batch/v1 Job (see :mod:`.executor`)."""

from caesar_runner.executors.kubernetes.executor import KubernetesExecutor
from caesar_runner.executors.kubernetes.jobspec import PodSettings, VolumeSettings

__all__ = ["KubernetesExecutor", "PodSettings", "VolumeSettings"]
