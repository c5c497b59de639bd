"""A step's transfer, for an engine whose nodes do not share the instance's disk: opened before
its container runs (``StepSpec.transfer``), closed after, and the node's output required."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mao.executor.base import StepResult, StepTransfer
from mao.status import RunStatus

if TYPE_CHECKING:
    from mao.exchange import OpenTransfer, StepExchange
    from mao.executor.base import Executor


class StepTransferScope:
    """One step's transfer, if its engine moves data (:attr:`Executor.transfers_data`)."""

    def __init__(self, exchange: Callable[[], StepExchange] | None) -> None:
        self._exchange = exchange
        self._opened: OpenTransfer | None = None

    def open(self, engine: Executor, worktree: Path, input_dir: Path | None) -> StepTransfer | None:
        if not engine.transfers_data:
            return None
        if self._exchange is None:
            raise RuntimeError(f"the {engine.name} engine moves data by commit, but no exchange was given")
        self._opened = self._exchange().open(worktree, input_dir)
        return self._opened.transfer

    def settle(self, result: StepResult) -> StepResult:
        """A step that succeeded on a node that sent no output back has failed."""
        if self._opened is None or result.status != RunStatus.SUCCEEDED or self._opened.received:
            return result
        return StepResult(
            status=RunStatus.FAILED,
            exit_code=result.exit_code,
            image_digest=result.image_digest,
            error="the node sent back no output tree",
            node=result.node,
        )

    def close(self) -> None:
        if self._opened is not None and self._exchange is not None:
            self._exchange().close(self._opened.key)
