"""The key layout of the federation registry, in one place.

Every key is relative to the registry's prefix (etcd: ``registry_prefix``); ``<slot>`` is a
slot in its compact form ``20261128T120000Z`` (:func:`mao.slots.slot_key`)::

    tools/<name>                                           a tool's definition
    datasets/<name>                                        a dataset's definition (master, nodes, policy)
    pipelines/<name>                                       a pipeline's definition
    instances/<instance>                                   a live member, under its heartbeat lease
    schedules/<instance>/<pipeline>                        a cron schedule an instance published
    coverage/<pipeline>/<slot>/<instance>                  a slot's outcome on one instance
    claims/<pipeline>/<slot>                               a ``one``-mode slot's claim
    gaps/<pipeline>/<slot>                                 a ``one``-mode slot nobody delivered
    triggers/<pipeline>/<change>                           a ``one``-mode trigger's claim on a change
                                                           (``<dataset>@<commit>``, ``+`` between several)
    deadlines/<pipeline>/<slot>                            a slot's deadline verdict (met or missed), once
    insights/<pipeline>/<step>                             a step's current insight
    ballots/<instance>/<dataset>/<pipeline>/<step>/<slot>  a vote
    electorates/<dataset>/<pipeline>/<step>/<slot>         who votes on a slot, and until when
    tallies/<dataset>/<pipeline>/<step>/<slot>             a slot's outcome (an index of its tally commit)
    signing-keys/<instance>/<key-id>                       a public key an instance signs its commits with
    revoked-keys/<instance>/<key-id>                       a signing key retired: its signatures no longer count
    locks/<name>                                           a federation-wide mutex under a lease:
                                                           merge-<dataset> guards its ground-truth,
                                                           datasets-<dataset> its definition's nodes
    trains/<instance>/<dataset>/<branch>                   a node commit waiting for its merge (a rider)
    merged/<dataset>/<commit>                              which merge took a rider's node commit in
    checkpoints/<instance>/<dataset>                       an instance's signed checkpoint of a tally log

Keys an instance alone writes put its name right after the family (``instances/<instance>``
exactly, ``ballots/<instance>/``, ``schedules/<instance>/``), so etcd's role-based access can
grant each instance those and nothing else of another's (:func:`owned_by`); every other
family is shared (:data:`SHARED`). ``maoctl federation migrate-keys`` moves keys of the
earlier layout, where the instance came last (:mod:`mao.registry.migrate`).

The SQL backend (:mod:`mao.registry.local`) keeps its own bookkeeping beside them, under
``_leases/`` and ``_meta/``; those are never listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from mao.slots import slot_key

T = TypeVar("T")

TOOLS = "tools/"
DATASETS = "datasets/"
PIPELINES = "pipelines/"
INSTANCES = "instances/"
SCHEDULES = "schedules/"
COVERAGE = "coverage/"
CLAIMS = "claims/"
GAPS = "gaps/"
TRIGGERS = "triggers/"
DEADLINES = "deadlines/"
INSIGHTS = "insights/"
BALLOTS = "ballots/"
ELECTORATES = "electorates/"
TALLIES = "tallies/"
LOCKS = "locks/"
TRAINS = "trains/"
MERGED = "merged/"
CHECKPOINTS = "checkpoints/"
SIGNING_KEYS = "signing-keys/"
REVOKED_KEYS = "revoked-keys/"

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


def schedules_prefix(instance: str | None = None) -> str:
    """Every published schedule (keyed ``<instance>/<pipeline>``), or one instance's (keyed by pipeline)."""
    return SCHEDULES + (f"{instance}/" if instance else "")


def schedule_key(pipeline: str, instance: str) -> str:
    return f"{SCHEDULES}{instance}/{pipeline}"


def schedules_of(listing: dict[str, T], pipeline: str | None = None) -> dict[tuple[str, str], T]:
    """A listing of :func:`schedules_prefix` ``()`` as ``{(pipeline, instance): value}``, for one
    pipeline or all (keys of another shape are left out)."""
    out: dict[tuple[str, str], T] = {}
    for key, value in listing.items():
        parts = key.split("/")
        if len(parts) == 2 and all(parts) and (pipeline is None or parts[1] == pipeline):
            out[(parts[1], parts[0])] = value
    return out


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


def deadlines_prefix(pipeline: str) -> str:
    """Every deadline verdict of a pipeline, keyed by slot (compact form)."""
    return f"{DEADLINES}{pipeline}/"


def deadline_key(pipeline: str, slot: str) -> str:
    return deadlines_prefix(pipeline) + slot_key(slot)


def trigger_claim_key(pipeline: str, change: str) -> str:
    """The claim of ``pipeline``'s run for ``change`` (``<dataset>@<commit>[+...]``) in ``one`` mode."""
    return f"{TRIGGERS}{pipeline}/{change}"


