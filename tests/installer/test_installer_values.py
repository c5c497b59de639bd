"""Validators of the installer's answers."""

from __future__ import annotations

import pytest

from mao.errors import InvalidInput
from mao.installer.values import (
    check_api_port,
    check_email,
    check_initial_cluster,
    check_instance_name,
    check_public_ip,
    check_ssh_key_dir,
    parse_initial_cluster,
    peer_url,
)


@pytest.mark.parametrize("good", ["node-1", "mao_2", "A"])
def test_instance_names(good: str) -> None:
    assert check_instance_name(good) == good


@pytest.mark.parametrize("bad", ["", "bad name", "../x", "a/b", "-lead", "x;rm", "a" * 65])
def test_bad_instance_names(bad: str) -> None:
    with pytest.raises(InvalidInput, match="instance name"):
        check_instance_name(bad)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("203.0.113.10", "203.0.113.10"),
        (" 10.0.0.5 ", "10.0.0.5"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
    ],
)
def test_public_ips(given: str, expected: str) -> None:
    assert check_public_ip(given) == expected


@pytest.mark.parametrize("bad", ["", "300.1.1.1", "example.org", "0.0.0.0", "224.0.0.1", "1.2.3", "::"])
def test_bad_public_ips(bad: str) -> None:
    with pytest.raises(InvalidInput, match="public IP"):
        check_public_ip(bad)


def test_peer_url_brackets_ipv6() -> None:
    assert peer_url("203.0.113.10") == "http://203.0.113.10:2380"
    assert peer_url("2001:db8::1") == "http://[2001:db8::1]:2380"


@pytest.mark.parametrize("good", ["alice@example.org", "a.b+c@sub.example.co", "mao@localhost"])
def test_emails(good: str) -> None:
    assert check_email(good) == good


@pytest.mark.parametrize(
    "bad", ["", "alice", "alice@", "@example.org", "a b@example.org", "a@exa mple.org", "a@@b.org"]
)
def test_bad_emails(bad: str) -> None:
    with pytest.raises(InvalidInput, match="e-mail"):
        check_email(bad)


@pytest.mark.parametrize("bad", ["0", "65536", "http", ""])
def test_bad_api_ports(bad: str) -> None:
    with pytest.raises(InvalidInput, match="API port"):
        check_api_port(bad)


def test_ssh_key_dir(tmp_path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        check_ssh_key_dir(tmp_path / "missing")
    with pytest.raises(InvalidInput, match="holds no private key"):
        check_ssh_key_dir(tmp_path)
    (tmp_path / "id_rsa").write_text("key")
    assert check_ssh_key_dir(tmp_path) == tmp_path


def test_initial_cluster_from_the_operator() -> None:
    value = "mao-1=http://203.0.113.10:2380,new-node=http://198.51.100.7:2380"
    assert check_initial_cluster(value, "new-node", "198.51.100.7") == value
    # the line etcdctl prints is accepted as pasted
    pasted = f'ETCD_INITIAL_CLUSTER="{value}"'
    assert check_initial_cluster(pasted, "new-node", "198.51.100.7") == value
    assert [m.name for m in parse_initial_cluster(value)] == ["mao-1", "new-node"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("mao-1", "malformed"),
        ("mao-1=203.0.113.10:2380", "malformed"),
        ("mao-1=http://203.0.113.10", "malformed"),
        ("mao-1=http://203.0.113.10:2380;new-node=http://198.51.100.7:2380", "malformed"),
        ("=http://203.0.113.10:2380", "malformed"),
        ("mao-1=http://203.0.113.10:2380,new-node=http://198.51.100.8:2380", "does not name this instance"),
        ("mao-1=http://203.0.113.10:2380,other=http://198.51.100.7:2380", "does not name this instance"),
        ("new-node=http://198.51.100.7:2380", "names only this instance"),
    ],
)
def test_bad_initial_cluster(value: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        check_initial_cluster(value, "new-node", "198.51.100.7")
