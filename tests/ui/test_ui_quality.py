"""The dashboard's quality views with FastAPI's TestClient: suspect runs shown as suspect on
every page, the charts drawing exactly what the API answers (points counted and compared),
insights, the overview's recent runs and failures, the datasets' last commits."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from html import unescape

import pytest
from ui_kit import MEASURES, SUSPECT, populate


@pytest.fixture
def quality(make_ui, reports):
    """A dashboard with :func:`ui_kit.populate`'s runs; (client, run ids)."""
    client = make_ui()
    return client, populate(client, reports)


# ---------------------------------------------------------------------------- reading the pages


def figure(page: str, ident: str) -> str:
    found = re.search(rf'<figure [^>]*id="{re.escape(ident)}"[^>]*>.*?</figure>', page, re.S)
    assert found, f"no figure {ident!r} in the page"
    return found.group(0)


def attributes(tag: str) -> dict[str, str]:
    return dict(re.findall(r'([a-z-]+)="([^"]*)"', tag))


def elements(fig: str, name: str, cls: str) -> list[dict[str, str]]:
    """The attributes of each ``<name class="cls …">`` of a figure."""
    return [attributes(tag) for tag in re.findall(rf'<{name} class="{cls}(?:"| )[^>]*>', fig)]


def points(fig: str) -> list[dict[str, str]]:
    """A line chart's points (dots and marked squares), in order, with their data-* values."""
    return [
        {k[5:]: v for k, v in attributes(tag).items() if k.startswith("data-")}
        | {"_tag": tag.split()[0][1:]}
        | {"_y": attributes(tag).get("cy") or str(float(attributes(tag)["y"]) + 5)}
        | {"_x": attributes(tag).get("cx") or str(float(attributes(tag)["x"]) + 5)}
        for tag in re.findall(r'<(?:circle|rect) class="pt[ "][^>]*>', fig)
    ]


def badge_of_run(page: str, run_id: int) -> str:
    row = re.search(rf'<tr data-run="{run_id}">.*?</tr>', page, re.S)
    assert row, f"run {run_id} is not listed"
    return re.search(r'class="badge st-([a-z_]+) run-status">([a-z_]+)<', row.group(0)).group(2)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=30).stdout


def master(ui, dataset: str) -> str:
    return ui.get(f"/registry/datasets/{dataset}").json()["master"]


# ---------------------------------------------------------------------------- suspect runs


def test_a_run_whose_step_broke_a_rule_shows_suspect_on_every_page(quality, reports):
    ui, ids = quality
    reports.append({"metrics": {"rows": 99, "ratio": 1.4}})
    last = ui.post("/pipeline/run", json={"name": "measure", "wait": True}).json()["run_id"]
    run = ui.get(f"/runs/{last}").json()
    assert run["status"] == "succeeded" and run["steps"][0]["suspect"]  # the store's status is unchanged
    fine = ids["measure"][0]

    page = ui.get(f"/ui/runs/{last}").text
    assert re.search(r'<span id="run-status" class="badge st-suspect" data-status="succeeded">suspect</span>', page)
    assert '<span class="badge st-suspect step-status">suspect</span>' in page
    assert "rows: 99 is above the maximum 50" in page
    # the summary the run page fetches again when a live run ends
    assert 'class="badge st-suspect" data-status="succeeded">suspect<' in ui.get(f"/ui/runs/{last}/steps").text
    assert ">succeeded</span>" in ui.get(f"/ui/runs/{fine}").text

    runs = ui.get("/ui/runs").text
    assert badge_of_run(runs, last) == "suspect" and badge_of_run(runs, fine) == "succeeded"
    assert [badge_of_run(runs, i) for i in ids["measure"]] == [
        "suspect" if n in SUSPECT else "succeeded" for n in range(len(MEASURES))
    ]
    for path in ("/ui/pipelines", "/ui/pipelines/measure"):
        card = ui.get(path).text.split('id="pipeline-measure"')[1].split("</section>")[0]
        assert f">#{last} suspect</a>" in card, path
        assert f"#{last}</a> suspect," in card, path
    assert badge_of_run(ui.get("/ui").text.split('id="recent"')[1], last) == "suspect"
    assert badge_of_run(ui.get("/ui/pipelines/measure").text.split('id="recent-runs"')[1], last) == "suspect"
    demo = ui.get("/ui/pipelines").text.split('id="pipeline-demo"')[1].split("</section>")[0]
    assert f">#{ids['demo']} succeeded</a>" in demo


