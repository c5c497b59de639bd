"""Signed commits on a real federation: three `maoctl serve` instances, a 3-member etcd cluster and
one shared git remote. A ballot counts only when its commit is signed by the instance it is
filed under and is on that instance's node branch; a ground-truth advance that no known instance
signed is flagged by every instance and not built on."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fedkit import GROUND_TRUTH, ROOT_MAOCTL, UNREACHABLE, Federation, Node, git, writer
from waiting import wait_for

from mao.registry.keys import ballot_key, instance_key, slot_path

pytestmark = [pytest.mark.etcd, pytest.mark.docker, pytest.mark.slow]

IDENT = ["-c", "user.name=Outsider", "-c", "user.email=outsider@example.org", "-c", "commit.gpgsign=false"]


@pytest.fixture(scope="module")
def fed(
    fed_etcd, fed_docker_host: str, fed_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Federation]:
    federation = Federation(fed_etcd, tmp_path_factory.mktemp("fedsign"), fed_docker_host, fed_image)
    try:
        federation.add_nodes(3)
        federation.register_tool("voter")
        yield federation
    finally:
        federation.close()
        federation.restore_members()


@pytest.fixture(autouse=True)
def _logs_on_failure(fed: Federation, request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(fed.logs())


def put(fed: Federation, key: str, value: dict[str, Any]) -> None:
    """Write a registry value straight into etcd, as anyone holding its address can."""
    body = {
        "key": base64.b64encode((fed.prefix + key).encode()).decode(),
        "value": base64.b64encode(json.dumps(value).encode()).decode(),
    }
    for member in fed.cluster.members:
        if member.running:
            httpx.post(member.client_url + "/v3/kv/put", json=body, timeout=5).raise_for_status()
            return
    raise AssertionError("no etcd member answered")


def outsider_commit(fed: Federation, tmp: Path, dataset: str, branch: str, text: str, key: Path | None = None) -> str:
    """A commit pushed by hand to ``branch`` of the shared remote (from ground-truth if it exists,
    else on its own); signed with ``key`` if given, else unsigned."""
    work = tmp / f"outsider-{dataset}-{branch}"
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    repo = fed.repo(dataset)
    if git(repo, "rev-parse", "--verify", "--quiet", GROUND_TRUTH, check=False).strip():
        subprocess.run(["git", "-C", str(work), "fetch", "-q", str(repo), GROUND_TRUTH], check=True)
        subprocess.run(["git", "-C", str(work), "checkout", "-q", "-B", branch, "FETCH_HEAD"], check=True)
    else:
        subprocess.run(["git", "-C", str(work), "checkout", "-q", "-b", branch], check=True)
    (work / "out.txt").write_text(text)
    subprocess.run(["git", "-C", str(work), "add", "-A"], check=True)
    sign = ["-c", "gpg.format=ssh", "-c", f"user.signingKey={key}", "commit", "-S"] if key else ["commit"]
    subprocess.run(["git", "-C", str(work), *IDENT, *sign, "-qm", "by hand"], check=True)
    subprocess.run(["git", "-C", str(work), "push", "-q", str(repo), f"HEAD:refs/heads/{branch}"], check=True)
    return subprocess.run(
        ["git", "-C", str(work), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def signing_key(node: Node) -> Path:
    return node.data_dir / "signing" / "id_ed25519"


def voting(fed: Federation, name: str) -> str:
    fed.register_dataset(name, policy="vote", vote_deadline=300)
    fed.define(
        {
            "name": name,
            "steps": [
                {
                    "name": f"{name}-s",
                    "tool": "voter",
                    "output_dataset": name,
                    "cmd": ["sh", "-c", "echo honest > /usr/src/app/data/out.txt"],
                }
            ],
        }
    )
    return name


def forge_ballot(fed: Federation, name: str, slot: str, commit: str) -> None:
    """node-c's ballot for the slot, written by someone else: ``commit`` as its change."""
    path = slot_path(name, name, f"{name}-s", slot)
    ballot = {"output_id": "f" * 40, "commit": commit, "instance": "node-c", "run_id": 1, "late": False}
    put(fed, ballot_key(path, "node-c"), ballot)


