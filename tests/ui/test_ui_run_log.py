"""The run page's log: its last lines, a link that loads earlier ones a page at a time, and
each line at most the line limit."""

from __future__ import annotations

import re

from mao.store.models import LogLine
from mao.ui.live import PAGE_LINES
from mao.untrusted import MAX_LOG_LINE_BYTES


def _run(ui, count: int) -> tuple[int, list[int]]:
    store = ui.app.state.instance.store
    run_id = store.create_run("demo", [{"name": "s", "tool": "t", "output_dataset": "d"}]).id
    store.append_logs([(run_id, "s", f"line {i}") for i in range(count)])
    return run_id, [row.id for row in store.logs(run_id, limit=count)]


def _lines(html: str) -> list[str]:
    return re.findall(r'<span class="step">s</span> (line \d+)</span>', html)


def _earlier(html: str) -> tuple[str, str] | None:
    found = re.search(r'<a class="earlier muted" href="([^"]+)" hx-get="([^"]+)"', html)
    return (found.group(1), found.group(2)) if found else None


def test_the_run_page_shows_the_last_lines_and_loads_earlier_ones(ui) -> None:
    count = 2 * PAGE_LINES + 500
    run_id, ids = _run(ui, count)
    page = ui.get(f"/ui/runs/{run_id}").text
    assert _lines(page) == [f"line {i}" for i in range(count - PAGE_LINES, count)]
    assert f"/ui/runs/{run_id}/events?after={ids[-1]}" in page  # the live log goes on after the last one
    href, more = _earlier(page) or ("", "")
    assert more == f"/ui/runs/{run_id}/log?before={ids[count - PAGE_LINES]}"
    assert href == f"/ui/runs/{run_id}?before={ids[count - PAGE_LINES]}"

    second = ui.get(more)
    assert second.status_code == 200
    assert _lines(second.text) == [f"line {i}" for i in range(count - 2 * PAGE_LINES, count - PAGE_LINES)]
    _, more = _earlier(second.text) or ("", "")
    third = ui.get(more).text
    assert _lines(third) == [f"line {i}" for i in range(500)]
    assert _earlier(third) is None  # the first lines: nothing before them

    # without scripts the link opens the page at that part of the log, which is not live
    older = ui.get(href).text
    assert _lines(older) == _lines(second.text) and 'data-active="false"' in older


def test_a_short_log_has_no_link(ui) -> None:
    run_id, _ = _run(ui, 3)
    page = ui.get(f"/ui/runs/{run_id}").text
    assert _lines(page) == ["line 0", "line 1", "line 2"] and _earlier(page) is None


def test_a_long_line_is_shown_cut(ui) -> None:
    store = ui.app.state.instance.store
    run_id = store.create_run("demo", [{"name": "s", "tool": "t", "output_dataset": "d"}]).id
    with store.session() as s:  # stored whole, as a version without the limit did
        s.add(LogLine(run_id=run_id, step="s", line="v" * (8 * 1024 * 1024)))
    page = ui.get(f"/ui/runs/{run_id}").text
    assert len(page.encode()) < 2 * MAX_LOG_LINE_BYTES
    assert "… [truncated: 8388608 bytes in total]" in page


def test_bad_log_pages_are_refused(ui) -> None:
    run_id, ids = _run(ui, 3)
    assert ui.get(f"/ui/runs/{run_id}/log").status_code == 400  # before= is needed
    assert ui.get(f"/ui/runs/{run_id}/log?before=0").status_code == 400
    assert ui.get(f"/ui/runs/{run_id}?before=abc").status_code == 400
    assert ui.get(f"/ui/runs/999/log?before={ids[0]}").status_code == 404
