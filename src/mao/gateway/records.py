"""Records written through the gateway: checked, appended as JSON lines on the node branch
``gateway-<token>``, committed with provenance trailers, pushed and merged into
``ground-truth`` under the dataset's ``merge-<dataset>`` lock, as a run's step output is.

Writes to one dataset are serialized in this process; records that wait meanwhile are
written together, one commit per token, when the dataset is free again.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator

from mao.delivery import NodeCommit
from mao.errors import Conflict, GitError, InvalidInput, PayloadTooLarge
from mao.gateway.tokens import TokenInfo
from mao.status import FederationState
from mao.untrusted import UnsafeJSON, load_json

if TYPE_CHECKING:
    from collections.abc import Callable

    from mao.datasets.manager import DatasetManager
    from mao.delivery import MergeDelivery

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 64 * 1024
"""A record's body, as sent."""
MAX_BATCH = 200
"""Records written in one commit at most."""
DEFAULT_RECORDS_PATH = "records/{token}.jsonl"


def branch_of(token: str) -> str:
    return f"gateway-{token}"


def parse_record(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or PayloadTooLarge / InvalidInput: UTF-8 JSON only, at most
    :data:`~mao.untrusted.MAX_JSON_DEPTH` levels deep, without NaN, Infinity or a lone surrogate."""
    if len(body) > MAX_RECORD_BYTES:
        raise PayloadTooLarge(
            f"a record is at most {MAX_RECORD_BYTES} bytes; this one is {len(body)}",
            details={"limit_bytes": MAX_RECORD_BYTES},
        )
    try:
        record = load_json(body)
    except UnsafeJSON as exc:
        raise InvalidInput(f"the record is {exc}") from None
    if not isinstance(record, dict):
        raise InvalidInput(f"a record is a JSON object, not {type(record).__name__}")
    return record


def check_schema(dataset: str, doc: Mapping[str, Any], record: dict[str, Any]) -> None:
    """InvalidInput listing where ``record`` breaks the dataset's ``record_schema`` (if it has one)."""
    schema = doc.get("record_schema")
    if not schema:
        return
    try:
        errors = sorted(Draft202012Validator(schema).iter_errors(record), key=lambda e: str(list(e.absolute_path)))
    except Exception as exc:  # a schema jsonschema cannot apply (its refs are checked when registered)
        raise Conflict(f"dataset {dataset!r}'s record_schema cannot be applied: {exc.__class__.__name__}") from exc
    if errors:
        found = [
            {"path": "/" + "/".join(str(p) for p in error.absolute_path), "message": error.message[:300]}
            for error in errors[:10]
        ]
        raise InvalidInput(
            f"the record does not match dataset {dataset!r}'s record_schema: "
            + "; ".join(f"{e['path']}: {e['message']}" for e in found[:3]),
            details={"errors": found},
        )


def records_path(doc: Mapping[str, Any], token: str) -> str:
    return str(doc.get("records_path") or DEFAULT_RECORDS_PATH).replace("{token}", token)


@dataclass
class _Item:
    token: str
    line: str
    record_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] | None = None
    error: BaseException | None = None


