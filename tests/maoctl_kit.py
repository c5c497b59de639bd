"""Running ``maoctl`` in-process through its real entry point, for tests in any folder."""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


def run_maoctl(args: list[str], input: str | None = None, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``maoctl ARGS``, with ``input`` on stdin."""
    from typer.testing import CliRunner

    from mao.cli.main import main

    with CliRunner().isolation(input=input, env={"COLUMNS": "250", **(env or {})}) as streams:
        code = main(list(args))
        sys.stdout.flush()
        sys.stderr.flush()
        out, err = streams[0].getvalue().decode(), streams[1].getvalue().decode()
    return code, out, err
