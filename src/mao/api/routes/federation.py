"""The federation: live instances and, for operators, etcd membership."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mao import federation
from mao.api.deps import InstanceDep
from mao.models import Strict

router = APIRouter(prefix="/federation", tags=["federation"])


class MemberIn(Strict):
    name: str
    peer_url: str


@router.get("/status")
def status(instance: InstanceDep) -> dict[str, Any]:
    body: dict[str, Any] = {
        "instance": instance.name,
        "registry": instance.registry.ping(),
        "instances": federation.live_instances(instance),
    }
    if instance.settings.registry_backend == "etcd":
        body["members"] = federation.members(instance)
    return body


@router.get("/members")
def list_members(instance: InstanceDep) -> dict[str, Any]:
    return {"members": federation.members(instance)}


@router.post("/members")
def add_member(body: MemberIn, instance: InstanceDep) -> dict[str, Any]:
    return {"ok": True, **federation.add_member(instance, body.name, body.peer_url)}


@router.delete("/members/{member}")
def remove_member(member: str, instance: InstanceDep) -> dict[str, Any]:
    return {"ok": True, "removed": federation.remove_member(instance, member)}
