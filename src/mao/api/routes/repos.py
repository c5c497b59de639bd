"""Local-only datasets: bare repositories in the instance's data directory."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from mao.api.deps import InstanceDep
from mao.api.schemas import BareRepoOut, Router, responses
from mao.errors import AlreadyExists
from mao.models import DatasetBody, DatasetIn, Strict
from mao.validation import Name

router = Router(tags=["datasets"])


class BareRepoIn(Strict):
    model_config = ConfigDict(populate_by_name=True)

    name: Name
    register_dataset: bool = Field(default=False, alias="register")
    """Also register the repository as a dataset of that name."""


@router.post("/bare-repo/init", response_model=BareRepoOut, responses=responses(400, 409, 413, 502, 503))
def init_bare_repo(body: BareRepoIn, instance: InstanceDep) -> Any:
    if body.register_dataset and body.name in instance.catalog.datasets():
        raise AlreadyExists(f"dataset {body.name!r} is already registered")
    existing = instance.settings.bare_repos_dir / f"{body.name}.git"
    if body.register_dataset and (existing / "HEAD").is_file():
        # a local repository whose dataset was unregistered: register it again, keep its history
        path, created = existing, False
    else:
        path, created = instance.datasets.create_bare(body.name), True
    result: dict[str, Any] = {"ok": True, "name": body.name, "path": str(path), "created": created}
    if body.register_dataset:
        instance.catalog.add_dataset(DatasetIn(name=body.name, body=DatasetBody(master=str(path))))
        result["registered"] = True
    return result
