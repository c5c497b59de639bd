"""The federation an installation joins, chosen from the marketplace's ``federations.json``.

The catalogue is read by :class:`mao.marketplace.Marketplace` (its URL forms, its format
:class:`mao.marketplace.FederationEntry`, its errors); this module adds what the installer
needs on top: finding an entry by what the user typed, and a choice that may be only a
name when the marketplace could not be read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from mao.errors import InvalidInput
from mao.marketplace import FederationEntry, Marketplace
from mao.validation import check_name


def list_federations(url: str) -> list[FederationEntry]:
    """The federations the marketplace at ``url`` lists; :class:`MarketplaceError` if it cannot be read."""
    with Marketplace(url) as market:
        return market.federations()


def find_federation(federations: list[FederationEntry], wanted: str) -> FederationEntry:
    """By exact name, case-insensitive name, or 1-based number in the list."""
    text = wanted.strip()
    for fed in federations:
        if fed.name == text:
            return fed
    for fed in federations:
        if fed.name.casefold() == text.casefold():
            return fed
    if text.isdigit() and 1 <= int(text) <= len(federations):
        return federations[int(text) - 1]
    names = ", ".join(repr(f.name) for f in federations) or "none"
    raise InvalidInput(f"unknown federation {wanted!r}: the marketplace lists {names}")


@dataclass(frozen=True)
class ChosenFederation:
    """The federation to join: its marketplace entry, or only its name when the marketplace
    could not be read (the operator then gives everything else)."""

    name: str
    entry: FederationEntry | None = None

    @classmethod
    def listed(cls, entry: FederationEntry) -> ChosenFederation:
        return cls(entry.name, entry)

    @classmethod
    def unlisted(cls, name: str) -> ChosenFederation:
        """A federation known only by the name the user gave; ``InvalidInput`` unless it is a valid name."""
        return cls(check_name(name.strip(), "federation name"))

    @property
    def operator(self) -> str:
        return self.entry.operator if self.entry else ""

    @property
    def contact(self) -> str:
        return self.entry.contact if self.entry else ""

    @property
    def etcd_peer_hint(self) -> str | None:
        return self.entry.etcd_peer_hint if self.entry else None

    def to_state(self) -> dict[str, Any]:
        """What a suspended installation saves: the marketplace entry, or ``{"name": ...}``."""
        if self.entry is not None:
            return self.entry.model_dump(mode="json", exclude_none=True)
        return {"name": self.name}

    @classmethod
    def from_state(cls, saved: Any) -> ChosenFederation | None:
        """Read back :meth:`to_state`; a saved value that is no valid entry keeps just its name."""
        if not isinstance(saved, dict):
            return None
        try:
            return cls.listed(FederationEntry.model_validate(saved))
        except ValidationError:
            pass
        name = saved.get("name")
        if not isinstance(name, str):
            return None
        try:
            return cls.unlisted(name)
        except InvalidInput:
            return None
