"""The key layout of the federation registry, in one place.

Every key is relative to the registry's prefix (etcd: ``registry_prefix``); ``<slot>`` is a
slot in its compact form ``20261128T120000Z`` (:func:`mao.slots.slot_key`)::

    tools/<name>                                           a tool's definition
    datasets/<name>                                        a dataset's definition (master, nodes, policy)
    pipelines/<name>                                       a pipeline's definition
    instances/<instance>                                   a live member, under its heartbeat lease
    schedules/<pipeline>/<instance>                        a cron schedule an instance published
    coverage/<pipeline>/<slot>/<instance>                  a slot's outcome on one instance
    claims/<pipeline>/<slot>                               a ``one``-mode slot's claim
    gaps/<pipeline>/<slot>                                 a ``one``-mode slot nobody delivered
    insights/<pipeline>/<step>                             a step's current insight
    ballots/<dataset>/<pipeline>/<step>/<slot>/<instance>  a vote
    electorates/<dataset>/<pipeline>/<step>/<slot>         who votes on a slot, and until when
    tallies/<dataset>/<pipeline>/<step>/<slot>             a slot's outcome (an index of its tally commit)
    locks/<name>                                           a federation-wide mutex under a lease:
                                                           merge-<dataset> guards its ground-truth,
                                                           datasets-<dataset> its definition's nodes

The SQL backend (:mod:`mao.registry.local`) keeps its own bookkeeping beside them, under
``_leases/`` and ``_meta/``; those are never listed.
"""

from __future__ import annotations

from mao.slots import slot_key

TOOLS = "tools/"
DATASETS = "datasets/"
PIPELINES = "pipelines/"
INSTANCES = "instances/"
SCHEDULES = "schedules/"
COVERAGE = "coverage/"
CLAIMS = "claims/"
GAPS = "gaps/"
INSIGHTS = "insights/"
BALLOTS = "ballots/"
ELECTORATES = "electorates/"
TALLIES = "tallies/"
LOCKS = "locks/"

CATALOG = (DATASETS, PIPELINES, TOOLS)
"""The catalog's families: read on every API listing and every step, written rarely (cached)."""

MERGE_LOCK = "merge-"
"""Locks named ``merge-<dataset>`` guard a dataset's ``ground-truth``."""
DATASET_LOCK = "datasets-"
"""Locks named ``datasets-<dataset>`` guard the ``nodes`` of a dataset's definition."""

LOCAL_LEASES = "_leases/"
LOCAL_META = "_meta/"
LOCAL_GENERATION = LOCAL_META + "generation"
"""The SQL backend's row changed by every write of a catalog key, in the write's transaction."""


def tool_key(name: str) -> str:
    return TOOLS + name


def dataset_key(name: str) -> str:
    return DATASETS + name


def pipeline_key(name: str) -> str:
    return PIPELINES + name


def instance_key(name: str) -> str:
    return INSTANCES + name


def schedules_prefix(pipeline: str | None = None) -> str:
    """Every published schedule, or those of one pipeline (keyed by instance)."""
    return SCHEDULES + (f"{pipeline}/" if pipeline else "")


def schedule_key(pipeline: str, instance: str) -> str:
    return f"{SCHEDULES}{pipeline}/{instance}"


def coverage_prefix(pipeline: str) -> str:
    """Every cell of a pipeline, keyed ``<slot>/<instance>``."""
    return f"{COVERAGE}{pipeline}/"


def coverage_key(pipeline: str, slot: str, instance: str | None = None) -> str:
    """A slot's cell on ``instance``, or (without one) the prefix of the slot's cells."""
    base = f"{coverage_prefix(pipeline)}{slot_key(slot)}/"
    return base + instance if instance else base


def claim_key(pipeline: str, slot: str) -> str:
    return f"{CLAIMS}{pipeline}/{slot_key(slot)}"


def gap_key(pipeline: str, slot: str) -> str:
    return f"{GAPS}{pipeline}/{slot_key(slot)}"


def insight_key(pipeline: str, step: str) -> str:
    return f"{INSIGHTS}{pipeline}/{step}"


def slot_path(dataset: str, pipeline: str, step: str, slot: str) -> str:
    """``<dataset>/<pipeline>/<step>/<slot>``: one unit of agreement under ``ballots/``,
    ``electorates/`` and ``tallies/``."""
    return f"{dataset}/{pipeline}/{step}/{slot_key(slot)}"


def ballots_prefix(path: str) -> str:
    """The ballots of the slot at ``path`` (:func:`slot_path`), keyed by instance."""
    return f"{BALLOTS}{path}/"


def ballot_key(path: str, instance: str) -> str:
    return ballots_prefix(path) + instance


def electorate_key(path: str) -> str:
    return ELECTORATES + path


def electorates_prefix(dataset: str | None = None) -> str:
    return ELECTORATES + (f"{dataset}/" if dataset else "")


def tally_key(path: str) -> str:
    return TALLIES + path


def lock_key(name: str) -> str:
    return LOCKS + name


def merge_lock(dataset: str) -> str:
    """The name of the lock guarding ``dataset``'s ``ground-truth`` (its key: ``locks/merge-<dataset>``)."""
    return MERGE_LOCK + dataset


def dataset_lock(dataset: str) -> str:
    """The name of the lock guarding the ``nodes`` of ``dataset``'s definition."""
    return DATASET_LOCK + dataset


def merged_dataset(lock: str) -> str | None:
    """The dataset a lock named ``merge-<dataset>`` guards, or None for another lock."""
    return lock[len(MERGE_LOCK) :] if lock.startswith(MERGE_LOCK) else None