# ---------------------------------------------------------------------------- charts


def _fit(pts: list[dict[str, str]]) -> tuple[float, float]:
    """The chart's y scale (pixel = a + b·value), from two of its points."""
    low = min(pts, key=lambda p: float(p["value"]))
    high = max(pts, key=lambda p: float(p["value"]))
    b = (float(high["_y"]) - float(low["_y"])) / (float(high["value"]) - float(low["value"]))
    return float(low["_y"]) - b * float(low["value"]), b


def _vertices(path: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"[ML](-?[\d.]+),(-?[\d.]+)", path)]


def test_the_metric_charts_draw_the_apis_values_and_the_band_each_was_checked_against(quality):
    ui, ids = quality
    page = ui.get("/ui/pipelines/measure").text
    for metric in ("rows", "ratio"):
        api = ui.get(f"/pipelines/measure/metrics?step=count&metric={metric}&limit=200").json()
        assert len(api) == len(MEASURES)
        fig = figure(page, f"metric-count-{metric}")
        pts = points(fig)
        assert [(int(p["run"]), float(p["value"]), p["suspect"] == "true") for p in pts] == [
            (v["run_id"], v["value"], v["suspect"]) for v in api
        ]
        assert all(p["_tag"] == ("rect" if p["suspect"] == "true" else "circle") for p in pts)  # suspects marked
        assert f'data-points="{len(api)}"' in fig
        titles = re.findall(r"<title>(run #\d+ [^<]*)</title>", fig)
        assert len(titles) == len(api) and all(f"{metric} = " in t for t in titles)
        assert re.search(r'<title id="metric-count-[a-z]+-t">[^<]+</title>\s*<desc id="metric-count-[a-z]+-d">', fig)
        assert fig.count('<tr><td><a href="/ui/runs/') == len(api)  # the table beside the picture, linked
        # the band: a value is inside the band drawn at its place iff it was not suspect
        a, b = _fit(pts)
        bands = re.findall(r'<path class="band" d="([^"]+)"', fig)
        assert bands
        corners = [v for band in bands for v in _vertices(band)]
        checked = 0
        for p in pts:
            if metric == "rows":
                ys = [y for _, y in corners]
            else:
                ys = [y for x, y in corners if abs(x - float(p["_x"])) < 0.01]
                if not ys:  # before the window was full: no check, no band
                    assert p["suspect"] == "false"
                    continue
            low, high = sorted((y - a) / b for y in (min(ys), max(ys)))
            inside = low - 1e-6 <= float(p["value"]) <= high + 1e-6
            assert inside == (p["suspect"] == "false"), (metric, p, low, high)
            checked += 1
        assert checked >= len(api) - 2
    rows = [int(p["run"]) for p in points(figure(page, "metric-count-rows")) if p["suspect"] == "true"]
    ratio = [int(p["run"]) for p in points(figure(page, "metric-count-ratio")) if p["suspect"] == "true"]
    assert rows == [ids["measure"][2]] and ratio == [ids["measure"][3]]


def test_a_pipeline_without_metrics_says_how_to_report_them(quality):
    ui, _ = quality
    page = ui.get("/ui/pipelines/demo").text
    assert 'data-chart="metric"' not in page and "mao-metrics.json" in page


