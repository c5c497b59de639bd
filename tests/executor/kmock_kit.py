"""A Kubernetes API on loopback for the executor's tests: kmock's stateful emulator, served
from a thread of its own. It has no controllers and no kubelet: the tests play them, making
the Job's pod and changing its status over HTTP (so that watches see the changes)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import kmock

from tests.waiting import wait_for

NS = "default"
JOBS = "/apis/batch/v1/namespaces/default/jobs"
PODS = "/api/v1/namespaces/default/pods"
SECRETS = "/api/v1/namespaces/default/secrets"


class Cluster:
    """The emulator (``k``), its URL, and the moves of the Job controller and the kubelet."""

    def __init__(self, emulator: kmock.KubernetesEmulator, url: str) -> None:
        self.k = emulator
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)

    def jobs(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.http.get(JOBS).json().get("items") or []
        return items

    def secrets(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.http.get(SECRETS).json().get("items") or []
        return items

    def wait_job(self, timeout: float = 30) -> dict[str, Any]:
        """The step's Job, once the executor has made it."""
        found: list[dict[str, Any]] = []
        wait_for(lambda: found.extend(self.jobs()) or found, timeout, "the step's Job")
        return found[0]

    def start_pod(self, job: dict[str, Any], node: str | None = "node-1") -> str:
        """The Job controller's move: the Job's pod, pending (and scheduled on ``node``)."""
        name = f"{job['metadata']['name']}-x1"
        template = job["spec"]["template"]
        spec = dict(template["spec"])
        if node:
            spec["nodeName"] = node
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {**template["metadata"]["labels"], "job-name": name}},
            "spec": spec,
            "status": {"phase": "Pending"},
        }
        self.http.post(PODS, json=body).raise_for_status()
        return name

    def status(self, pod: str, **status: Any) -> None:
        """The kubelet's move: the pod's status becomes ``status`` (merged into what it was)."""
        self.http.patch(
            f"{PODS}/{pod}/status",
            json={"status": status},
            headers={"Content-Type": "application/merge-patch+json"},
        ).raise_for_status()

    def logs(self, text: str) -> None:
        """What the API answers for any pod's log (timestamped lines, as with ``timestamps``)."""
        self.k["get", kmock.subresource("log")] << kmock.headers({"Content-Type": "text/plain"}) << text.encode()

    def requests(self, resource: str, verb: str) -> list[Any]:
        return list(self.k[kmock.resource(resource), verb])


def terminated(name: str, code: int, reason: str = "Completed", image_id: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "image": "x",
        "imageID": image_id,
        "ready": False,
        "restartCount": 0,
        "state": {"terminated": {"exitCode": code, "reason": reason}},
    }


def running(name: str) -> dict[str, Any]:
    return {"name": name, "image": "x", "imageID": "", "ready": True, "restartCount": 0, "state": {"running": {}}}


def waiting(name: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "image": "x",
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "state": {"waiting": {"reason": reason, "message": message}},
    }


@contextmanager
def serve() -> Iterator[Cluster]:
    """A fresh emulator on a random loopback port, for one test."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator, host="127.0.0.1") as server:
            for resource in ("v1/pods", "v1/secrets", "batch/v1/jobs"):
                emulator.resources[resource] = {}  # LIST and WATCH work before the first object
            box.update(emulator=emulator, url=str(server.url).rstrip("/"), stop=asyncio.Event())
            box["loop"] = asyncio.get_running_loop()
            ready.set()
            await box["stop"].wait()

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="kmock", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the Kubernetes API mock did not start")
    cluster = Cluster(box["emulator"], box["url"])
    try:
        yield cluster
    finally:
        cluster.http.close()
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)
