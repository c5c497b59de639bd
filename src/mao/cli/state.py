"""Options shared by every command, with environment fallbacks, and lazily opened clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import typer

from mao.cli.client import Client

DEFAULT_URL = "http://127.0.0.1:8080"

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]


@dataclass
class State:
    url: str = DEFAULT_URL
    token: str | None = None
    json: bool = False
    config: str | None = None
    _client: Client | None = field(default=None, repr=False)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.url, self.token)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def state(ctx: typer.Context, json_flag: bool = False) -> State:
    st = ctx.find_root().obj
    if not isinstance(st, State):
        st = State()
        ctx.find_root().obj = st
    if json_flag:
        st.json = True
    return st
