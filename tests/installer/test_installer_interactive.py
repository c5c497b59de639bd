"""``python3 maoctl.py instance install`` answered by a person at a real terminal (a pseudo-terminal)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
import yaml

from mao.config import load_settings

try:
    import pexpect
except ImportError:  # pragma: no cover - depends on the test extras
    pexpect = None

REPO = Path(__file__).resolve().parents[2]
CLUSTER = "mao-1=http://203.0.113.10:2380,new-node=http://198.51.100.7:2380"
TIMEOUT = 30


@pytest.fixture(autouse=True)
def _needs_pexpect() -> None:
    if pexpect is None:
        if os.environ.get("MAO_TEST_REQUIRE_SERVICES", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail("pexpect is not installed (MAO_TEST_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip("pexpect is not installed")


class Terminal:
    """``maoctl`` on a pseudo-terminal: wait for text, type answers."""

    def __init__(self, home: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAO_") or k.startswith("MAO_TEST_")}
        env.update(HOME=str(home), TERM="dumb", NO_COLOR="1", COLUMNS="200")
        env.pop("XDG_CONFIG_HOME", None)
        self.child = pexpect.spawn(
            sys.executable,
            [str(REPO / "maoctl.py"), "instance", "install", *args],
            cwd=str(REPO),
            env=env,
            encoding="utf-8",
            timeout=TIMEOUT,
            dimensions=(50, 200),
        )
        self.transcript: list[str] = []

    def expect(self, text: str) -> str:
        try:
            self.child.expect_exact(text)
        except (pexpect.TIMEOUT, pexpect.EOF):
            raise AssertionError(f"did not see {text!r}; the screen showed:\n{self.child.before}") from None
        seen = self.child.before + self.child.after
        self.transcript.append(seen)
        return seen

    def answer(self, prompt: str, reply: str) -> str:
        seen = self.expect(prompt)
        self.child.sendline(reply)
        return seen

    def finish(self) -> int:
        self.child.expect(pexpect.EOF)
        self.transcript.append(self.child.before)
        self.child.close()
        return self.child.exitstatus

    @property
    def screen(self) -> str:
        return "".join(self.transcript)


def manual_choice(screen: str) -> str:
    """The number of the 'enter an address manually' entry in the public IP list."""
    match = re.search(r"\[(\d+)\] enter an address manually", screen)
    assert match, screen
    return match.group(1)


def test_standalone_install_by_questions(home: Path, key_dir: Path, tmp_path: Path) -> None:
    install_dir = tmp_path / "inst"
    new_keys = tmp_path / "fresh-keys"
    term = Terminal(home, "--skip-checks")
    term.expect("How should this instance run?")
    term.answer("Your choice (1 or 2)", "1")
    term.answer("MAO install directory [~/mao-instance]:", str(install_dir))
    term.answer("MAO instance name", "bad name!")
    term.answer("invalid instance name", "node-1")
    term.expect("Public IP: the address other instances reach this host on")
    seen = term.expect("Public IP (1-")
    term.child.sendline(manual_choice(seen))
    term.answer("Public IP address:", "999.1.1.1")
    term.answer("invalid public IP '999.1.1.1'", "198.51.100.7")
    term.answer("Git e-mail address", "not-an-email")
    term.answer("invalid git e-mail address", "alice@example.org")
    term.answer("SSH key directory", str(new_keys))
    term.expect(f"SSH key directory {new_keys} does not exist")
    term.answer("Generate a new ed25519 key pair in", "y")
    term.expect("Summary:")
    term.answer("Install now? [Y/n]:", "y")
    term.expect("Installed MAO instance 'node-1'")
    term.expect("up -d")
    assert term.finish() == 0, term.screen

    settings = load_settings(install_dir / "mao.yaml")
    assert settings.instance_name == "node-1" and settings.git_email == "alice@example.org"
    public = (new_keys / "id_ed25519.pub").read_text().strip()
    assert public in term.screen
    compose = yaml.safe_load((install_dir / "docker-compose.yaml").read_text())
    assert compose["services"]["etcd"]["environment"]["ETCD_INITIAL_CLUSTER"] == "node-1=http://198.51.100.7:2380"
    assert compose["services"]["etcd"]["environment"]["ETCD_INITIAL_CLUSTER_STATE"] == "new"


def test_flags_answer_their_questions(home: Path, key_dir: Path, tmp_path: Path) -> None:
    """With a terminal, given flags are not asked again: only the confirmation remains."""
    install_dir = tmp_path / "inst"
    term = Terminal(
        home,
        "--skip-checks",
        "--standalone",
        "--install-dir",
        str(install_dir),
        "--instance-name",
        "node-2",
        "--public-ip",
        "198.51.100.8",
        "--git-email",
        "bob@example.org",
        "--ssh-key-dir",
        str(key_dir),
    )
    seen = term.answer("Install now? [Y/n]:", "")
    assert "MAO instance name" not in seen and "Public IP (" not in seen
    term.expect("Installed MAO instance 'node-2'")
    assert term.finish() == 0, term.screen
    assert load_settings(install_dir / "mao.yaml").instance_name == "node-2"


def test_existing_directory_needs_consent(home: Path, key_dir: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    fresh = tmp_path / "fresh"
    term = Terminal(
        home,
        "--skip-checks",
        "--standalone",
        "--instance-name",
        "node-3",
        "--public-ip",
        "198.51.100.9",
        "--git-email",
        "c@example.org",
        "--ssh-key-dir",
        str(key_dir),
    )
    term.answer("MAO install directory", str(taken))
    term.answer("already exists and is not empty. Rewrite its configuration (its data is kept)? [y/N]:", "n")
    term.answer("MAO install directory", str(fresh))
    term.answer("Install now? [Y/n]:", "y")
    assert term.finish() == 0, term.screen
    assert sorted(p.name for p in taken.iterdir()) == ["notes.txt"]
    assert (fresh / "mao.yaml").is_file()


def _join_until_contact(home: Path, marketplace: Path) -> Terminal:
    term = Terminal(home, "--skip-checks", "--marketplace-url", str(marketplace))
    term.answer("Your choice (1 or 2)", "2")
    seen = term.expect("Federation to join (1-2)")
    for text in (
        "artifact-observatory",
        "Observes container registries over months",
        "Observatory Operators",
        "ops@observatory.example.org",
        "Helm-Watch",
        "Helm Team",
        "https://helm-watch.example.org/join",
    ):
        assert text in seen, seen
    term.child.sendline("1")
    term.answer("MAO instance name", "new-node")
    seen = term.expect("Public IP (1-")
    term.child.sendline(manual_choice(seen))
    term.answer("Public IP address:", "198.51.100.7")
    seen = term.expect(
        "Do you already have the ETCD_INITIAL_CLUSTER value from the operator? (no = stop here and resume later)"
    )
    assert "To join 'artifact-observatory', contact its operator:" in seen
    assert "Contact:  ops@observatory.example.org" in seen
    assert "maoctl federation member add new-node --peer-url http://198.51.100.7:2380" in seen
    return term


def test_join_stops_at_the_contact_step_and_resumes(home: Path, key_dir: Path, marketplace: Path, tmp_path) -> None:
    install_dir = tmp_path / "joined"
    term = _join_until_contact(home, marketplace)
    term.child.sendline("n")
    term.expect("instance install --resume")
    assert term.finish() == 0, term.screen
    state_file = home / ".config" / "mao" / "install-state.json"
    saved = json.loads(state_file.read_text())["answers"]
    assert saved["instance_name"] == "new-node" and saved["public_ip"] == "198.51.100.7"
    assert saved["federation"] == json.loads((marketplace / "federations.json").read_text())[0]  # the entry as listed
    assert not install_dir.exists()

    term = Terminal(home, "--resume", "--skip-checks")
    seen = term.answer("Do you already have the ETCD_INITIAL_CLUSTER value", "y")
    assert "Resuming the installation that joins the federation 'artifact-observatory'" in seen
    assert "MAO instance name" not in seen  # saved answers are not asked again
    term.answer("MAO install directory", str(install_dir))
    term.answer("Git e-mail address", "dana@example.org")
    term.answer("SSH key directory", str(key_dir))
    term.answer("ETCD_INITIAL_CLUSTER value from the operator", "mao-1=203.0.113.10")
    term.answer("malformed ETCD_INITIAL_CLUSTER entry", CLUSTER)
    seen = term.answer("Install now? [Y/n]:", "y")
    assert "join federation 'artifact-observatory'" in seen
    term.expect("Installed MAO instance 'new-node'")
    assert term.finish() == 0, term.screen

    etcd = yaml.safe_load((install_dir / "docker-compose.yaml").read_text())["services"]["etcd"]["environment"]
    assert etcd["ETCD_INITIAL_CLUSTER"] == CLUSTER
    assert etcd["ETCD_INITIAL_CLUSTER_STATE"] == "existing"
    assert load_settings(install_dir / "mao.yaml").instance_name == "new-node"
    assert not state_file.exists()


def test_suspended_join_resumes_from_flags(home: Path, key_dir: Path, marketplace: Path, tmp_path, maoctl) -> None:
    install_dir = tmp_path / "joined"
    term = _join_until_contact(home, marketplace)
    term.child.sendline("n")
    assert term.finish() == 0, term.screen

    result = maoctl(
        "instance",
        "install",
        "--resume",
        "--non-interactive",
        "--skip-checks",
        "--install-dir",
        str(install_dir),
        "--git-email",
        "erin@example.org",
        "--ssh-key-dir",
        str(key_dir),
        "--etcd-initial-cluster",
        CLUSTER,
    )
    assert result.code == 0, result.output
    etcd = yaml.safe_load((install_dir / "docker-compose.yaml").read_text())["services"]["etcd"]["environment"]
    assert etcd["ETCD_NAME"] == "new-node" and etcd["ETCD_INITIAL_CLUSTER_STATE"] == "existing"


def test_resume_without_a_saved_installation(home: Path, maoctl) -> None:
    result = maoctl("instance", "install", "--resume", "--non-interactive", "--skip-checks")
    assert result.code != 0 and "nothing to resume" in result.err


def test_missing_prerequisites_ask_before_going_on(home: Path, tmp_path: Path, monkeypatch) -> None:
    """No docker, compose or git on PATH: each is explained, and the user may stop."""
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    term = Terminal(home)
    seen = term.answer("Continue anyway? (the instance will not start without them) [y/N]:", "n")
    for text in (
        "Docker (container engine)",
        "sudo apt-get install docker.io",
        "https://docs.docker.com/engine/install/",
        "Docker Compose",
        "https://docs.docker.com/compose/install/",
        "Git",
        "sudo apt-get install git",
    ):
        assert text in seen, seen
    assert term.finish() != 0


def test_unreachable_marketplace_asks_for_the_federation_name(home: Path, tmp_path: Path) -> None:
    term = Terminal(home, "--skip-checks", "--federate", "--marketplace-url", str(tmp_path / "nowhere"))
    seen = term.answer("Name of the federation to join (as its operator calls it):", "private-fed")
    assert f"marketplace {tmp_path / 'nowhere'}: no such directory" in seen
    term.answer("MAO instance name", "new-node")
    seen = term.expect("Public IP (1-")
    term.child.sendline(manual_choice(seen))
    term.answer("Public IP address:", "198.51.100.7")
    seen = term.answer("Do you already have the ETCD_INITIAL_CLUSTER value", "n")
    assert "To join 'private-fed'" in seen and "the marketplace lists no contact" in seen
    assert term.finish() == 0, term.screen
