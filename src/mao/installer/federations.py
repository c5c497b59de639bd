"""The marketplace's list of federations that take new members.

Source forms: an http(s) base URL (``<url>/federations.json``) or a URL of the JSON
file itself, a ``file://`` URL, a local directory or JSON file, or ``builtin`` for the
sample catalogue shipped with the package.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx

from mao.errors import InvalidInput, NotFound, Unavailable

FETCH_TIMEOUT = 10.0


@dataclass(frozen=True)
class Federation:
    name: str
    description: str = ""
    operator: str = ""
    contacts: list[str] = field(default_factory=list)

    @property
    def contact(self) -> str:
        return ", ".join(self.contacts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Federation:
        name = data.get("name") or data.get("title")
        if not isinstance(name, str) or not name.strip():
            raise ValueError("a federation without a name")
        operator = data.get("operator") or data.get("operators") or ""
        contacts = data.get("contacts") or data.get("contact") or data.get("email") or []
        if isinstance(operator, dict):
            contacts = contacts or operator.get("email") or operator.get("contact") or []
            operator = operator.get("name") or operator.get("email") or ""
        elif isinstance(operator, list):
            operator = ", ".join(_text(o) for o in operator)
        if isinstance(contacts, (str, dict)):
            contacts = [contacts]
        return cls(
            name=name.strip(),
            description=_text(data.get("description", "")),
            operator=_text(operator),
            contacts=[_text(c) for c in contacts if _text(c)],
        )


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("email") or value.get("name") or value.get("url") or "")
    return "" if value is None else str(value).strip()


def _read_source(source: str) -> tuple[str, str]:
    """Return (where, text) for a marketplace source."""
    if source == "builtin":
        sample = resources.files("mao").joinpath("marketplace", "sample", "federations.json")
        if not sample.is_file():
            raise NotFound("this installation ships no sample marketplace catalogue")
        return "the built-in sample catalogue", sample.read_text(encoding="utf-8")
    parsed = urlparse(source)
    if parsed.scheme in ("http", "https"):
        url = source if parsed.path.endswith(".json") else source.rstrip("/") + "/federations.json"
        try:
            response = httpx.get(url, timeout=FETCH_TIMEOUT, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot reach the marketplace at {url}: {exc}") from exc
        if response.status_code != 200:
            raise Unavailable(f"the marketplace at {url} answered HTTP {response.status_code}")
        return url, response.text
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    elif parsed.scheme and len(parsed.scheme) > 1:
        raise InvalidInput(f"unsupported marketplace URL {source!r}: use http(s)://, file://, a path or 'builtin'")
    else:
        path = Path(source).expanduser()
    if path.is_dir():
        path = path / "federations.json"
    try:
        return str(path), path.read_text(encoding="utf-8")
    except OSError as exc:
        raise Unavailable(f"cannot read the marketplace catalogue {path}: {exc.strerror or exc}") from exc


def parse_federations(text: str, where: str = "the marketplace") -> list[Federation]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise Unavailable(f"{where} is not valid JSON: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("federations", data.get("items"))
    if not isinstance(data, list):
        raise Unavailable(f"{where} holds no list of federations")
    federations = []
    for item in data:
        if isinstance(item, dict):
            try:
                federations.append(Federation.from_dict(item))
            except ValueError:
                continue
    return federations


def load_federations(source: str) -> list[Federation]:
    where, text = _read_source(source)
    return parse_federations(text, where)


def find_federation(federations: list[Federation], wanted: str) -> Federation:
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
