"""A record written while the registry is away: committed and pushed, its merge queued and done once it answers."""

from __future__ import annotations

from pathlib import Path

from gateway_kit import git

from mao.config import Settings
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn
from mao.registry.memory import MemoryRegistry


def test_a_record_waits_for_the_registry_and_is_merged_when_it_answers(data_dir: Path) -> None:
    registry = MemoryRegistry()
    inst = Instance(Settings(instance_name="offline-gw", data_dir=data_dir), registry=registry)
    inst.setup()
    bare = inst.datasets.create_bare("obs")
    inst.catalog.add_dataset(DatasetIn(name="obs", body=DatasetBody(master=str(bare))))
    _, secret = inst.gateway.tokens.create("feed", "obs", "write")
    inst.catalog.get_dataset("obs")  # read once: the last-known copy serves while the registry is away

    registry.down = True
    written = inst.gateway.post_record(secret, "obs", b'{"n": 1}')
    assert written["federation"] == "pending" and written["merge_commit"] is None
    assert git(bare, "rev-parse", "gateway-feed").strip() == written["commit"]  # pushed
    assert "ground-truth" not in git(bare, "for-each-ref", "--format=%(refname:short)")

    registry.down = False
    assert inst.replayer.replay_once() == 1
    assert git(bare, "show", "ground-truth:records/feed.jsonl") == '{"n":1}\n'
    assert "Mao-Gateway-Token: feed" in git(bare, "log", "--format=%(trailers)", "ground-truth")
    inst.close()
