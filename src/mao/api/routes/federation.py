"""The federation: live instances, the instances' commit signing keys and, for operators, etcd membership."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mao import federation
from mao.api.deps import InstanceDep
from mao.api.schemas import (
    FederationStatus,
    KeyRevoked,
    MemberAdded,
    MemberList,
    MemberRemoved,
    Router,
    SigningKeysOut,
    responses,
)
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


class RevokeKeyIn(Strict):
    instance: Name
    key: str = Field(min_length=8, max_length=16384, description="the key's id, or its public key line")
    reason: str = Field(default="", max_length=500)


@router.get("/signing-keys", response_model=SigningKeysOut, responses=responses(503))
def signing_keys(instance: InstanceDep) -> Any:
    """The instances' published commit signing keys (by instance, each with its id) and the revoked ones."""
    from mao.agreement.signers import KeyDirectory

    return KeyDirectory(instance.registry).listing()


@router.post("/signing-keys/revoke", response_model=KeyRevoked, responses=responses(400, 404, 413, 503))
def revoke_signing_key(body: RevokeKeyIn, instance: InstanceDep) -> Any:
    """Retire a signing key: commits it signs no longer count (its earlier tallies stay trusted
    where they were verified)."""
    from mao.agreement.signers import KeyDirectory

    record = KeyDirectory(instance.registry).revoke(body.instance, body.key, body.reason)
    return {"ok": True, **record}
