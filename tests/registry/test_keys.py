"""The registry's key layout, kept in :mod:`mao.registry.keys` alone: the keys are what
instances of different versions read from each other, so the layout is locked here."""

from __future__ import annotations

import ast
from pathlib import Path

from mao.registry import keys

SLOT = "2026-11-28T13:00:00+01:00"
"""A slot written with an offset: keys hold its compact UTC form."""


def test_each_family_keeps_its_layout() -> None:
    assert keys.tool_key("t") == "tools/t"
    assert keys.dataset_key("d") == "datasets/d"
    assert keys.pipeline_key("p") == "pipelines/p"
    assert keys.instance_key("a") == "instances/a"
    assert keys.schedules_prefix() == "schedules/"
    assert keys.schedules_prefix("a") == "schedules/a/"
    assert keys.schedule_key("p", "a") == "schedules/a/p"
    assert keys.coverage_prefix("p") == "coverage/p/"
    assert keys.coverage_key("p", SLOT) == "coverage/p/20261128T120000Z/"
    assert keys.coverage_key("p", SLOT, "a") == "coverage/p/20261128T120000Z/a"
    assert keys.claim_key("p", SLOT) == "claims/p/20261128T120000Z"
    assert keys.gap_key("p", SLOT) == "gaps/p/20261128T120000Z"
    assert keys.insight_key("p", "s") == "insights/p/s"
    path = keys.slot_path("d", "p", "s", SLOT)
    assert path == "d/p/s/20261128T120000Z"
    assert keys.ballots_prefix("a") == "ballots/a/"
    assert keys.ballot_key(path, "a") == "ballots/a/d/p/s/20261128T120000Z"
    assert keys.electorate_key(path) == "electorates/d/p/s/20261128T120000Z"
    assert keys.electorates_prefix() == "electorates/"
    assert keys.electorates_prefix("d") == "electorates/d/"
    assert keys.tally_key(path) == "tallies/d/p/s/20261128T120000Z"
    assert keys.lock_key(keys.merge_lock("d")) == "locks/merge-d"
    assert keys.lock_key(keys.dataset_lock("d")) == "locks/datasets-d"
    assert keys.CATALOG == ("datasets/", "pipelines/", "tools/")


def test_a_merge_lock_names_its_dataset() -> None:
    assert keys.merged_dataset(keys.merge_lock("obs-1")) == "obs-1"
    assert keys.merged_dataset(keys.dataset_lock("obs-1")) is None
    assert keys.merged_dataset("other") is None


FAMILIES = tuple(
    value for name, value in vars(keys).items() if name.isupper() and isinstance(value, str) and value.endswith("/")
)
LOCK_NAMES = (keys.MERGE_LOCK, keys.DATASET_LOCK)


def test_no_module_but_the_layout_spells_a_key() -> None:
    """A key written by hand elsewhere would drift from the layout the other instances read."""
    src = Path(__file__).resolve().parents[2] / "src" / "mao"
    found = []
    for path in sorted(src.rglob("*.py")):
        if path == src / "registry" / "keys.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if text.startswith(FAMILIES) or text in LOCK_NAMES:
                    found.append(f"{path.relative_to(src)}:{node.lineno}: {text[:40]!r}")
            elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
                head = str(node.values[0].value)
                if head.startswith(FAMILIES) or (head in LOCK_NAMES and len(node.values) > 1):
                    found.append(f"{path.relative_to(src)}:{node.lineno}: f{head!r}")
    assert found == []


def test_an_instance_owns_only_keys_that_start_with_its_name() -> None:
    owned = keys.owned_by("a")
    assert owned.keys == ("instances/a",)
    assert owned.prefixes == tuple(f"{family}a/" for family in keys.OWNED)
    assert {"ballots/a/", "schedules/a/"} <= set(owned.prefixes)
    assert keys.ballot_key("d/p/s/x", "a").startswith(owned.prefixes)
    assert keys.schedule_key("p", "a").startswith(owned.prefixes)
    assert not keys.ballot_key("d/p/s/x", "ab").startswith(owned.prefixes)
    assert not set(keys.SHARED) & set(keys.OWNED)
    every = {v for n, v in vars(keys).items() if n.isupper() and isinstance(v, str) and v.endswith("/")}
    local = {keys.LOCAL_LEASES, keys.LOCAL_META}
    assert every - local == {*keys.SHARED, *keys.OWNED, keys.INSTANCES}, "a new family is shared or owned"


def test_schedules_are_read_back_by_pipeline_and_instance() -> None:
    listing = {"a/p": 1, "b/p": 2, "a/q": 3, "odd": 4}
    assert keys.schedules_of(listing) == {("p", "a"): 1, ("p", "b"): 2, ("q", "a"): 3}
    assert keys.schedules_of(listing, "p") == {("p", "a"): 1, ("p", "b"): 2}
