"""``maoctl tool remove`` / ``maoctl dataset remove`` of what pipelines use: refused naming them,
removed with --force."""

from __future__ import annotations

import json

from test_cli_registry import assert_one_line_error, names, unique


def _define(cli, tmp_path, tool: str, dataset: str, count: int) -> list[str]:
    assert cli("tool", "add", "--name", tool, "--image", "mao/collector:1.0").code == 0
    assert cli("dataset", "add", "--name", dataset, "--git_url", "/srv/git/ds.git").code == 0
    pipelines = []
    for n in range(count):
        name = unique("uses")
        path = tmp_path / f"{name}.json"
        step = {"name": f"s{n}", "tool": tool, "output_dataset": dataset}
        path.write_text(json.dumps({"name": name, "steps": [step]}))
        added = cli("pipeline", "add", "--file", str(path))
        assert added.code == 0, added
        pipelines.append(name)
    return sorted(pipelines)


def test_removing_a_tool_that_pipelines_use_is_refused_naming_them(cli, tmp_path) -> None:
    tool, dataset = unique("demo-tool"), unique("demo-data")
    pipelines = _define(cli, tmp_path, tool, dataset, 2)
    assert cli("pipeline", "run", "--name", pipelines[0], "--cron", "0 * * * *").code == 0

    line = assert_one_line_error(cli("tool", "remove", "--name", tool), tool, "--force", *pipelines)
    assert f"'{pipelines[0]}' (scheduled)" in line
    assert tool in names(cli("tool", "list", "--json"))
    assert json.loads(cli("--json", "tool", "get", "--name", tool).out)["image"] == "mao/collector:1.0"

    refused = cli("--json", "dataset", "remove", "--name", dataset)
    assert refused.code != 0 and dataset in names(cli("dataset", "list", "--json"))

    removed = cli("tool", "remove", "--name", tool, "--force")
    assert removed.code == 0, removed
    assert tool not in names(cli("tool", "list", "--json"))
    forced = cli("--json", "dataset", "remove", "--name", dataset, "--force")
    assert forced.code == 0 and json.loads(forced.out) == {"ok": True, "name": dataset}
    assert dataset not in names(cli("dataset", "list", "--json"))
