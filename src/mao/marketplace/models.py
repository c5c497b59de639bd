"""What a marketplace catalogue holds: federations to join, tools to register, pipelines to run.

Tools and pipelines have exactly the shape the orchestrator's API accepts
(:class:`mao.models.ToolIn` and the full form of :class:`mao.models.PipelineIn`), so an
entry can be posted as it is.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from mao.models import PipelineIn, Strict, ToolIn

_EMAIL_RE = re.compile(r"^(mailto:)?[^@\s<>\"']+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_URL_RE = re.compile(r"^https?://[^\s<>\"']+$")


class FederationEntry(Strict):
    """A federation an instance may ask to join: who runs it and how to reach them.

    ``contact`` is one or more e-mail addresses or http(s) URLs, comma-separated; the
    list form ``"contacts": [...]`` of older catalogues is accepted as well. A federation's
    name is for people (it may hold spaces); ``operator`` is optional."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    description: str = Field(default="", max_length=2000)
    operator: str = Field(default="", max_length=200)
    contact: str = Field(min_length=3, max_length=500)
    """E-mail addresses or http(s) URLs, comma-separated."""
    etcd_peer_hint: str | None = Field(default=None, max_length=500)
    """Where the federation's etcd peers are, as far as the operator publishes it."""

    @model_validator(mode="before")
    @classmethod
    def _contacts_list(cls, data: Any) -> Any:
        if isinstance(data, dict) and "contacts" in data:
            data = dict(data)
            contacts = data.pop("contacts")
            if "contact" not in data:
                if not isinstance(contacts, list) or not all(isinstance(c, str) for c in contacts):
                    raise ValueError("contacts must be a list of e-mail addresses or URLs")
                data["contact"] = ", ".join(c.strip() for c in contacts if c.strip())
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return value.strip()

    @field_validator("contact")
    @classmethod
    def _contact(cls, value: str) -> str:
        for part in (p.strip() for p in value.split(",")):
            if not (_EMAIL_RE.fullmatch(part) or _URL_RE.fullmatch(part)):
                raise ValueError(f"contact {part!r} must be an e-mail address or an http(s) URL")
        return value


class ToolEntry(ToolIn):
    """A tool, exactly as ``POST /registry/tools`` takes it."""


class PipelineEntry(PipelineIn):
    """A pipeline definition ``{name, description, steps}``, as ``POST /pipeline/init`` takes it.

    Private values never travel with a catalogue: a step's env names them as
    ``{{ NAME }}`` and the instance asks for them."""

    @model_validator(mode="before")
    @classmethod
    def _full_form(cls, data: Any) -> Any:
        if isinstance(data, dict):
            extra = sorted(k for k in ("tool", "dataset", "private_variables") if k in data)
            if extra:
                raise ValueError(f"unexpected field(s) {', '.join(extra)}: give name, description and steps")
            for key in ("name", "steps"):
                if not data.get(key):
                    raise ValueError(f"{key} is required")
        return data

    def tools(self) -> list[str]:
        return list(dict.fromkeys(step.tool for step in self.steps))

    def datasets(self) -> list[str]:
        return list(dict.fromkeys(d for step in self.steps for d in (step.input_dataset, step.output_dataset) if d))
