"""Ground truth by vote: cast a ballot, tally a slot exactly once, resolve a disputed slot.

For each (dataset, pipeline, step, slot) every instance that ran the step publishes a
ballot: the id of the change its step made (see :mod:`mao.datasets.changes`) and its
node commit. The slot is tallied once every elector voted, or at the dataset's
deadline by whoever notices first. The change a strict majority of the ballots cast
agrees on is applied on top of ``ground-truth`` as one tally commit whose trailers
name the voters; no majority leaves ground-truth alone and the slot ``disputed``
until an operator picks a ballot.

Exactly one tally commit per slot: talliers hold the dataset's federation lock and
look for the slot's tally commit in ground-truth before writing one. The registry's
``tallies/…`` entry is only an index, rebuilt from that commit when missing.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mao.agreement.ballots import BallotBox, SlotRef
from mao.agreement.signers import REJECTED_TRAILER, SIGNERS_TRAILER, BallotChecker, BallotVerdict, KeyDirectory
from mao.datasets.changes import TallyCommit
from mao.errors import Conflict, InvalidInput, MAOError, NotFound, RegistryUnavailable
from mao.events import VoteDisputed
from mao.models import VOTE_DEADLINE
from mao.registry.keys import electorate_key, merge_lock
from mao.slots import normalize_slot
from mao.validation import check_name

if TYPE_CHECKING:
    from mao.catalog import Catalog
    from mao.datasets.manager import DatasetManager
    from mao.events import EventBus
    from mao.registry.base import Registry

log = logging.getLogger(__name__)

AGREED, DISPUTED, RESOLVED, OPEN = "agreed", "disputed", "resolved", "open"
NONE = "none"


def vote_deadline(doc: Mapping[str, Any]) -> int:
    """The seconds a slot of the dataset defined by ``doc`` stays open for ballots."""
    return int(doc.get("vote_deadline") or VOTE_DEADLINE)


@dataclass
class Decision:
    outcome: str
    winner: str | None = None
    voters_for: list[str] = field(default_factory=list)
    against: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    """Electors whose ballots did not count, with the reason (see :mod:`mao.agreement.signers`)."""
    signers: str | None = None
    """The digest of the slot's allowed signers (``Mao-Signers``)."""


