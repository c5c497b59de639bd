"""The objects a step becomes on Kubernetes: a Secret (the transfer token and the step's
private variables) and a Job whose one pod runs, in order,

1. ``fetch`` (init container, the helper image): downloads the output worktree and the input
   view as tars from the instance (:class:`~mao.executor.base.StepTransfer`) into two
   ``emptyDir`` volumes;
2. ``step`` (init container, the tool's image, its command as ``args``): the tool, with the
   trees at the usual paths (``/usr/src/app/data`` read-write, ``/usr/src/app/input``
   read-only) and without the transfer token;
3. ``send`` (the pod's container, the helper image): sends the tree the tool left back.

A tool that fails ends the pod before anything is sent. The Job is never retried
(``backoffLimit: 0``, ``restartPolicy: Never``) and is bounded by the step's timeout
(``activeDeadlineSeconds``, which also bounds a pod stuck pending).
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Any

from mao.errors import InvalidInput
from mao.executor.base import INPUT_MOUNT, OUTPUT_MOUNT, StepResources, StepSpec
from mao.executor.docker import split_command

HELPER_IMAGE = "curlimages/curl:8.11.1"
"""The default image of the fetch and send containers: it needs ``sh``, ``tar`` and ``curl``."""

TTL_AFTER_FINISHED = 600
"""Seconds Kubernetes keeps a finished Job should the instance not delete it itself."""

LABEL_EXECUTOR = "mao.executor"
LABEL_JOB = "mao.job"
"""The label that names a step's Job on the Job, its pods and its Secret."""

FETCH, STEP, SEND = "fetch", "step", "send"
"""The containers of a step's pod, in the order they run."""

TOKEN_KEY = "MAO_TRANSFER_TOKEN"
TRANSFER_DIR = "/var/run/mao"

PULL_POLICIES = {"if-not-present": "IfNotPresent", "always": "Always", "never": "Never"}

_FETCH_SCRIPT = f"""set -eu
umask 077
printf 'Authorization: Bearer %s\\n' "${TOKEN_KEY}" > {TRANSFER_DIR}/auth
curl -fsS --retry 3 -H @{TRANSFER_DIR}/auth -o {TRANSFER_DIR}/data.tar "$MAO_DATA_URL"
tar -x -f {TRANSFER_DIR}/data.tar -C {OUTPUT_MOUNT}
rm -f {TRANSFER_DIR}/data.tar
chmod -R a+rwX {OUTPUT_MOUNT}
if [ -n "${{MAO_INPUT_URL:-}}" ]; then
  curl -fsS --retry 3 -H @{TRANSFER_DIR}/auth -o {TRANSFER_DIR}/input.tar "$MAO_INPUT_URL"
  tar -x -f {TRANSFER_DIR}/input.tar -C {INPUT_MOUNT}
  rm -f {TRANSFER_DIR}/input.tar
  chmod -R a+rX {INPUT_MOUNT}
fi
echo "fetched the step's data"
"""

_SEND_SCRIPT = f"""set -eu
umask 077
printf 'Authorization: Bearer %s\\n' "${TOKEN_KEY}" > {TRANSFER_DIR}/auth
tar -c -f {TRANSFER_DIR}/result.tar -C {OUTPUT_MOUNT} .
curl -fsS --retry 3 -X PUT -H @{TRANSFER_DIR}/auth -H 'Content-Type: application/x-tar' \\
  --data-binary @{TRANSFER_DIR}/result.tar "$MAO_DATA_URL"
echo "sent the step's result"
"""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_GPU = re.compile(r"^gpu(?::[\w.-]+)?:(\d+)$")


def job_name(spec: StepSpec) -> str:
    """A name of its own for the step's Job and Secret (a DNS label: at most 63 characters)."""
    step = re.sub(r"[^a-z0-9]+", "-", spec.step.lower()).strip("-")[:30].strip("-") or "step"
    return f"mao-{spec.run_id}-{step}-{uuid.uuid4().hex[:8]}"[:63]


