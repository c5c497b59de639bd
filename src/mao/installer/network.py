"""The host's own addresses, offered as choices for the instance's public IP."""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import subprocess
from dataclasses import dataclass

# Interfaces that container engines and VPN tools create: listed last.
_VIRTUAL_PREFIXES = ("docker", "br-", "veth", "cni", "podman", "virbr", "flannel", "cali", "vxlan", "tun", "tap")


@dataclass(frozen=True)
class LocalAddress:
    ip: str
    interface: str

    def label(self) -> str:
        return f"{self.ip} ({self.interface})" if self.interface else self.ip


def _usable(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    return not (addr.is_loopback or addr.is_link_local or addr.is_unspecified or addr.is_multicast)


def _from_ip_command() -> list[LocalAddress] | None:
    exe = shutil.which("ip")
    if not exe:
        return None
    try:
        proc = subprocess.run(
            [exe, "-j", "addr"], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL, check=False
        )
        data = json.loads(proc.stdout) if proc.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    if not isinstance(data, list):
        return None
    found = []
    for iface in data:
        if not isinstance(iface, dict) or "LOOPBACK" in iface.get("flags", []):
            continue
        for info in iface.get("addr_info", []):
            ip = info.get("local")
            if info.get("family") in ("inet", "inet6") and info.get("scope") == "global" and ip and _usable(ip):
                found.append(LocalAddress(ip, str(iface.get("ifname", ""))))
    return found


def _from_psutil() -> list[LocalAddress] | None:
    try:
        import psutil
    except ImportError:
        return None
    found = []
    for ifname, addrs in psutil.net_if_addrs().items():
        for addr in addrs:
            if addr.family in (socket.AF_INET, socket.AF_INET6) and _usable(addr.address):
                found.append(LocalAddress(addr.address.split("%", 1)[0], ifname))
    return found


def _from_hostname() -> list[LocalAddress]:
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        return []
    return [LocalAddress(str(info[4][0]), "") for info in infos if _usable(str(info[4][0]))]


def _rank(addr: LocalAddress) -> tuple[int, int, int]:
    ip = ipaddress.ip_address(addr.ip)
    virtual = addr.interface.startswith(_VIRTUAL_PREFIXES)
    return (int(virtual), 0 if ip.version == 4 else 1, 0 if ip.is_global else 1)


def local_addresses() -> list[LocalAddress]:
    """Global addresses on this host's interfaces, most likely public ones first."""
    found = _from_ip_command()
    if found is None:
        found = _from_psutil()
    if found is None:
        found = _from_hostname()
    unique: dict[str, LocalAddress] = {}
    for addr in found:
        unique.setdefault(addr.ip, addr)
    return sorted(unique.values(), key=_rank)


def is_local_address(ip: str) -> bool:
    """Whether ``ip`` is on one of this host's interfaces (so a port can be published on it)."""
    if ipaddress.ip_address(ip).is_loopback:
        return True
    return any(addr.ip == ip for addr in local_addresses())
