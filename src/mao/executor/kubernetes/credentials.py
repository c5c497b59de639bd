"""How the instance reaches a Kubernetes API: in the cluster (the pod's service account), a
kubeconfig file (and context), or an API URL with a bearer token."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes import config as _config
from kubernetes.config.config_exception import ConfigException

from mao.errors import ExecutorError

config: Any = _config  # untyped


@dataclass(frozen=True)
class KubernetesAccess:
    """Where the API is and who the instance is there. With none set: in-cluster credentials
    when the instance runs in a pod, else the default kubeconfig (``~/.kube/config``,
    ``KUBECONFIG``)."""

    url: str | None = None
    token: str | None = None
    ca_file: Path | None = None
    kubeconfig: Path | None = None
    context: str | None = None

    def describe(self) -> str:
        if self.url:
            return f"the Kubernetes API at {self.url}"
        if self.kubeconfig:
            return f"the Kubernetes API of kubeconfig {self.kubeconfig}" + (
                f" (context {self.context})" if self.context else ""
            )
        return "the Kubernetes API (in-cluster or default kubeconfig)"


def api_client(access: KubernetesAccess) -> client.ApiClient:
    """An API client for ``access``; ExecutorError saying what is missing when it cannot be made.
    Nothing is asked of the API yet."""
    try:
        if access.url:
            configuration = client.Configuration(host=access.url.rstrip("/"))
            if access.token:
                configuration.api_key = {"authorization": access.token}
                configuration.api_key_prefix = {"authorization": "Bearer"}
            if access.ca_file:
                configuration.ssl_ca_cert = str(access.ca_file)
            return client.ApiClient(configuration)
        configuration = client.Configuration()
        if access.kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(
                config_file=str(access.kubeconfig) if access.kubeconfig else None,
                context=access.context,
                client_configuration=configuration,
            )
        return client.ApiClient(configuration)
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        raise ExecutorError(
            f"cannot use {access.describe()}: {exc}; set kubernetes_kubeconfig (MAO_KUBERNETES_KUBECONFIG), "
            "or kubernetes_url and kubernetes_token, or run the instance in the cluster",
            details={"kubernetes": access.describe()},
        ) from exc
