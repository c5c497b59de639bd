from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hook_kit import SECRET, Receiver

from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, StepIn, ToolIn


def _ok(spec, on_log) -> int:
    (spec.output_dir / "out.txt").write_text(f"run {spec.run_id}\n")
    return 0


def _fail(spec, on_log) -> int:
    on_log("something went wrong")
    return 3


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


@pytest.fixture
def make_instance(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Instance]]:
    """An instance with notification rules, a FakeExecutor (``img/ok``, ``img/fail``), a bare-repository
    dataset ``out`` and pipelines ``good`` and ``bad``."""
    monkeypatch.setenv("MAO_HOOK_SECRET", SECRET)
    made: list[Instance] = []

    def make(rules: list[dict[str, Any]], **settings: Any) -> Instance:
        inst = Instance(
            Settings(instance_name="hooked", data_dir=data_dir, notifications=rules, **settings),
            executor=FakeExecutor({"img/ok": _ok, "img/fail": _fail}),
        )
        inst.setup()
        bare = inst.datasets.create_bare("out")
        inst.catalog.add_dataset(DatasetIn(name="out", body=DatasetBody(master=str(bare))))
        for name, image in (("good", "img/ok"), ("bad", "img/fail")):
            inst.catalog.add_tool(ToolIn(name=name, image=image))
            inst.store.add_pipeline(name, "", [StepIn(name=name, tool=name, output_dataset="out")])
        made.append(inst)
        return inst

    yield make
    for inst in made:
        inst.close()