@dataclass
class _DatasetQueue:
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Held by the thread writing to the dataset."""
    guard: threading.Lock = field(default_factory=threading.Lock)
    pending: list[_Item] = field(default_factory=list)


class RecordWriter:
    """Writes records to datasets as instance ``name``, merged into ground-truth by ``merge``."""

    def __init__(self, datasets: Callable[[], DatasetManager], merge: MergeDelivery, name: str) -> None:
        self._datasets = datasets
        self.merge = merge
        self.name = name
        self._queues: dict[str, _DatasetQueue] = {}
        self._guard = threading.Lock()

    def _queue(self, dataset: str) -> _DatasetQueue:
        with self._guard:
            return self._queues.setdefault(dataset, _DatasetQueue())

    def write(self, token: TokenInfo, dataset: str, doc: Mapping[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        """Append ``record`` (checked already) to ``dataset`` for ``token``; returns
        ``{record_id, commit, merge_commit, branch, path}`` once it is in ground-truth."""
        if doc.get("policy", "merge") != "merge":
            raise Conflict(
                f"dataset {dataset!r} agrees by vote: ground-truth takes a slot's majority, "
                "so the gateway writes only to datasets with the merge policy"
            )
        item = _Item(token.name, json.dumps(record, ensure_ascii=False, separators=(",", ":")))
        queue = self._queue(dataset)
        with queue.guard:
            queue.pending.append(item)
        with queue.lock:
            while not item.done.is_set():
                with queue.guard:
                    batch, queue.pending = queue.pending[:MAX_BATCH], queue.pending[MAX_BATCH:]
                self._write_batch(dataset, doc, batch)
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def _write_batch(self, dataset: str, doc: Mapping[str, Any], batch: list[_Item]) -> None:
        groups: dict[str, list[_Item]] = {}
        for item in batch:
            groups.setdefault(item.token, []).append(item)
        for token, items in groups.items():
            try:
                outcome = self._commit(dataset, doc, token, items)
                for item in items:
                    item.result = {"record_id": item.record_id, **outcome}
            except BaseException as exc:  # noqa: BLE001 - handed to each waiting request
                for item in items:
                    item.error = exc
            finally:
                for item in items:
                    item.done.set()

    def _commit(self, dataset: str, doc: Mapping[str, Any], token: str, items: list[_Item]) -> dict[str, Any]:
        datasets = self._datasets()
        url = doc["master"]
        branch = branch_of(token)
        path = records_path(doc, token)
        worktree = datasets.prepare_output(dataset, url, branch)
        for pending, ok in datasets.push_pending(dataset).items():
            log.info(
                "dataset %s: earlier commit on %s %s", dataset, pending, "pushed now" if ok else "still not pushed"
            )
        ids = [item.record_id for item in items]
        trailers = {"Mao-Gateway-Token": token, "Mao-Instance": self.name, "Mao-Record-Id": ", ".join(ids)}
        noun = "record" if len(items) == 1 else "records"
        try:
            _append(worktree, worktree / path, [item.line for item in items])
            commit = datasets.commit_output(worktree, f"gateway: {len(items)} {noun} from token {token}", trailers)
        except OSError as exc:
            datasets.reset_worktrees(dataset, branch)
            raise InvalidInput(f"cannot append to {path} in dataset {dataset!r}: {exc.strerror or exc}") from exc
        except BaseException:
            datasets.reset_worktrees(dataset, branch)
            raise
        if commit is None:  # cannot happen: a line was appended
            raise GitError(f"appending to {path} changed nothing in dataset {dataset!r}")
        if not datasets.push(dataset, branch):
            raise GitError(
                f"the record is committed ({commit}) on {branch} but the push to the dataset's remote failed; "
                "it is pushed with the next write",
                details={"commit": commit, "record_ids": ids},
            )
        message = f"Merge {branch} into ground-truth (gateway token {token})"
        outcome = {"commit": commit, "branch": branch, "path": path, "batched": len(items)}
        node = NodeCommit(
            dataset=dataset, branch=branch, commit=commit, message=message, trailers=trailers, step=branch
        )
        merged = self.merge.deliver(node, pushed=True).merge_commit
        if merged is None:  # pushed: the merge waits for the registry, as a run's does
            return {**outcome, "merge_commit": None, "federation": FederationState.PENDING}
        log.info("dataset %s: %d %s from gateway token %s merged: %s", dataset, len(items), noun, token, merged)
        return {**outcome, "merge_commit": merged, "federation": FederationState.DONE}


def _append(worktree: Path, target: Path, lines: list[str]) -> None:
    resolved = target.resolve()
    if not resolved.is_relative_to(worktree.resolve()):
        raise OSError(0, "the path leaves the dataset")
    resolved.parent.mkdir(parents=True, exist_ok=True)
    prefix = ""
    if resolved.exists() and resolved.stat().st_size:
        with resolved.open("rb") as existing:
            existing.seek(-1, 2)
            prefix = "" if existing.read(1) == b"\n" else "\n"
    with resolved.open("a", encoding="utf-8") as out:
        out.write(prefix + "".join(line + "\n" for line in lines))
