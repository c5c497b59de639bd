"""``executor: kubernetes``: each step a Job on a Kubernetes cluster, its data by commit."""

from mao.executor.kubernetes.credentials import KubernetesAccess
from mao.executor.kubernetes.executor import KubernetesExecutor

__all__ = ["KubernetesAccess", "KubernetesExecutor"]
