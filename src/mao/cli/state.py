"""Options shared by every command, with environment fallbacks, and lazily opened clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from mao.cli.defaults import DEFAULT_URL
from mao.errors import InvalidInput, MAOError
from mao.tokens import API_TOKEN_FILE, is_loopback, read_token_file

if TYPE_CHECKING:
    from mao.cli.client import Client

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
            from mao.cli.client import Client  # httpx: imported by the commands that talk to an orchestrator

            self._client = Client(self.url, self.api_token())
        return self._client

    def api_token(self) -> str | None:
        """``--token``/``MAO_API_TOKEN``, else, for an orchestrator on this machine, the
        ``api_token`` of this user's settings (``--config``/``MAO_CONFIG``) or the token
        ``maoctl serve`` generated into ``<data_dir>/api-token`` (the data dir of these
        settings, e.g. ``MAO_DATA_DIR``)."""
        if self.token:
            if not self.token.strip():
                raise InvalidInput("--token/MAO_API_TOKEN is blank: give the API's token, or unset it")
            return self.token.strip()
        from mao.cli.client import normalize_url

        if not is_loopback(urlsplit(normalize_url(self.url)).hostname or ""):
            return None  # never send this machine's token elsewhere
        from mao.config import load_settings

        try:
            settings = load_settings(self.config)
            return settings.api_token or read_token_file(settings.data_dir / API_TOKEN_FILE)
        except MAOError:
            return None

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