def run_honest(fed: Federation, name: str, slot: str) -> None:
    """node-a and node-b run the slot (node-c does not: its ballot is the forged one)."""
    honest = fed.nodes[:2]
    started = fed.run_all(name, honest, slot=slot)
    for node, record in zip(honest, fed.wait_runs([(n, started[n.name]) for n in honest]), strict=True):
        assert record["status"] == "succeeded", (node.name, record["error"])


def agreed(node: Node, name: str, slot: str) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        slots = node.votes(name, slot)["slots"]
        return slots[0] if slots and slots[0]["outcome"] == "agreed" else None

    return wait_for(settled, 60, f"slot {slot} of {name} to be agreed", interval=0.3, ignore=UNREACHABLE)


def maoctl(node: Node, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, ROOT_MAOCTL, *args],
        env={**node.env(), "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# ------------------------------------------------------------------------ the cases


def test_every_instance_publishes_its_signing_key(fed: Federation) -> None:
    for node in fed.nodes:
        record = fed.registry_value(instance_key(node.name))
        assert record is not None and record["signing_key"].startswith("ssh-ed25519 "), record
        assert signing_key(node).stat().st_mode & 0o777 == 0o600


def test_an_unsigned_ballot_under_another_name_is_rejected_and_honest_votes_agree(
    fed: Federation, tmp_path: Path
) -> None:
    slot = "2026-11-28T03:00:00Z"
    name = voting(fed, "unsigned")
    forged = outsider_commit(fed, tmp_path, name, f"{name}-s-node-c", "forged\n")
    forge_ballot(fed, name, slot, forged)
    run_honest(fed, name, slot)

    entry = agreed(fed.first, name, slot)
    assert entry["for"] == ["node-a", "node-b"], entry
    assert entry["rejected"] == {"node-c": "the commit is not signed"}, entry
    assert entry["dissenters"] == [] and entry["signers"].startswith("sha256:")
    assert fed.files(name) == {"out.txt": "honest\n"}
    (tally,) = [c for c in fed.ground_truth_log(name) if c.trailers.get("Mao-Slot") == slot]
    assert tally.trailers["Mao-Vote-Rejected"] == "node-c"
    assert tally.trailers["Mao-Signers"] == entry["signers"]
    # the tally itself is signed by the instance that wrote it
    assert "gpgsig" in git(fed.repo(name), "cat-file", "-p", tally.sha)

    shown = maoctl(fed.nodes[1], "dataset", "votes", name, "--slot", slot)
    assert shown.returncode == 0, shown.stderr
    assert "rejected: the commit is not signed" in shown.stdout
    as_json = json.loads(maoctl(fed.nodes[1], "dataset", "votes", name, "--json").stdout)
    assert as_json["slots"][0]["rejected"] == {"node-c": "the commit is not signed"}


def test_a_ballot_signed_with_another_instances_key_is_rejected(fed: Federation, tmp_path: Path) -> None:
    slot = "2026-11-28T04:00:00Z"
    name = voting(fed, "stolen")
    # node-c's ballot, made with node-b's key (a step that reached it, or node-b itself)
    forged = outsider_commit(fed, tmp_path, name, f"{name}-s-node-c", "forged\n", key=signing_key(fed.nodes[1]))
    forge_ballot(fed, name, slot, forged)
    run_honest(fed, name, slot)

    entry = agreed(fed.nodes[2], name, slot)
    assert entry["rejected"] == {"node-c": "signed by node-b, not by node-c"}, entry
    assert entry["for"] == ["node-a", "node-b"]


def test_an_unsigned_push_to_ground_truth_is_flagged_everywhere_and_not_built_on(
    fed: Federation, tmp_path: Path
) -> None:
    fed.register_dataset("handmade")
    fed.define(writer("handmade", "voter", "handmade", "a.txt", "$MAO_INSTANCE $MAO_RUN_ID"))
    (record,) = fed.wait_runs([(fed.first, fed.first.run("handmade"))])
    assert record["status"] == "succeeded", record["error"]
    trusted = git(fed.repo("handmade"), "rev-parse", GROUND_TRUTH).strip()
    for node in fed.nodes:  # each instance has seen (and trusts) the signed merge
        chain = node.get("/datasets/handmade/verify")
        assert chain["first_untrusted"] is None and chain["trusted"] == trusted, chain
        assert chain["commits"][0]["signer"] == "node-a" and chain["commits"][0]["status"] == "G"

    forged = outsider_commit(fed, tmp_path, "handmade", GROUND_TRUTH, "forged\n")
    for node in fed.nodes:
        chain = node.get("/datasets/handmade/verify")
        assert chain["first_untrusted"] == forged and chain["trusted"] == trusted, chain
        assert chain["commits"][0]["reason"] == "not signed"
        status, health = node.health()
        assert status == 200 and health.get("degraded") is True, health
        assert health["checks"]["ground_truth"]["untrusted"]["handmade"]["first_untrusted"] == forged

    shown = maoctl(fed.nodes[2], "dataset", "verify", "handmade")
    assert shown.returncode == 1 and "first untrusted commit: " + forged in shown.stdout, shown.stdout

    # node-b writes: its node starts from the trusted commit, and ground-truth is not moved onto the forgery
    writer_b = fed.nodes[1]
    run = writer_b.wait_run(writer_b.run("handmade"))
    output = run["steps"][0]["output_commit"]
    assert output is not None, run
    assert git(fed.repo("handmade"), "rev-parse", GROUND_TRUTH).strip() == forged
    clone = writer_b.data_dir / "datasets" / "handmade" / "clone" / ".git"
    assert git(clone, "merge-base", "--is-ancestor", trusted, output, check=False) == ""
    ancestry = subprocess.run(
        ["git", "--git-dir", str(clone), "merge-base", "--is-ancestor", forged, output],
        capture_output=True,
        check=False,
    )
    assert ancestry.returncode == 1, "the node built on the untrusted commit"


def test_a_revoked_keys_new_ballots_are_rejected_and_its_earlier_tallies_still_verify(fed: Federation) -> None:
    first, second = "2026-11-28T05:00:00Z", "2026-11-28T06:00:00Z"
    name = voting(fed, "revoked")
    started = fed.run_all(name, slot=first)
    fed.wait_runs([(n, started[n.name]) for n in fed.nodes])
    assert agreed(fed.first, name, first)["for"] == ["node-a", "node-b", "node-c"]
    for node in fed.nodes:  # each has verified the tally of the first slot
        assert node.get(f"/datasets/{name}/verify")["first_untrusted"] is None

    keys = fed.first.get("/federation/signing-keys")["keys"]["node-c"]
    revoked = fed.first.post("/federation/signing-keys/revoke", {"instance": "node-c", "key": keys[0]["id"]})
    assert revoked["key"] == keys[0]["key"]
    assert fed.first.get("/federation/signing-keys")["keys"]["node-c"][0]["revoked"] is True

    node_c = fed.nodes[2]  # first, so that the last ballot (which tallies) is an honest one
    assert node_c.wait_run(node_c.run(name, slot=second))["status"] == "succeeded"
    run_honest(fed, name, second)
    entry = agreed(fed.first, name, second)
    assert entry["for"] == ["node-a", "node-b"], entry
    assert entry["rejected"] == {"node-c": "bad signature, or signed by a revoked key"}
    for node in fed.nodes:
        chain = node.get(f"/datasets/{name}/verify")
        assert chain["first_untrusted"] is None, chain
        assert len([c for c in chain["commits"] if c["kind"] == "tally"]) == 2