def test_the_durations_charts_draw_every_finished_run_and_step(quality):
    ui, ids = quality
    runs = ui.get("/runs?limit=100").json()["runs"]
    fig = figure(ui.get("/ui/runs").text, "durations-runs")
    drawn = {(int(p["run"]), p["series"], float(p["seconds"]), p["status"]) for p in points(fig)}
    assert drawn == {(r["id"], r["pipeline"], r["duration"], _shown(r)) for r in runs if r["duration"] is not None}
    assert len(drawn) == len(runs)
    broken = [p for p in points(fig) if int(p["run"]) == ids["broken"]]
    assert broken[0]["_tag"] == "rect" and broken[0]["status"] == "failed"  # marked
    # filtered like the table (htmx swaps both)
    part = ui.get("/ui/runs?pipeline=measure", headers={"HX-Request": "true", "HX-Target": "runs-table"}).text
    assert {int(p["run"]) for p in points(figure(part, "durations-runs"))} == set(ids["measure"])
    # a pipeline's page: the whole run and each step
    mine = ui.get("/runs?pipeline=measure&limit=100").json()["runs"]
    fig = figure(ui.get("/ui/pipelines/measure").text, "durations-measure")
    expected = {(r["id"], "whole run", r["duration"]) for r in mine} | {
        (r["id"], f"step {s['name']}", s["duration"]) for r in mine for s in r["steps"]
    }
    assert {(int(p["run"]), p["series"], float(p["seconds"])) for p in points(fig)} == expected
    assert {p.get("step") for p in points(fig) if p["series"] != "whole run"} == {"count"}


def _shown(run: dict) -> str:
    return "suspect" if run["status"] == "succeeded" and any(s["suspect"] for s in run["steps"]) else run["status"]


def test_the_coverage_heatmap_has_a_cell_per_slot_and_instance(quality):
    ui, ids = quality
    grid = ui.get("/federation/coverage?pipeline=measure").json()
    expected = sorted(
        (row["slot"], i, row["cells"].get(i, "not_due")) for row in grid["slots"] for i in grid["instances"]
    )
    assert ("delivered",) in {(state,) for *_, state in expected}
    for path in ("/ui/pipelines/measure", "/ui/datasets/observations"):
        fig = figure(ui.get(path).text, "coverage-measure")
        cells = elements(fig, "rect", "cell")
        assert sorted((c["data-slot"], c["data-instance"], c["data-state"]) for c in cells) == expected, path
        assert all(f"<title>{c['data-slot']} · {c['data-instance']}: " in fig for c in cells)
        assert sorted(g["data-slot"] for g in elements(fig, "rect", "gap-mark")) == sorted(grid["gaps"])
        assert "<desc id=" in fig
    delivered = {row["slot"] for row in grid["slots"] if row["cells"].get("ui-node") == "delivered"}
    assert {ui.get(f"/runs/{i}").json()["slot"] for i in ids["measure"]} <= delivered


def test_the_history_graph_draws_every_commit_with_its_parents_and_marks_tallies(quality):
    ui, _ = quality
    for dataset in ("observations", "agreed"):
        page = ui.get(f"/ui/datasets/{dataset}").text
        fig = figure(page, f"history-{dataset}")
        nodes = [attributes(tag) for tag in re.findall(r'<g class="commit [^>]*>', fig)]
        shas = [n["data-sha"] for n in nodes]
        # the same commits as git's log of ground-truth (at most 20), each with its parents
        log = git("--git-dir", master(ui, dataset), "log", "--format=%H %P", "-n", "20", "ground-truth").splitlines()
        parents = {line.split()[0]: line.split()[1:] for line in log}
        assert sorted(shas) == sorted(parents)
        assert {n["data-sha"]: n["data-parents"].split() for n in nodes} == parents
        # no commit before one of its children; the list of commits below in the same order
        for row, sha in enumerate(shas):
            assert all(shas.index(p) > row for p in parents[sha] if p in shas)
        listed = re.findall(r'<li><div class="row"><code title="([0-9a-f]{40})">', page)
        assert listed == shas
        # every parent link is drawn once, to the commit or off the bottom when it is older
        edges = sorted((e["data-child"], e["data-parent"]) for e in elements(fig, "path", "edge"))
        assert edges == sorted((sha, p) for sha in shas for p in parents[sha])
        beyond = [e for e in elements(fig, "path", "edge") if "beyond" in e["class"]]
        assert all(e["data-parent"] not in shas for e in beyond)
        for n in nodes:
            subject = git("--git-dir", master(ui, dataset), "show", "-s", "--format=%B", n["data-sha"])
            kind = "tally" if "Mao-Vote-For:" in subject else "merge" if len(parents[n["data-sha"]]) > 1 else "commit"
            assert n["data-kind"] == kind
        kinds = [n["data-kind"] for n in nodes]
        if dataset == "observations":
            assert "merge" in kinds and "tally" not in kinds
        else:
            assert kinds.count("tally") == 1
            assert re.search(r'<rect class="node tally"', fig) and "tally (a vote's outcome)" in fig


