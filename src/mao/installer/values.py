"""Validators for the installer's answers. Each returns the cleaned value or raises InvalidInput."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mao.errors import InvalidInput
from mao.validation import check_name

ETCD_PEER_PORT = 2380
ETCD_CLIENT_PORT = 2379

# The private key names git's SSH looks for, in the order it tries them.
KEY_NAMES = ("id_ed25519", "id_ecdsa", "id_rsa")

_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#%&'*+/=?^_{|}~-]+"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_MEMBER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PEER_URL_RE = re.compile(r"^https?://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(?P<port>\d{1,5})$")


def check_instance_name(value: str) -> str:
    return check_name((value or "").strip(), "instance name")


def check_public_ip(value: str) -> str:
    """An IPv4 or IPv6 address other instances can reach; not 0.0.0.0, not multicast."""
    text = (value or "").strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidInput(f"invalid public IP {value!r}: give an IPv4 or IPv6 address such as 203.0.113.10") from None
    if ip.is_unspecified or ip.is_multicast:
        raise InvalidInput(f"invalid public IP {value!r}: give the address other instances reach this host on")
    return str(ip)


def peer_url(public_ip: str, port: int = ETCD_PEER_PORT) -> str:
    """``http://IP:2380`` (IPv6 in brackets)."""
    ip = ipaddress.ip_address(public_ip)
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"http://{host}:{port}"


def check_email(value: str) -> str:
    text = (value or "").strip()
    if len(text) > 254 or not _EMAIL_RE.fullmatch(text):
        raise InvalidInput(f"invalid git e-mail address {value!r}: give an address such as alice@example.org")
    return text


def check_port(value: int | str, what: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"invalid {what} {value!r}: give a number from 1 to 65535") from None
    if not 1 <= port <= 65535:
        raise InvalidInput(f"invalid {what} {value!r}: give a number from 1 to 65535")
    return port


def check_api_port(value: int | str) -> int:
    return check_port(value, "API port")


def check_subnet(value: str, what: str) -> str:
    """A private IPv4 or IPv6 network in CIDR form, e.g. 172.31.89.0/26."""
    text = (value or "").strip()
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError:
        raise InvalidInput(f"invalid {what} {value!r}: give a network such as 172.31.89.0/26") from None
    if not net.is_private or net.num_addresses < 8:
        raise InvalidInput(f"invalid {what} {value!r}: give a private network of at least 8 addresses")
    return str(net)


def check_image(value: str, what: str) -> str:
    text = (value or "").strip()
    if not text or text.startswith("-") or any(ch.isspace() or ord(ch) < 32 for ch in text) or "$" in text:
        raise InvalidInput(f"invalid {what} {value!r}: give an image reference such as postgres:15")
    return text


def check_host_path(value: str | Path, what: str) -> Path:
    """An absolute, normalised host path that a compose file can carry."""
    text = str(value or "").strip()
    if not text:
        raise InvalidInput(f"give the {what}")
    if any(ch in text for ch in "\n\r\0"):
        raise InvalidInput(f"invalid {what} {text!r}: it may not contain control characters")
    return Path(os.path.normpath(os.path.abspath(os.path.expanduser(text))))


def find_private_key(directory: Path) -> Path | None:
    """The first private key in ``directory`` that git's SSH would use, or None."""
    for key_name in KEY_NAMES:
        candidate = directory / key_name
        if candidate.is_file():
            return candidate
    return None


def check_ssh_key_dir(value: str | Path) -> Path:
    """A directory that exists and holds a private key (id_ed25519, id_ecdsa or id_rsa)."""
    path = check_host_path(value, "SSH key directory")
    if not path.is_dir():
        raise InvalidInput(f"SSH key directory {path} does not exist")
    if find_private_key(path) is None:
        raise InvalidInput(
            f"SSH key directory {path} holds no private key ({', '.join(KEY_NAMES)}): "
            "generate one (ssh-keygen -t ed25519 -f DIR/id_ed25519) or choose another directory"
        )
    return path


@dataclass(frozen=True)
class ClusterMember:
    name: str
    peer_url: str


def parse_initial_cluster(value: str) -> list[ClusterMember]:
    """Parse ``name=http://ip:2380[,name=http://ip:2380...]``.

    Also accepts the line etcd prints, ``ETCD_INITIAL_CLUSTER="..."``.
    """
    text = (value or "").strip()
    if text.startswith("ETCD_INITIAL_CLUSTER="):
        text = text[len("ETCD_INITIAL_CLUSTER=") :].strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    example = "mao-1=http://203.0.113.10:2380,mao-2=http://198.51.100.7:2380"
    if not text:
        raise InvalidInput(f"ETCD_INITIAL_CLUSTER is empty: paste the value the operator sent, e.g. {example}")
    members = []
    for part in text.split(","):
        part = part.strip()
        name, sep, url = part.partition("=")
        name, url = name.strip(), url.strip().rstrip("/")
        if not sep or not _MEMBER_NAME_RE.fullmatch(name):
            raise InvalidInput(
                f"malformed ETCD_INITIAL_CLUSTER entry {part!r}: expected NAME=http://IP:2380 as in {example}"
            )
        match = _PEER_URL_RE.fullmatch(url)
        if not match or not 1 <= int(match["port"]) <= 65535:
            raise InvalidInput(
                f"malformed ETCD_INITIAL_CLUSTER entry {part!r}: the peer URL must look like http://IP:2380"
            )
        members.append(ClusterMember(name, url))
    return members


def format_initial_cluster(members: list[ClusterMember]) -> str:
    return ",".join(f"{m.name}={m.peer_url}" for m in members)


def check_initial_cluster(value: str, instance_name: str, public_ip: str, peer_port: int = ETCD_PEER_PORT) -> str:
    """Validate the operator's value for this instance; return it normalised."""
    members = parse_initial_cluster(value)
    mine = peer_url(public_ip, peer_port)
    if ClusterMember(instance_name, mine) not in members:
        raise InvalidInput(
            f"ETCD_INITIAL_CLUSTER does not name this instance as {instance_name}={mine}: the operator must add "
            f"the member with 'maoctl federation member add {instance_name} --peer-url {mine}' "
            "(check the instance name and public IP you gave)"
        )
    if not any(m.name != instance_name for m in members):
        raise InvalidInput(
            "ETCD_INITIAL_CLUSTER names only this instance: the operator's value lists the federation's "
            "existing members too"
        )
    return format_initial_cluster(members)


def check_federate(value: str) -> bool:
    """Answer to 'standalone or join' as text: 1/standalone/new or 2/join/federate."""
    text = (value or "").strip().lower()
    if text in ("1", "s", "standalone", "new"):
        return False
    if text in ("2", "j", "join", "federate", "f"):
        return True
    raise InvalidInput(f"answer 1 (standalone) or 2 (join a federation), not {value!r}")
