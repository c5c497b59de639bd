"""A cancelled step's log line says it once: ``step nap cancelled``."""

from __future__ import annotations

import json
import threading

import pytest
from served_kit import Served
from waiting import wait_for

from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance


@pytest.fixture
def ctl(maoctl, tmp_path, free_port):
    released = threading.Event()

    def nap(spec, on_log):
        on_log("napping")
        released.wait(30)
        return 0

    settings = Settings(
        instance_name="cli-cancel",
        data_dir=tmp_path / "data",
        api_port=free_port(),
        registry_backend="local",
        store_url=None,
        api_token=None,
    )
    inst = Instance(settings, executor=FakeExecutor({"img/nap": nap}))
    with Served.api(instance=inst, background=True) as srv:
        yield lambda *args: maoctl("--url", srv.url, *args)
        released.set()
    inst.close()


def test_the_cancel_line_names_the_state_once(ctl, tmp_path):
    assert ctl("tool", "add", "--name", "napper", "--image", "img/nap").code == 0
    assert ctl("repo", "add", "--name", "naps", "--register").code == 0
    spec = tmp_path / "nap.yaml"
    spec.write_text("name: nap\nsteps:\n  - {name: nap, tool: napper, output_dataset: naps}\n")
    assert ctl("pipeline", "add", "--file", str(spec)).code == 0
    run_id = json.loads(ctl("pipeline", "run", "--name", "nap", "--json").out)["run_id"]

    def show() -> dict:
        return json.loads(ctl("runs", "show", str(run_id), "--json").out)

    def logged() -> list[str]:
        return [line["line"] for line in json.loads(ctl("runs", "logs", str(run_id), "--json").out)]

    # the tool itself is running (a cancel before that ends the step "cancelled before it started")
    wait_for(lambda: "napping" in logged(), 15, "the tool to run")
    assert ctl("runs", "cancel", str(run_id)).code == 0
    wait_for(lambda: show()["status"] == "cancelled", 15, "the run to end cancelled")
    lines = logged()
    assert "step nap cancelled" in lines, lines
    assert not any("cancelled: cancelled" in line for line in lines), lines
