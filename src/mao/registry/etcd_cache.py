"""Keeps an etcd registry's :class:`~mao.registry.cache.ReadCache` current.

- **Load**: the cached prefixes are read in one transaction, so at one revision.
- **Watch**: a thread follows a watch on the registry's whole prefix from the next
  revision and applies each change. When the stream breaks (the member stops, the
  connection drops), the cache is marked stale at once and reads go to etcd; the watch
  is opened again, on the next member if need be, from the last revision it applied (a
  compacted revision means a full load).
- **Verify**: every ``max_stale / 4`` seconds one read-only transaction asks, for each
  cached prefix, how many keys it holds and which changed after the cache's revision. The
  same count and no such key mean the cache equals etcd: reads may use it for
  ``max_stale`` seconds from when the check began. A watch that silently stops delivering
  is found this way too, and reopened once the cache has disagreed with etcd for longer
  than ``max_stale``.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
from typing import Any, Protocol

import requests
from etcd3gw.client import Etcd3Client

from mao.loop import LoopService
from mao.registry.cache import ReadCache

log = logging.getLogger(__name__)


class EtcdMembers(Protocol):
    """What the follower uses of its registry (an etcd registry): the key prefix, the members
    and which one is current, and a transaction sent with the registry's failover."""

    @property
    def prefix(self) -> str: ...

    @property
    def clients(self) -> list[Etcd3Client]: ...

    @property
    def current(self) -> int: ...

    def next_member(self, failed: Etcd3Client) -> None: ...

    def probe_timeout(self, client: Etcd3Client) -> float: ...

    def txn(self, body: dict[str, Any]) -> dict[str, Any]: ...


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def range_end(prefix: str) -> str:
    """The end of the key range of everything under ``prefix`` (base64)."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return b64(bytes(raw))


def _text(value: str) -> str:
    return base64.b64decode(value).decode()


class WatchBroken(Exception):
    pass


class EtcdCacheFollower:
    """The watch thread and the verification loop of one EtcdRegistry's cache."""

    def __init__(self, registry: EtcdMembers, cache: ReadCache) -> None:
        self.registry = registry
        self.cache = cache
        self.prefix = registry.prefix
        self._stop = threading.Event()
        self._session = requests.Session()  # the stream's own connection, closed to end it
        self._response: requests.Response | None = None
        self._thread = threading.Thread(target=self._watch_loop, name="mao-registry-watch", daemon=True)
        self._verifier = _Verifier(self)
        self._disagree_since: float | None = None
        self.watching = False
        self.streams = 0
        """Watch streams opened so far (tests and diagnosis)."""

    def start(self) -> EtcdCacheFollower:
        self._thread.start()
        self._verifier.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._verifier.stop()
        self._break_stream()
        self._thread.join(timeout=5)
        self._session.close()

    # load ------------------------------------------------------------------------------

    def _txn(self, ranges: list[dict[str, Any]]) -> dict[str, Any]:
        return self.registry.txn({"success": [{"request_range": r} for r in ranges]})

    def load(self) -> None:
        ranges = [{"key": b64(self.prefix + p), "range_end": range_end(self.prefix + p)} for p in self.cache.prefixes]
        answer = self._txn(ranges)
        entries = {}
        for item in answer.get("responses", []):
            for kv in item.get("response_range", {}).get("kvs", []):
                entries[_text(kv["key"])[len(self.prefix) :]] = _text(kv.get("value", ""))
        self.cache.load(entries, revision=int(answer["header"]["revision"]))

    # verify ----------------------------------------------------------------------------

    def verify(self) -> bool:
        """One check of the cache against etcd; True if they agree."""
        if not self.cache.loaded or not self.watching:
            return False
        began = self.cache.clock()
        snapshot = self.cache.snapshot()
        ranges = [
            {
                "key": b64(self.prefix + p),
                "range_end": range_end(self.prefix + p),
                "keys_only": True,
                "min_mod_revision": str(snapshot.revision + 1),
            }
            for p in self.cache.prefixes
        ]
        answer = self._txn(ranges)
        agree = True
        for prefix, item in zip(self.cache.prefixes, answer.get("responses", []), strict=True):
            found = item.get("response_range", {})
            # count: every key of the range; kvs: only those changed after the cache's revision
            if int(found.get("count", 0)) != snapshot.counts[prefix] or found.get("kvs"):
                agree = False
        if agree and self.cache.confirm(snapshot, began, int(answer["header"]["revision"])):
            self._disagree_since = None
            return True
        if self._disagree_since is None:
            self._disagree_since = began
        elif began - self._disagree_since > self.cache.max_stale:
            log.warning(
                "the registry cache has disagreed with etcd for %.1fs: reopening its watch", self.cache.max_stale
            )
            self._disagree_since = None
            self._break_stream()
        return False

    # watch -----------------------------------------------------------------------------

    def _break_stream(self) -> None:
        response = self._response
        if response is not None:
            sock = getattr(getattr(response.raw, "connection", None), "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading it
                except OSError:
                    pass
            response.close()

    def _watch_loop(self) -> None:
        pause = 0.1
        while not self._stop.is_set():
            try:
                if not self.cache.loaded:
                    self.load()
                self._follow()
            except Exception as exc:  # noqa: BLE001 - the watch must outlive any failure
                if self.watching:  # a working stream broke: said, and retried soon
                    pause = 0.1
                if not self._stop.is_set():  # said once per outage, not at every retry
                    level = logging.WARNING if pause == 0.1 else logging.DEBUG
                    log.log(level, "registry watch: %s; reads go to etcd until it is back", exc)
            finally:
                self.watching = False
                self.cache.mark_stale()
            self._stop.wait(pause)
            pause = min(pause * 2, 2.0)

    def _follow(self) -> None:
        """Open a watch from the cache's next revision on the current member and apply
        what it says until it ends; raises when it cannot be opened or breaks."""
        client = self.registry.clients[self.registry.current]
        try:
            self._stream(client)
        except (requests.RequestException, WatchBroken, ValueError, OSError) as exc:
            self.registry.next_member(client)
            raise WatchBroken(f"{client.base_url}: {exc.__class__.__name__}: {exc}") from exc

    def _stream(self, client: Etcd3Client) -> None:
        create = {
            "key": b64(self.prefix),
            "range_end": range_end(self.prefix),
            "start_revision": str(self.cache.revision + 1),
        }
        response = self._session.post(
            client.get_url("/watch"),
            json={"create_request": create},
            stream=True,
            timeout=(self.registry.probe_timeout(client), None),
        )
        self._response = response
        self.streams += 1
        try:
            response.raise_for_status()
            buffer = b""
            for chunk in response.iter_content(chunk_size=None):
                if self._stop.is_set():
                    return
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        self._message(json.loads(line))
            if not self._stop.is_set():
                raise WatchBroken("the watch stream ended")
        finally:
            self._response = None
            response.close()

    def _message(self, message: dict[str, Any]) -> None:
        """One message of the watch stream: created, cancelled (compacted), or changes."""
        if "error" in message:
            raise WatchBroken(str(message["error"].get("message", message["error"])))
        result = message.get("result", {})
        if int(result.get("compact_revision", 0) or 0) > 0:
            log.warning("registry watch: revision %s was compacted; loading the catalog again", self.cache.revision)
            self.cache.invalidate()
            raise WatchBroken("compacted")
        if result.get("canceled"):
            raise WatchBroken(result.get("cancel_reason") or "the watch was cancelled")
        revision = int(result.get("header", {}).get("revision", 0))
        if result.get("created"):
            self.watching = True
            self._verifier.wake()  # fresh again as soon as a check agrees
            return
        events = []
        for event in result.get("events", []):
            kv = event["kv"]
            key = _text(kv["key"])[len(self.prefix) :]
            text = None if event.get("type") == "DELETE" else _text(kv.get("value", ""))
            events.append((key, text, int(kv.get("mod_revision", revision))))
        self.cache.apply(events, revision)


class _Verifier(LoopService):
    name = "registry-cache-verify"

    def __init__(self, follower: EtcdCacheFollower) -> None:
        super().__init__(follower.cache.interval)
        self.follower = follower

    def run_once(self) -> None:
        self.follower.verify()

    def on_error(self, exc: Exception) -> None:  # etcd away: reads fall back when the bound passes
        log.debug("registry cache check failed: %s", exc)
