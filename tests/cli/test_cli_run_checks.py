"""``maoctl tool add`` warns of an image the engine lacks and cannot pull (in --json too), and
``maoctl pipeline run`` refuses a pipeline whose private variable is unset, naming the command."""

from __future__ import annotations

import json

import pytest
from served_kit import Served
from test_cli_registry import assert_one_line_error

from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance


def ok(spec, on_log) -> int:
    (spec.output_dir / "out.txt").write_text("ok\n")
    return 0


@pytest.fixture
def ctl(maoctl, tmp_path, free_port):
    settings = Settings(
        instance_name="cli-checks",
        data_dir=tmp_path / "data",
        api_port=free_port(),
        registry_backend="local",
        store_url=None,
        api_token=None,
    )
    inst = Instance(settings, executor=FakeExecutor({"img/ok": ok}))
    with Served.api(instance=inst) as srv:
        yield lambda *args: maoctl("--url", srv.url, *args)
    inst.close()


def test_tool_add_warns_of_an_image_the_engine_lacks(ctl) -> None:
    added = ctl("tool", "add", "--name", "far", "--image", "img/absent")
    assert added.code == 0, added
    assert "tool far registered" in added.out
    assert "Warning:" in added.err and "'img/absent' is not on the container engine" in added.err
    as_json = ctl("tool", "add", "--name", "far2", "--image", "img/absent", "--json")
    assert as_json.code == 0, as_json
    assert "could not be pulled" in json.loads(as_json.out)["warning"]
    quiet = ctl("tool", "add", "--name", "near", "--image", "img/ok")
    assert quiet.code == 0 and "Warning" not in quiet.output


def test_pipeline_run_with_an_unset_private_variable_names_the_command(ctl, tmp_path) -> None:
    assert ctl("tool", "add", "--name", "t", "--image", "img/ok").code == 0
    assert ctl("repo", "add", "--name", "out", "--register").code == 0
    spec = tmp_path / "p.yaml"
    spec.write_text("name: keyed\nsteps:\n  - {name: s, tool: t, output_dataset: out, env: {K: '{{ KEY }}'}}\n")
    assert ctl("pipeline", "add", "--file", str(spec)).code == 0
    command = "maoctl pipeline set-variable --name keyed --variable KEY"
    assert_one_line_error(ctl("pipeline", "run", "--name", "keyed"), "KEY", command)
    assert_one_line_error(ctl("pipeline", "run", "--name", "keyed", "--cron", "0 * * * *"), command)
    assert_one_line_error(ctl("pipeline", "schedule", "--name", "keyed", "--cron", "0 * * * *"), command)
    assert json.loads(ctl("runs", "list", "--json").out) == []
    assert json.loads(ctl("tool", "list-scheduled", "--json").out) == []
    assert ctl("pipeline", "set-variable", "--name", "keyed", "--variable", "KEY", "--value", "v").code == 0
    assert ctl("pipeline", "run", "--name", "keyed", "--wait").code == 0