def insight_key(pipeline: str, step: str) -> str:
    return f"{INSIGHTS}{pipeline}/{step}"


def slot_path(dataset: str, pipeline: str, step: str, slot: str) -> str:
    """``<dataset>/<pipeline>/<step>/<slot>``: one unit of agreement under ``ballots/``,
    ``electorates/`` and ``tallies/``."""
    return f"{dataset}/{pipeline}/{step}/{slot_key(slot)}"


def ballots_prefix(instance: str) -> str:
    """Every ballot ``instance`` cast, keyed by :func:`slot_path`."""
    return f"{BALLOTS}{instance}/"


def ballot_key(path: str, instance: str) -> str:
    """``instance``'s ballot on the slot at ``path`` (:func:`slot_path`)."""
    return ballots_prefix(instance) + path


def electorate_key(path: str) -> str:
    return ELECTORATES + path


def electorates_prefix(dataset: str | None = None) -> str:
    return ELECTORATES + (f"{dataset}/" if dataset else "")


def tally_key(path: str) -> str:
    return TALLIES + path


def lock_key(name: str) -> str:
    return LOCKS + name


def train_key(instance: str, dataset: str, branch: str) -> str:
    """Where ``instance`` posts the node commit of ``branch`` that waits for ``dataset``'s merge lock."""
    return f"{TRAINS}{instance}/{dataset}/{branch}"


def checkpoint_key(instance: str, dataset: str) -> str:
    """Where ``instance`` publishes its signed checkpoint of ``dataset``'s tally log."""
    return f"{CHECKPOINTS}{instance}/{dataset}"


def merged_key(dataset: str, commit: str) -> str:
    """Where the holder of ``dataset``'s merge lock says which merge took node ``commit`` in."""
    return f"{MERGED}{dataset}/{commit}"


def merge_lock(dataset: str) -> str:
    """The name of the lock guarding ``dataset``'s ``ground-truth`` (its key: ``locks/merge-<dataset>``)."""
    return MERGE_LOCK + dataset


def dataset_lock(dataset: str) -> str:
    """The name of the lock guarding the ``nodes`` of ``dataset``'s definition."""
    return DATASET_LOCK + dataset


def merged_dataset(lock: str) -> str | None:
    """The dataset a lock named ``merge-<dataset>`` guards, or None for another lock."""
    return lock[len(MERGE_LOCK) :] if lock.startswith(MERGE_LOCK) else None


# who may write what ------------------------------------------------------------------

SHARED = (
    TOOLS,
    DATASETS,
    PIPELINES,
    COVERAGE,
    CLAIMS,
    GAPS,
    TRIGGERS,
    DEADLINES,
    INSIGHTS,
    ELECTORATES,
    TALLIES,
    LOCKS,
    MERGED,
)
"""Families every instance writes: the catalog, coverage, claims, gaps, trigger claims and
deadline verdicts, insights, the electorates and tallies of votes (guarded by the signed
commits they index), and locks. A family added to the layout goes here or in :data:`OWNED`."""

OWNED = (BALLOTS, SCHEDULES, TRAINS, SIGNING_KEYS, REVOKED_KEYS, CHECKPOINTS)
"""Families whose keys start with the instance that alone writes them (``<family><instance>/``);
an instance's revoked keys are written by itself (a rotation) or by the operator (``root``)."""


@dataclass(frozen=True)
class Owned:
    """What one instance alone may write: exact keys and key prefixes (relative to the registry's prefix)."""

    keys: tuple[str, ...]
    prefixes: tuple[str, ...]


def owned_by(instance: str) -> Owned:
    """The keys ``instance`` owns: its membership record exactly (a prefix grant on
    ``instances/a`` would also cover ``instances/ab``) and its part of each owned family."""
    return Owned(keys=(instance_key(instance),), prefixes=tuple(f"{family}{instance}/" for family in OWNED))


def signing_keys_prefix(instance: str | None = None) -> str:
    """Every published signing key (keyed ``<instance>/<key-id>``), or one instance's (keyed ``<key-id>``)."""
    return SIGNING_KEYS + (f"{instance}/" if instance else "")


def signing_key_key(instance: str, key_id: str) -> str:
    return f"{SIGNING_KEYS}{instance}/{key_id}"


def revoked_keys_prefix(instance: str | None = None) -> str:
    """Every revoked signing key (keyed ``<instance>/<key-id>``), or one instance's."""
    return REVOKED_KEYS + (f"{instance}/" if instance else "")


def revoked_key_key(instance: str, key_id: str) -> str:
    return f"{REVOKED_KEYS}{instance}/{key_id}"