def decide(electors: list[str], ballots: dict[str, dict[str, Any]]) -> Decision:
    """The strict majority of the electors' ballots cast (late ones do not count)."""
    cast = {i: b for i, b in ballots.items() if i in electors and not b.get("late")}
    missing = sorted(set(electors) - set(cast))
    counts = Counter(b["output_id"] for b in cast.values())
    candidates = [
        {"output_id": oid, "instances": sorted(i for i, b in cast.items() if b["output_id"] == oid), "votes": n}
        for oid, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    if not cast:
        return Decision(OPEN, missing=missing)
    top = candidates[0]
    if top["votes"] * 2 > len(cast):
        against = sorted(set(cast) - set(top["instances"]))
        return Decision(AGREED, top["output_id"], top["instances"], against, missing, candidates)
    return Decision(DISPUTED, None, [], [], missing, candidates)


@dataclass(frozen=True)
class Vote:
    """This instance's vote in a slot: the id of the change of its node ``commit`` (see
    :func:`mao.datasets.changes.output_id`), and the run that made it."""

    output: str
    commit: str
    run_id: int


def _names(values: list[str]) -> str:
    return ",".join(values) if values else NONE


class Tallier:
    """This instance's part in the vote: its ballots, and the tallies it writes when it is the
    one to notice a slot is due. ``lock_ttl`` is the life of the ``merge-<dataset>`` lock
    (:func:`mao.delivery.merge_lock_ttl`), held while a tally commit is looked for and written."""

    def __init__(
        self,
        registry: Registry,
        catalog: Catalog,
        datasets: Callable[[], DatasetManager],
        events: EventBus,
        *,
        name: str,
        lock_ttl: int,
    ) -> None:
        self.registry = registry
        self.catalog = catalog
        self._datasets = datasets
        self.events = events
        self.name = name
        """This instance's name: its ballots' and tally commits' ``Mao-Instance``."""
        self.lock_ttl = lock_ttl
        self.box = BallotBox(registry)
        self.checker = BallotChecker(KeyDirectory(registry))

    @property
    def datasets(self) -> DatasetManager:
        return self._datasets()

    # ------------------------------------------------------------------ ballots

    def cast(
        self,
        ref: SlotRef,
        vote: Vote,
        *,
        doc: Mapping[str, Any],
        electorate: Mapping[str, Any] | None = None,
        cloned: bool = False,
    ) -> dict[str, Any]:
        """Publish this instance's ballot for the slot (after its node branch was pushed), then
        tally if every elector has voted or the deadline passed. Returns the ballot.

        ``doc`` (the dataset's definition) and ``electorate`` (the slot's, None: opened here)
        are taken as the caller holds them; ``cloned`` says the caller fetched the dataset's
        clone for this step already."""
        if electorate is None:
            electorate = self.box.open(ref, self.name, vote_deadline(doc))
        tallied = self.box.outcome(ref) is not None
        ballot = {
            "output_id": vote.output,
            "commit": vote.commit,
            "instance": self.name,
            "run_id": vote.run_id,
            "late": tallied,
        }
        if tallied and self.name in self.box.ballots(ref):
            log.info("slot %s is tallied already; this instance's counted ballot stays", ref.slot)
            return ballot
        self.box.cast(ref, self.name, ballot)
        if tallied:  # a late ballot: recorded, counted by nobody
            return ballot
        try:
            self._tally_if_due(ref, electorate, doc=doc, cloned=cloned)
        except RegistryUnavailable:
            raise
        except MAOError as exc:  # the ballot is cast; the periodic check tallies the slot later
            log.warning("ballot cast, but slot %s could not be tallied now: %s", ref.slot, exc.message)
        return ballot

    # ------------------------------------------------------------------ tally

    def maybe_tally(self, ref: SlotRef, now: float | None = None) -> dict[str, Any] | None:
        """Tally ``ref`` if it is due (all electors voted, or past its deadline); its outcome or None."""
        outcome = self.box.outcome(ref)
        if outcome is not None:
            return outcome
        electorate = self.box.electorate(ref)
        if electorate is None:
            return None
        return self._tally_if_due(ref, electorate, now)

    def _tally_if_due(
        self,
        ref: SlotRef,
        electorate: Mapping[str, Any],
        now: float | None = None,
        *,
        doc: Mapping[str, Any] | None = None,
        cloned: bool = False,
    ) -> dict[str, Any] | None:
        ballots = self.box.ballots(ref)
        everyone = set(electorate["electors"]) <= set(ballots)
        late = (now if now is not None else time.time()) >= float(electorate["deadline"])
        if not (everyone or late):
            return None
        return self.tally(ref, doc, cloned=cloned)

    def tally(self, ref: SlotRef, doc: Mapping[str, Any] | None = None, *, cloned: bool = False) -> dict[str, Any]:
        """Tally the slot now, exactly once federation-wide; returns its outcome record.

        ``doc`` is the dataset's definition if the caller holds it; with ``cloned``, the
        caller fetched the dataset's clone already (the tally fetches again under the lock)."""
        if not cloned:
            doc = doc if doc is not None else self.catalog.get_dataset(ref.dataset)
            self.datasets.ensure_clone(ref.dataset, doc["master"])
        with self.registry.lock(merge_lock(ref.dataset), ttl=self.lock_ttl, owner=self.name):
            found = self.datasets.find_tally(ref.dataset, ref.pipeline, ref.step, ref.slot)
            if found is not None:
                return self._index(ref, found)
            recorded = self.box.outcome(ref)
            if recorded is not None:
                return recorded
            electorate = self.box.electorate(ref) or {"electors": []}
            if "signers" in electorate and self.name not in electorate["electors"]:
                # every instance checks that a tally commit is signed by an elector of its slot
                raise Conflict(
                    f"slot {ref.slot} of {ref.pipeline}/{ref.step} is tallied by its electors, not by {self.name}"
                )
            if "signers" in electorate and not self.checker.keys.signers().keys.get(self.name):
                raise Conflict(f"{self.name} has no signing key that is not revoked: it tallies no slot")
            ballots = self.box.ballots(ref)
            decision = self._decide(ref, electorate, ballots)
            if decision.outcome == OPEN:
                raise Conflict(f"slot {ref.slot} of {ref.pipeline}/{ref.step} has no ballots to tally")
            if decision.outcome == DISPUTED:
                record = self._record(ref, decision, ballots, commit=None)
                self.box.record(ref, record)
                self.events.publish(VoteDisputed(dataset=ref.dataset, slot=ref.slot))
                log.warning(
                    "slot %s of %s/%s on dataset %s is disputed: %s",
                    ref.slot,
                    ref.pipeline,
                    ref.step,
                    ref.dataset,
                    ", ".join(c["output_id"][:12] for c in decision.candidates),
                )
                return record
            return self._commit(ref, decision, ballots, resolved_by=None)

    def verify(self, ref: SlotRef, electorate: Mapping[str, Any], ballots: dict[str, dict[str, Any]]) -> BallotVerdict:
        """Which of the slot's ballots count (signed ``G`` by the instance they are filed under,
        on its node branch), against the allowed signers the electorate fixed; the dataset's
        clone is fetched already."""
        return self.checker.check(self.datasets, ref.dataset, ref.step, electorate, ballots)

    def _decide(self, ref: SlotRef, electorate: Mapping[str, Any], ballots: dict[str, dict[str, Any]]) -> Decision:
        """The decision on the ballots that count; those that do not are recorded with their reason."""
        verdict = self.verify(ref, electorate, ballots)
        for instance, reason in sorted(verdict.rejected.items()):
            log.warning(
                "slot %s of %s/%s: the ballot of %s is rejected: %s", ref.slot, ref.pipeline, ref.step, instance, reason
            )
        decision = decide(list(electorate["electors"]), verdict.valid)
        decision.missing = [m for m in decision.missing if m not in verdict.rejected]
        decision.rejected = dict(sorted(verdict.rejected.items()))
        decision.signers = verdict.signers
        return decision

    def _commit(
        self, ref: SlotRef, decision: Decision, ballots: dict[str, dict[str, Any]], resolved_by: str | None
    ) -> dict[str, Any]:
        """Write the tally commit of ``decision`` (the caller holds the dataset lock), then index it."""
        winner_commit = ballots[decision.voters_for[0]]["commit"]
        trailers = {
            "Mao-Slot": ref.slot,
            "Mao-Pipeline": ref.pipeline,
            "Mao-Step": ref.step,
            "Mao-Vote-For": _names(decision.voters_for),
            "Mao-Vote-Against": _names(decision.against),
            "Mao-Vote-Missing": _names(decision.missing),
            "Mao-Output": decision.winner or "",
            "Mao-Vote-Commit": winner_commit,
            "Mao-Instance": self.name,
        }
        if decision.rejected:
            trailers[REJECTED_TRAILER] = _names(sorted(decision.rejected))
        if decision.signers:
            trailers[SIGNERS_TRAILER] = decision.signers
        if resolved_by:
            trailers["Mao-Resolved-By"] = resolved_by
        verb = f"resolved by {resolved_by}" if resolved_by else f"{len(decision.voters_for)} of {len(ballots)} ballots"
        message = f"Tally {ref.pipeline}/{ref.step} for slot {ref.slot}: {verb}"
        tally = TallyCommit(ref.pipeline, ref.step, ref.slot, winner_commit, message, trailers)
        sha, created = self.datasets.write_tally(ref.dataset, tally)
        if not created:
            found = self.datasets.find_tally(ref.dataset, ref.pipeline, ref.step, ref.slot)
            return self._index(ref, found or {"sha": sha, "trailers": trailers})
        record = self._record(ref, decision, ballots, commit=sha, resolved_by=resolved_by)
        self.box.record(ref, record)
        log.info(
            "slot %s of %s/%s on dataset %s: %s (%s)",
            ref.slot,
            ref.pipeline,
            ref.step,
            ref.dataset,
            record["outcome"],
            sha,
        )
        return record

    def _record(
        self,
        ref: SlotRef,
        decision: Decision,
        ballots: dict[str, dict[str, Any]],
        commit: str | None,
        resolved_by: str | None = None,
    ) -> dict[str, Any]:
        outcome = RESOLVED if resolved_by else decision.outcome
        return {
            "outcome": outcome,
            "winner": decision.winner,
            "commit": commit,
            "for": decision.voters_for,
            "dissenters": decision.against,
            "missing": decision.missing,
            "candidates": decision.candidates,
            "rejected": decision.rejected,
            "signers": decision.signers,
            "resolved_by": resolved_by,
            "tallied_by": self.name,
            "tallied_at": time.time(),
        }

    def _index(self, ref: SlotRef, found: dict[str, Any]) -> dict[str, Any]:
        """Rebuild the registry's record of a tally from its commit's trailers."""
        t = found["trailers"]

        def names(key: str) -> list[str]:
            value = t.get(key, NONE)
            return [] if value in (NONE, "") else value.split(",")

        resolved_by = t.get("Mao-Resolved-By")
        previous = self.box.outcome(ref) or {}
        record = {
            "outcome": RESOLVED if resolved_by else AGREED,
            "winner": t.get("Mao-Output") or None,
            "commit": found["sha"],
            "for": names("Mao-Vote-For"),
            "dissenters": names("Mao-Vote-Against"),
            "missing": names("Mao-Vote-Missing"),
            "candidates": previous.get("candidates", []),
            "rejected": previous.get("rejected") or {n: "rejected" for n in names(REJECTED_TRAILER)},
            "signers": t.get(SIGNERS_TRAILER),
            "resolved_by": resolved_by,
            "tallied_by": t.get("Mao-Instance"),
            "tallied_at": previous.get("tallied_at"),
        }
        if previous.get("commit") != record["commit"] or previous.get("outcome") != record["outcome"]:
            self.box.record(ref, record)
        return record

    # ------------------------------------------------------------------ operators

    def resolve(
        self, dataset: str, slot: str, pick: str, pipeline: str | None = None, step: str | None = None
    ) -> dict[str, Any]:
        """Settle a disputed slot with the ballot of instance ``pick``: a tally commit with ``Mao-Resolved-By``."""
        check_name(dataset, "dataset name")
        slot = normalize_slot(slot)
        check_name(pick, "instance name")
        refs = [
            r
            for r in self.box.slots(dataset)
            if r.slot == slot and (pipeline is None or r.pipeline == pipeline) and (step is None or r.step == step)
        ]
        if not refs:
            raise NotFound(f"dataset {dataset!r} has no vote for slot {slot}")
        disputed = [r for r in refs if (self.box.outcome(r) or {}).get("outcome") == DISPUTED]
        if not disputed:
            outcome = self.box.outcome(refs[0]) or {}
            raise Conflict(f"slot {slot} of dataset {dataset!r} is {outcome.get('outcome', OPEN)}, not disputed")
        if len(disputed) > 1:
            raise InvalidInput(
                f"slot {slot} of dataset {dataset!r} is disputed for several steps: give --pipeline and --step ("
                + ", ".join(f"{r.pipeline}/{r.step}" for r in disputed)
                + ")"
            )
        ref = disputed[0]
        ballots = {i: b for i, b in self.box.ballots(ref).items() if not b.get("late")}
        rejected = (self.box.outcome(ref) or {}).get("rejected") or {}
        if pick in rejected:
            raise InvalidInput(f"the ballot of {pick!r} for slot {slot} was rejected: {rejected[pick]}")
        if pick not in ballots:
            raise InvalidInput(
                f"instance {pick!r} has no ballot for slot {slot}; pick one of: {', '.join(sorted(ballots))}"
            )
        self.datasets.ensure_clone(dataset, self.catalog.get_dataset(dataset)["master"])
        with self.registry.lock(merge_lock(dataset), ttl=self.lock_ttl, owner=self.name):
            found = self.datasets.find_tally(ref.dataset, ref.pipeline, ref.step, ref.slot)
            if found is not None:
                self._index(ref, found)
                raise Conflict(f"slot {slot} of dataset {dataset!r} already has a tally commit {found['sha']}")
            electorate = self.box.electorate(ref) or {"electors": sorted(ballots)}
            previous = self._decide(ref, electorate, ballots)
            if pick in previous.rejected:
                raise InvalidInput(f"the ballot of {pick!r} for slot {slot} was rejected: {previous.rejected[pick]}")
            ballots = {i: b for i, b in ballots.items() if i not in previous.rejected}
            winner = ballots[pick]["output_id"]
            voters_for = sorted(i for i, b in ballots.items() if b["output_id"] == winner)
            decision = Decision(
                RESOLVED,
                winner,
                [pick] + [v for v in voters_for if v != pick],
                sorted(set(ballots) - set(voters_for)),
                previous.missing,
                previous.candidates,
                previous.rejected,
                previous.signers,
            )
            return self._commit(ref, decision, ballots, resolved_by=self.name)

    def due(self, now: float | None = None) -> list[dict[str, Any]]:
        """Tally every open slot whose deadline passed (the serving process calls this periodically)."""
        outcomes = []
        tallied = self.box.tallied()
        for ref in self.box.slots():
            if ref.path in tallied or not self._elects(ref):
                continue
            try:
                outcome = self.maybe_tally(ref, now)
            except Exception as exc:  # noqa: BLE001 - one bad slot must not stop the others
                log.warning(
                    "could not tally slot %s of %s/%s: %s",
                    ref.slot,
                    ref.pipeline,
                    ref.step,
                    getattr(exc, "message", exc),
                )
                continue
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def _elects(self, ref: SlotRef) -> bool:
        """Whether this instance may tally ``ref``: it is one of its electors (or the slot fixed no signers)."""
        electorate = self.box.electorate(ref)
        return electorate is None or "signers" not in electorate or self.name in electorate["electors"]

    def rebuild(self, dataset: str, limit: int = 1000) -> int:
        """Re-index the tally commits of ``dataset``'s ground-truth that the registry lacks
        (etcd lost or replaced): the commits are the record. Returns how many were added."""
        url = self.catalog.get_dataset(dataset)["master"]
        added = 0
        for entry in self.datasets.log(dataset, url, limit=limit):
            t = entry["trailers"]
            if "Mao-Vote-For" not in t or not all(k in t for k in ("Mao-Slot", "Mao-Pipeline", "Mao-Step")):
                continue
            try:
                ref = SlotRef(dataset, t["Mao-Pipeline"], t["Mao-Step"], normalize_slot(t["Mao-Slot"]))
            except MAOError:
                continue
            if self.box.outcome(ref) is not None and self.box.electorate(ref) is not None:
                continue
            record = self._index(ref, {"sha": entry["sha"], "trailers": t})
            electors = sorted({*record["for"], *record["dissenters"], *record["missing"]})
            self.box.registry.create(
                electorate_key(ref.path),
                {"slot": ref.slot, "electors": electors, "opened_at": None, "deadline": 0, "opened_by": None},
            )
            added += 1
        return added

    # ------------------------------------------------------------------ view

    def votes(self, dataset: str, slot: str | None = None) -> dict[str, Any]:
        """Per slot: each elector's ballot or its absence, the outcome, the winner and the dissenters."""
        check_name(dataset, "dataset name")
        self.catalog.get_dataset(dataset)
        wanted = normalize_slot(slot) if slot is not None else None
        try:
            self.rebuild(dataset)
        except MAOError as exc:  # the remote may be unreachable: show what the registry knows
            log.warning("could not read the tally commits of dataset %s: %s", dataset, exc.message)
        slots = []
        for ref in self.box.slots(dataset):
            if wanted is not None and ref.slot != wanted:
                continue
            electorate = self.box.electorate(ref) or {"electors": []}
            ballots = self.box.ballots(ref)
            outcome = self.box.outcome(ref) or {}
            electors = list(electorate["electors"])
            provisional = decide(electors, ballots)
            slots.append(
                {
                    "pipeline": ref.pipeline,
                    "step": ref.step,
                    "slot": ref.slot,
                    "outcome": outcome.get("outcome", OPEN),
                    "winner": outcome.get("winner"),
                    "commit": outcome.get("commit"),
                    "electorate": electors,
                    "ballots": {i: ballots.get(i) for i in sorted(set(electors) | set(ballots))},
                    "for": outcome.get("for", []),
                    "dissenters": outcome.get("dissenters", []),
                    "missing": outcome.get("missing", provisional.missing),
                    "candidates": outcome.get("candidates") or provisional.candidates,
                    "resolved_by": outcome.get("resolved_by"),
                    "rejected": outcome.get("rejected") or {},
                    "signers": outcome.get("signers"),
                    "deadline": electorate.get("deadline"),
                }
            )
        return {"dataset": dataset, "slots": slots}