def memory_quantity(memory: str) -> str:
    """A size as the other engines take it (``512m``, ``2g``, ``1.5G``: powers of 1024) as a
    Kubernetes quantity (``512Mi``, ``2Gi``). In Kubernetes ``512m`` would be half a byte."""
    found = _SIZE.match(str(memory))
    if not found:
        raise InvalidInput(f"memory must be a size such as '512m' or '2g', not {memory!r}")
    number, unit = float(found.group(1)), found.group(2).lower()
    size = number * 1024 ** " kmgt".index(unit or " ")
    if size < 1:
        raise InvalidInput(f"memory must be a positive size, not {memory!r}")
    for suffix, factor in (("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if size >= factor and size % factor == 0:
            return f"{int(size // factor)}{suffix}"
    return str(math.ceil(size))


def resource_requirements(resources: StepResources) -> dict[str, Any]:
    """The tool container's requests and limits (the same: the step gets what it asks)."""
    if resources.partition:
        raise InvalidInput(
            f"partition {resources.partition!r} is a Slurm setting: a step on Kubernetes takes cpus, memory "
            "and gres 'gpu:N'"
        )
    amounts: dict[str, str] = {}
    if resources.cpus is not None:
        if not resources.cpus > 0:
            raise InvalidInput(f"cpus must be a positive number, not {resources.cpus!r}")
        amounts["cpu"] = f"{math.ceil(resources.cpus * 1000)}m"
    if resources.memory:
        amounts["memory"] = memory_quantity(resources.memory)
    if not amounts and not resources.gres:
        return {}
    limits = dict(amounts)
    if resources.gres:
        gpus = _GPU.match(resources.gres.strip())
        if not gpus:
            raise InvalidInput(f"gres {resources.gres!r} cannot be asked of Kubernetes: give 'gpu:N'")
        limits["nvidia.com/gpu"] = gpus.group(1)  # extended resources: limits only
    requirements: dict[str, Any] = {"limits": limits}
    if amounts:
        requirements["requests"] = amounts
    return requirements


def labels(spec: StepSpec, name: str) -> dict[str, str]:
    """The labels of the step's Job, its pod and its Secret (label values: 63 characters at most)."""
    values = {**spec.labels, LABEL_EXECUTOR: "kubernetes", LABEL_JOB: name}
    return {key: _label_value(value) for key, value in values.items()}


def _label_value(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", value)[:63].strip("-_.")


def secret(spec: StepSpec, name: str, namespace: str) -> dict[str, Any]:
    """The step's Secret: the transfer token and the values of the step's private variables."""
    assert spec.transfer is not None
    data = {TOKEN_KEY: spec.transfer.token}
    data.update({key: value for key, value in spec.env.items() if _is_secret(value, spec)})
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(spec, name)},
        "type": "Opaque",
        "stringData": data,
    }


def _is_secret(value: str, spec: StepSpec) -> bool:
    return bool(value) and value in spec.secret_values


def job(spec: StepSpec, name: str, namespace: str, helper_image: str = HELPER_IMAGE) -> dict[str, Any]:
    """The step's Job (see the module's docstring). Raises InvalidInput for what Kubernetes
    cannot be asked (a command that does not split, resources it has no name for)."""
    assert spec.transfer is not None
    try:
        args = split_command(spec.command)
    except ValueError as exc:
        raise InvalidInput(f"cannot split command {spec.command!r}: {exc}") from exc
    transfer_env = [
        {"name": "MAO_DATA_URL", "value": spec.transfer.data_url},
        {"name": "MAO_INPUT_URL", "value": spec.transfer.input_url or ""},
        {"name": TOKEN_KEY, "valueFrom": {"secretKeyRef": {"name": name, "key": TOKEN_KEY}}},
    ]
    data = {"name": "data", "mountPath": OUTPUT_MOUNT}
    scratch = {"name": "transfer", "mountPath": TRANSFER_DIR}
    helper = {"image": helper_image, "command": ["sh", "-c"], "env": transfer_env, "securityContext": {"runAsUser": 0}}
    tool: dict[str, Any] = {
        "name": STEP,
        "image": spec.image,
        "imagePullPolicy": PULL_POLICIES[spec.pull_policy],
        "env": _env(spec, name),
        "volumeMounts": [data, {"name": "input", "mountPath": INPUT_MOUNT, "readOnly": True}],
    }
    if args is not None:
        tool["args"] = args  # not command, which would replace the image's entrypoint
    requirements = resource_requirements(spec.resources)
    if requirements:
        tool["resources"] = requirements
    step_labels = labels(spec, name)
    pod = {
        "metadata": {"labels": step_labels},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "initContainers": [
                {**helper, "name": FETCH, "args": [_FETCH_SCRIPT], "volumeMounts": [data, scratch, _input_rw()]},
                tool,
            ],
            "containers": [{**helper, "name": SEND, "args": [_SEND_SCRIPT], "volumeMounts": [data, scratch]}],
            "volumes": [{"name": volume, "emptyDir": {}} for volume in ("data", "input", "transfer")],
        },
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": step_labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": max(1, math.ceil(spec.timeout)),
            "ttlSecondsAfterFinished": TTL_AFTER_FINISHED,
            "template": pod,
        },
    }


def _input_rw() -> dict[str, Any]:
    return {"name": "input", "mountPath": INPUT_MOUNT}


def _env(spec: StepSpec, name: str) -> list[dict[str, Any]]:
    """The tool's environment: the private variables from the step's Secret, the rest as values."""
    env: list[dict[str, Any]] = []
    for key, value in spec.env.items():
        if _is_secret(value, spec):
            env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}})
        else:
            env.append({"name": key, "value": value})
    return env
