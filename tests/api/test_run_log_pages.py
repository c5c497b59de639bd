"""``GET /runs/{id}/logs`` in pages from either end, each line at most the line limit."""

from __future__ import annotations

from mao.store.models import LogLine
from mao.untrusted import MAX_LOG_LINE_BYTES


def _run_with_lines(client, count: int) -> tuple[int, list[int]]:
    store = client.app.state.instance.store
    run_id = store.create_run("p", [{"name": "s", "tool": "t", "output_dataset": "d"}]).id
    store.append_logs([(run_id, "s" if i % 2 else None, f"line {i}") for i in range(count)])
    return run_id, [row.id for row in store.logs(run_id)]


def _texts(body: dict) -> list[str]:
    return [line["line"] for line in body["lines"]]


def test_the_last_lines_and_those_before_them(client) -> None:
    run_id, ids = _run_with_lines(client, 10)
    last = client.get(f"/runs/{run_id}/logs", params={"tail": True, "limit": 4}).json()
    assert _texts(last) == ["line 6", "line 7", "line 8", "line 9"]
    assert (last["earlier"], last["later"]) == (True, False)
    before = last["lines"][0]["id"]
    page = client.get(f"/runs/{run_id}/logs", params={"tail": True, "limit": 4, "before": before}).json()
    assert _texts(page) == ["line 2", "line 3", "line 4", "line 5"]
    assert (page["earlier"], page["later"]) == (True, True)
    first = client.get(f"/runs/{run_id}/logs", params={"tail": True, "limit": 4, "before": ids[2]}).json()
    assert _texts(first) == ["line 0", "line 1"] and (first["earlier"], first["later"]) == (False, True)


def test_reading_on_from_a_line_still_works(client) -> None:
    run_id, ids = _run_with_lines(client, 10)
    page = client.get(f"/runs/{run_id}/logs", params={"after": ids[4], "limit": 3}).json()
    assert _texts(page) == ["line 5", "line 6", "line 7"] and (page["earlier"], page["later"]) == (True, True)
    end = client.get(f"/runs/{run_id}/logs", params={"after": ids[-1]}).json()
    assert end["lines"] == [] and (end["earlier"], end["later"]) == (True, False)
    whole = client.get(f"/runs/{run_id}/logs").json()
    assert len(whole["lines"]) == 10 and (whole["earlier"], whole["later"]) == (False, False)
    steps = client.get(f"/runs/{run_id}/logs", params={"step": "s", "tail": True, "limit": 2}).json()
    assert _texts(steps) == ["line 7", "line 9"]
    assert client.get(f"/runs/{run_id}/logs", params={"before": 0}).status_code == 400


def test_a_long_line_is_served_cut_even_if_it_was_stored_whole(client) -> None:
    store = client.app.state.instance.store
    run_id = store.create_run("p", [{"name": "s", "tool": "t", "output_dataset": "d"}]).id
    store.append_log(run_id, "s", "q" * (8 * 1024 * 1024))
    with store.session() as s:  # as a version without the limit stored it
        s.add(LogLine(run_id=run_id, step="s", line="w" * (8 * 1024 * 1024)))
    lines = _texts(client.get(f"/runs/{run_id}/logs").json())
    assert [line[0] for line in lines] == ["q", "w"]
    for line in lines:
        assert len(line.encode()) <= MAX_LOG_LINE_BYTES
        assert line.endswith("… [truncated: 8388608 bytes in total]")


def test_the_paging_is_documented(client) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/runs/{run_id}/logs"]["get"]
    assert {"after", "before", "limit", "tail", "step"} <= {p["name"] for p in operation["parameters"]}
    schema = client.get("/openapi.json").json()["components"]["schemas"]["LogsOut"]["properties"]
    assert {"earlier", "later"} <= set(schema)