def test_the_history_graph_escapes_what_commits_say(quality):
    from mao.ui.gitgraph import git_graph
    from mao.ui.routes import templates

    history = [{"sha": "a" * 40, "parents": [], "subject": "<script>x</script> & more", "trailers": {}}]
    html = templates.env.from_string('{% import "_charts.html" as c %}{{ c.graph(g) }}').render(
        g=git_graph("d", history)
    )
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt; &amp; more" in html


# ---------------------------------------------------------------------------- insights, overview, datasets


def test_insights_show_on_the_pipeline_and_run_pages(quality):
    ui, ids = quality
    published = [i for i in ui.get("/insights").json() if i["pipeline"] == "measure"]
    assert [(i["step"], i["run_id"], i["value"]) for i in published] == [
        ("count", ids["measure"][-1], {"rows": MEASURES[-1][0], "run": len(MEASURES)})
    ]
    newest = ids["measure"][-1]
    page = unescape(ui.get("/ui/pipelines/measure").text.split('id="insights"')[1].split("</section>")[0])
    assert f'<article class="insight" data-pipeline="measure" data-step="count" data-run="{newest}">' in page
    assert f'"rows": {MEASURES[-1][0]},' in page and f'href="/ui/runs/{newest}"' in page
    mine = unescape(ui.get(f"/ui/runs/{newest}").text.split('id="insights"')[1])
    assert "<strong>from this run</strong>" in mine and f'"rows": {MEASURES[-1][0]}' in mine
    earlier = ui.get(f"/ui/runs/{ids['measure'][0]}").text.split('id="insights"')[1]
    assert "from this run" not in earlier and f'href="/ui/runs/{newest}">run #{newest}</a>' in earlier
    assert "No insight published" in ui.get("/ui/pipelines/demo").text


def test_the_overview_shows_recent_runs_and_the_last_failures(quality):
    ui, ids = quality
    page = ui.get("/ui").text
    recent = page.split('id="recent"')[1].split("</section>")[0]
    assert [int(i) for i in re.findall(r'<tr data-run="(\d+)">', recent)] == [
        r["id"] for r in ui.get("/runs?limit=10").json()["runs"]
    ]
    failures = page.split('id="failures"')[1].split("</section>")[0]
    assert [int(i) for i in re.findall(r'<tr data-run="(\d+)">', failures)] == [ids["broken"]]
    assert badge_of_run(failures, ids["broken"]) == "failed" and "exit code 3" in failures
    assert 'id="health"' in page  # and still the instance's health


def test_the_datasets_list_shows_each_datasets_last_commit_and_date(quality):
    ui, _ = quality
    page = ui.get("/ui/datasets").text
    for dataset in ("observations", "agreed"):
        sha, date = git("--git-dir", master(ui, dataset), "log", "-1", "--format=%H %aI", "ground-truth").split()
        row = re.search(rf'<tr data-dataset="{dataset}">.*?</tr>', page, re.S).group(0)
        assert f'data-sha="{sha}"' in row and sha[:10] in row
        shown = re.search(r'class="last-date">([^<]+)<', row).group(1)
        assert shown == datetime.fromisoformat(date).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    waits = re.search(r'<tr data-dataset="waits">.*?</tr>', page, re.S).group(0)
    assert "none yet" in waits  # its one run failed: nothing delivered
