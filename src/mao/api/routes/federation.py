"""The federation: live instances and, for operators, etcd membership."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mao import federation
from mao.api.deps import InstanceDep
from mao.api.schemas import FederationStatus, MemberAdded, MemberList, MemberRemoved, Router, responses
from mao.federation import PEER_URL_PATTERN
from mao.models import Strict
from mao.validation import Name

router = Router(prefix="/federation", tags=["federation"])


class MemberIn(Strict):
    name: Name
    peer_url: str = Field(
        max_length=256,
        description="http://<new-instance-ip>:2380",
        json_schema_extra={"pattern": PEER_URL_PATTERN},
    )


@router.get("/status", response_model=FederationStatus, responses=responses(503))
def status(instance: InstanceDep) -> Any:
    return instance.operations.federation_status()


@router.get("/members", response_model=MemberList, responses=responses(409, 503))
def list_members(instance: InstanceDep) -> Any:
    """The etcd members; a 409 on a standalone instance (registry_backend local), which has none."""
    return {"members": federation.members(instance.registry)}


@router.post("/members", response_model=MemberAdded, responses=responses(400, 409, 413, 503))
def add_member(body: MemberIn, instance: InstanceDep) -> Any:
    return {"ok": True, **federation.add_member(instance.registry, body.name, body.peer_url)}


@router.delete("/members/{member}", response_model=MemberRemoved, responses=responses(400, 404, 409, 503))
def remove_member(member: str, instance: InstanceDep) -> Any:
    return {"ok": True, "removed": federation.remove_member(instance.registry, member)}
