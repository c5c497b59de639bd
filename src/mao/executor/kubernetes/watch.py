"""Following a step's pod: its changes by a watch of pods with the Job's label (listed again
when the API says the watch's version is gone, 410), and its container's log, resumed after
a broken stream from the last line's timestamp."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

import urllib3
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from mao.executor.base import LogSink

logger = logging.getLogger(__name__)

WATCH_WINDOW = 30
"""Seconds one watch request stays open before it is made again (the API may end it sooner)."""

RETRY_PAUSE = 1.0
"""Seconds before a watch or a log stream broken by an error is made again."""

STREAM_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError)

Pod = dict[str, Any]


class PodWatch(threading.Thread):
    """Puts each version of the pods labelled ``selector`` (``key=value``) on :attr:`changes`,
    in order, until :meth:`stop`. A pod deleted is put with ``"deleted": True``."""

    def __init__(self, core: Any, namespace: str, selector: str) -> None:
        super().__init__(name=f"watch {selector}", daemon=True)
        self.core = core
        self.namespace = namespace
        self.selector = selector
        self._key, _, self._value = selector.partition("=")
        self.changes: queue.Queue[Pod] = queue.Queue()
        self._stopping = threading.Event()
        self._watch: Any = None
        self.relists = 0
        """How many times the pods were listed again after the API forgot a version (410)."""

    def stop(self) -> None:
        self._stopping.set()
        if self._watch is not None:
            self._watch.stop()

    def run(self) -> None:
        version: str | None = None
        while not self._stopping.is_set():
            try:
                if version is None:
                    version = self._list()
                version = self._follow(version)
            except ApiException as exc:
                if exc.status == 410:  # the version is too old: list afresh
                    self.relists += 1
                    version = None
                    continue
                logger.warning("watching pods %s: %s", self.selector, exc)
                self._stopping.wait(RETRY_PAUSE)
            except STREAM_ERRORS as exc:  # a timeout of the read, a broken connection: watch again
                logger.debug("watch of pods %s ended: %s", self.selector, exc)
                if not self._stopping.is_set():
                    self._stopping.wait(0.05)

    def _list(self) -> str:
        response = self.core.list_namespaced_pod(
            self.namespace, label_selector=self.selector, _preload_content=False, _request_timeout=WATCH_WINDOW
        )
        listed = _json(response)
        for pod in listed.get("items") or []:
            self._put(pod)
        return str((listed.get("metadata") or {}).get("resourceVersion") or "")

    def _follow(self, version: str) -> str:
        self._watch = _new_watch()
        options: dict[str, Any] = {"label_selector": self.selector, "timeout_seconds": WATCH_WINDOW}
        if version and version.isdigit():
            options["resource_version"] = version
        for event in self._watch.stream(
            self.core.list_namespaced_pod, self.namespace, _request_timeout=WATCH_WINDOW + 5, **options
        ):
            if self._stopping.is_set():
                break
            kind, pod = event.get("type"), event.get("raw_object") or {}
            if kind == "ERROR":
                code = int(pod.get("code") or 0)
                raise ApiException(status=code or 500, reason=str(pod.get("message") or "watch error"))
            if kind == "DELETED":
                pod = {**pod, "deleted": True}
            self._put(pod)
            version = str((pod.get("metadata") or {}).get("resourceVersion") or version)
        return version

    def _put(self, pod: Pod) -> None:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if labels.get(self._key) == self._value:  # an API (or a mock) may ignore the selector
            self.changes.put(pod)


def _new_watch() -> Any:
    make: Any = watch.Watch
    return make()


def _json(response: Any) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads(response.data)
    return data


class LogFollower(threading.Thread):
    """Passes each line of a container's log to ``sink`` as it comes; resumes a stream that
    breaks from the last line's timestamp, without repeating lines; ends once ``ended()``
    says the container has ended and its log has been read to the end."""

    def __init__(self, core: Any, namespace: str, pod: str, container: str, sink: LogSink) -> None:
        super().__init__(name=f"log {pod}/{container}", daemon=True)
        self.core = core
        self.namespace = namespace
        self.pod = pod
        self.container = container
        self.sink = sink
        self.ended = threading.Event()
        """Set by the caller once the container has ended: the next end of stream is the last."""
        self.stop_now = threading.Event()
        self._last = ""  # the timestamp of the last line passed on, as :func:`_stamp_key`
        self._at_last = 0  # lines passed on with that timestamp
        self._skip = 0  # lines with that timestamp still to skip in a resumed stream
        self.resumes = 0

    def run(self) -> None:
        while not self.stop_now.is_set():
            final = self.ended.is_set()
            try:
                self._read(follow=not final)
            except STREAM_ERRORS as exc:
                logger.debug("log of %s/%s broke: %s", self.pod, self.container, exc)
                if final:
                    return
                self.stop_now.wait(RETRY_PAUSE)
                continue
            if final:
                return
            self.resumes += 1
            self.ended.wait(RETRY_PAUSE)  # the stream ended: the container ended, or the stream broke

    def _read(self, follow: bool) -> None:
        options: dict[str, Any] = {"container": self.container, "timestamps": True, "follow": follow}
        if self._last:
            options["since_time"] = self._last[:19] + "Z"  # the API takes whole seconds
        self._skip = self._at_last
        response: Any = self.core.read_namespaced_pod_log(
            self.pod, self.namespace, _preload_content=False, _request_timeout=(10, 3600) if follow else 30, **options
        )
        try:
            # a line cut by a broken stream is read whole when the stream is resumed
            for line in _lines(response.stream(4096), partial=not follow):
                if self.stop_now.is_set():
                    return
                self._take(line)
        finally:
            response.release_conn()

    def _take(self, line: str) -> None:
        stamp, _, text = line.partition(" ")
        key = _stamp_key(stamp)
        if key is None:  # no timestamp: pass it on as it is
            self.sink(line)
            return
        if key < self._last:
            return  # passed on before the stream broke
        if key == self._last:
            if self._skip > 0:
                self._skip -= 1
                return
            self._at_last += 1
        else:
            self._last, self._at_last, self._skip = key, 1, 0
        self.sink(text)


def _stamp_key(stamp: str) -> str | None:
    """An RFC 3339 timestamp (``2026-12-06T19:00:00.12Z``) in a form that sorts as time does
    (nine digits of fraction), or None when ``stamp`` is not one."""
    if len(stamp) < 20 or not stamp[:4].isdigit() or stamp[10] != "T" or not stamp.endswith("Z"):
        return None
    whole, _, fraction = stamp[:-1].partition(".")
    return f"{whole}.{fraction.ljust(9, '0')[:9]}"


def _lines(chunks: Iterator[bytes], partial: bool) -> Iterator[str]:
    """The lines of a stream; its last one, with no line end, only when ``partial``."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *whole, pending = pending.split(b"\n")
        for line in whole:
            yield line.decode("utf-8", "replace").rstrip("\r")
    if pending and partial:
        yield pending.decode("utf-8", "replace")
