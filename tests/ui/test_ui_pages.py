"""The dashboard with FastAPI's TestClient: pages, login, CSRF, actions, the live run stream,
and nothing in it that would load from another host."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ui_kit import ORIGIN, TOKEN, define
from waiting import wait_for

import mao.ui

UI = Path(mao.ui.__file__).parent


def run_to_end(client, run_id: int, timeout: float = 30) -> dict:
    return wait_for(
        lambda: (r := client.get(f"/runs/{run_id}").json())["status"] not in ("pending", "running") and r,
        timeout,
        message=f"run {run_id} to end",
    )


def listed(page: str) -> list[int]:
    """The runs in a page's runs table, in order."""
    return [int(i) for i in re.findall(r'<tr data-run="(\d+)">', page)]


def sse_events(text: str) -> list[tuple[str, dict, str | None]]:
    """(event, data, id) of each Server-Sent Event in ``text``."""
    events = []
    for block in text.split("\n\n"):
        kind, data, ident = None, None, None
        for line in block.splitlines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line.startswith("id: "):
                ident = line[4:]
        if kind:
            events.append((kind, data, ident))
    return events


# ---------------------------------------------------------------------------- pages


def test_every_page_answers_200_with_what_it_shows(ui):
    run_id = ui.post("/ui/pipelines/demo/run", follow_redirects=False).headers["location"].rsplit("/", 1)[1]
    run_to_end(ui, int(run_id))
    pages = {
        "/ui": ["ui-node", "local", 'id="health"'],
        "/ui/pipelines": ["demo", "slow", "demo-step", "Run now", "succeeded"],
        "/ui/runs": [f"#{run_id}", "succeeded"],
        f"/ui/runs/{run_id}": ["hello from demo-step", "wrote out.txt", "demo-step", "succeeded"],
        "/ui/datasets": ["observations", "waits"],
        "/ui/datasets/observations": ["Mao-Run", f'Mao-Run</dt><dd class="wrap">{run_id}', "demo"],
        "/ui/tools": ["ok-tool", "img/gated"],
        "/ui/login": [],  # no token: straight to the dashboard
    }
    for path, expected in pages.items():
        response = ui.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in response.headers["content-security-policy"]
        for text in expected:
            assert text in response.text, (path, text)
    assert ui.get("/ui/login", follow_redirects=False).headers["location"] == "/ui"


def test_the_run_page_shows_digests_commits_and_provenance_of_each_step(ui):
    run_id = int(ui.post("/ui/pipelines/demo/run", follow_redirects=False).headers["location"].rsplit("/", 1)[1])
    run = run_to_end(ui, run_id)
    step = run["steps"][0]
    page = ui.get(f"/ui/runs/{run_id}").text
    assert step["output_commit"][:10] in page
    assert step["output_branch"] in page
    assert 'id="cancel"' not in page  # a finished run cannot be cancelled
    assert ui.get(f"/ui/runs/{run_id}/steps").text.count('data-step="demo-step"') == 1


@pytest.mark.etcd
def test_the_overview_of_a_federated_instance_shows_etcd_members_and_live_instances(make_ui, etcd_cluster, etcd_prefix):

    client = make_ui(registry_backend="etcd", etcd_endpoints=etcd_cluster.endpoints, registry_prefix=etcd_prefix)
    instance = client.app.state.instance
    heartbeat = instance.heartbeat()
    heartbeat.start()
    try:
        page = client.get("/ui").text
    finally:
        heartbeat.stop()
    assert "<dd>etcd</dd>" in page and "etcd members" in page
    for member in etcd_cluster.members:
        assert f"<td>{member.name}</td><td>started</td>" in page
        assert member.client_url in page
    assert re.search(
        r"ui-node <span class=\"muted\">\(this\)</span></td>\s*<td><span class=\"badge st-succeeded\">alive", page
    )


def test_a_vote_dataset_page_shows_its_ballots_outcome_and_coverage(ui):
    path = ui.post("/bare-repo/init", json={"name": "agreed"}).json()["path"]
    body = {"master": path, "nodes": [], "policy": "vote", "vote_deadline": 60}
    ui.post("/registry/datasets", json={"name": "agreed", "body": body}).raise_for_status()
    steps = [{"name": "cast", "tool": "ok-tool", "output_dataset": "agreed"}]
    ui.post("/pipeline/init", json={"name": "voter", "steps": steps}).raise_for_status()
    assert "No ballot yet." in ui.get("/ui/datasets/agreed").text
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    slot = hour.strftime("%Y-%m-%dT%H:%M:%SZ")  # in the page's 24 h coverage window
    run = ui.post("/pipeline/run", json={"name": "voter", "slot": slot, "wait": True}).json()
    assert run["status"] == "succeeded"
    commit = ui.get(f"/runs/{run['run_id']}").json()["steps"][0]["output_commit"]
    votes = ui.get("/datasets/agreed/votes").json()["slots"]
    assert [(v["slot"], v["pipeline"], v["step"]) for v in votes] == [(slot, "voter", "cast")]
    page = ui.get("/ui/datasets/agreed").text
    votes_part = page.split("<h2>Votes</h2>")[1].split("</section>")[0]
    assert f"<td>{slot}</td><td>voter / cast</td>" in votes_part
    assert f'<span class="badge vote-{votes[0]["outcome"]}">{votes[0]["outcome"]}</span>' in votes_part
    assert (
        f"ui-node: <code>{votes[0]['ballots']['ui-node']['output_id'][:10]}</code> → <code>{commit[:10]}</code>"
        in votes_part
    )
    coverage = page.split("Coverage (last 24 h)")[1]
    assert f'<tr><td>{slot}</td><td class="cell-delivered" title="delivered">' in coverage


def test_unknown_things_are_404_pages(ui):
    for path in (
        "/ui/runs/999",
        "/ui/datasets/nothing-here",
        "/ui/pipelines/nothing-here",
        "/ui/nowhere",
        "/ui/runs/999/events",
    ):
        response = ui.get(path)
        assert response.status_code == 404, path
    page = ui.get("/ui/runs/999")
    assert page.headers["content-type"].startswith("text/html")
    assert "run 999 does not exist" in page.text
    assert ui.post("/ui/pipelines/nothing/run").status_code == 404
    assert ui.post("/ui/runs/999/cancel").status_code == 404


def test_bad_filters_and_ids_are_400_pages(ui):
    assert ui.get("/ui/runs?status=bogus").status_code == 400
    assert ui.get("/ui/runs?pipeline=no%20spaces").status_code == 400
    assert ui.get("/ui/runs/abc").status_code == 400
    assert ui.get("/ui/runs/0").status_code == 404
    assert ui.get("/ui/pipelines/no%20spaces").status_code == 400


def test_runs_filters_and_paging(ui, monkeypatch):
    import mao.ui.routes as routes

    monkeypatch.setattr(routes, "PAGE_SIZE", 2)
    ids = []
    for _ in range(3):
        run_id = int(ui.post("/ui/pipelines/demo/run", follow_redirects=False).headers["location"].rsplit("/", 1)[1])
        run_to_end(ui, run_id)
        ids.append(run_id)
    first = ui.get("/ui/runs?pipeline=demo").text
    assert listed(first) == [ids[2], ids[1]]
    assert "page=2" in first
    second = ui.get("/ui/runs?pipeline=demo&page=2").text
    assert listed(second) == [ids[0]] and 'rel="next"' not in second
    assert "No runs match" in ui.get("/ui/runs?pipeline=slow").text
    assert "No runs match" in ui.get("/ui/runs?status=failed").text
    assert listed(ui.get("/ui/runs?status=succeeded&page=2").text) == [ids[0]]
    # htmx asks for the table only
    table = ui.get("/ui/runs?pipeline=demo", headers={"HX-Request": "true", "HX-Target": "runs-table"}).text
    assert table.startswith('<div id="runs-table">') and "<html" not in table


# ---------------------------------------------------------------------------- actions


def test_run_now_creates_a_run_and_leads_to_its_page(ui):
    response = ui.post("/ui/pipelines/demo/run", follow_redirects=False)
    assert response.status_code == 303
    run_id = int(response.headers["location"].rsplit("/", 1)[1])
    assert ui.get(f"/runs/{run_id}").json()["pipeline"] == "demo"
    assert run_to_end(ui, run_id)["status"] == "succeeded"
    assert ui.get("/runs?pipeline=demo").json()["runs"][0]["trigger"] == "api"


def test_schedule_and_unschedule(ui):
    response = ui.post("/ui/pipelines/demo/schedule", data={"cron": "0 12 * * *", "mode": "every"})
    assert response.status_code == 200  # followed the redirect to the pipelines page
    job = ui.get("/jobs").json()["jobs"]
    assert [(j["pipeline"], j["cron"]) for j in job] == [("demo", "0 12 * * *")]
    page = ui.get("/ui/pipelines").text
    assert "<code>0 12 * * *</code>" in page and "Unschedule" in page
    # htmx swaps the pipeline's card: the answer is that card only, with its next fire time
    card = ui.post("/ui/pipelines/demo/unschedule", headers={"HX-Request": "true"})
    assert card.status_code == 200
    assert card.text.lstrip().startswith('<section class="card pipeline" id="pipeline-demo">')
    assert "unscheduled" in card.text and "not scheduled" in card.text
    assert ui.get("/jobs").json()["jobs"] == []
    card = ui.post("/ui/pipelines/demo/schedule", data={"cron": "*/5 * * * *"}, headers={"HX-Request": "true"})
    assert "scheduled: */5 * * * *" in card.text
    next_fire = re.search(r'class="next-fire">([^<]+)<', card.text).group(1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:00Z", next_fire), next_fire


def test_bad_schedules_are_refused_in_the_card_which_keeps_its_form(ui):
    cases = [
        ({"cron": "not a cron"}, "invalid cron"),
        ({"cron": ""}, "give a cron schedule"),
        ({"cron": "0 * * * *", "mode": "sometimes"}, "mode"),
        ({"cron": "0 0 31 2 *"}, "never"),
    ]
    for form, why in cases:
        response = ui.post("/ui/pipelines/demo/schedule", data=form, headers={"HX-Request": "true"})
        assert response.status_code == 400, form
        card = response.text
        # htmx swaps the card: still the whole card, its actions there, the error inside it
        assert card.lstrip().startswith('<section class="card pipeline" id="pipeline-demo">'), card
        assert card.rstrip().endswith("</section>") and card.count("<section") == 1
        error = re.search(r'<p class="error schedule-error" id="schedule-error-demo" role="alert">([^<]+)</p>', card)
        assert error and why in error.group(1), card
        assert "Run now" in card and 'hx-post="/ui/pipelines/demo/schedule"' in card
        typed = re.search(r'<input name="cron"[^>]*value="([^"]*)"', card)
        assert typed and typed.group(1) == form["cron"], card
        assert 'aria-describedby="schedule-error-demo"' in card
    assert ui.get("/jobs").json()["jobs"] == []
    # without htmx: the pipelines page, with the error in that pipeline's card only
    page = ui.post("/ui/pipelines/demo/schedule", data={"cron": "61 * * * *"})
    assert page.status_code == 400 and "<html" in page.text
    demo = page.text.split('id="pipeline-demo"')[1].split("</section>")[0]
    slow = page.text.split('id="pipeline-slow"')[1].split("</section>")[0]
    assert "schedule-error" in demo and 'value="61 * * * *"' in demo
    assert "schedule-error" not in slow and 'value=""' in slow
    assert ui.get("/jobs").json()["jobs"] == []
    assert ui.post("/ui/pipelines/demo/unschedule").status_code == 404


def test_cancel_an_active_run(ui, gate):
    run_id = int(ui.post("/ui/pipelines/slow/run", follow_redirects=False).headers["location"].rsplit("/", 1)[1])
    wait_for(lambda: ui.get(f"/runs/{run_id}").json()["status"] == "running", 10, message="run to start")
    page = ui.get(f"/ui/runs/{run_id}").text
    assert 'id="cancel"' in page and 'data-active="true"' in page
    response = ui.post(f"/ui/runs/{run_id}/cancel", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/ui/runs/{run_id}"
    assert run_to_end(ui, run_id)["status"] == "cancelled"
    assert ui.post(f"/ui/runs/{run_id}/cancel").status_code == 409  # no longer active


def test_a_second_run_of_a_busy_pipeline_is_a_409_page(ui, gate):
    first = ui.post("/ui/pipelines/slow/run", follow_redirects=False)
    assert first.status_code == 303
    second = ui.post("/ui/pipelines/slow/run")
    assert second.status_code == 409
    assert "already has a run in progress" in second.text
    gate.set()


# ---------------------------------------------------------------------------- live stream


def test_events_replay_a_finished_run_and_end(ui):
    run_id = int(ui.post("/ui/pipelines/demo/run", follow_redirects=False).headers["location"].rsplit("/", 1)[1])
    run_to_end(ui, run_id)
    response = ui.get(f"/ui/runs/{run_id}/events")
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[0] == ("run", {"status": "succeeded"}, None)
    lines = [data["line"] for kind, data, _ in events if kind == "line"]
    tool = [line for line in lines if line in ("hello from demo-step", "wrote out.txt")]
    assert tool == ["hello from demo-step", "wrote out.txt"]
    assert events[-1][0] == "end" and events[-1][1]["status"] == "succeeded"
    # after=N (the page's last line) and Last-Event-ID (a reconnect) skip what was seen
    first_id = next(ident for kind, data, ident in events if kind == "line" and data["line"] == "hello from demo-step")
    rest = sse_events(ui.get(f"/ui/runs/{run_id}/events?after={first_id}").text)
    assert "hello from demo-step" not in [d["line"] for k, d, _ in rest if k == "line"]
    again = sse_events(ui.get(f"/ui/runs/{run_id}/events", headers={"Last-Event-ID": first_id}).text)
    assert [d["line"] for k, d, _ in again if k == "line"] == [d["line"] for k, d, _ in rest if k == "line"]


def test_events_stream_a_live_run_until_it_ends_without_losing_or_repeating_lines(ui, gate):
    run_id = int(ui.post("/ui/pipelines/slow/run", follow_redirects=False).headers["location"].rsplit("/", 1)[1])
    wait_for(lambda: ui.get(f"/runs/{run_id}").json()["status"] == "running", 10, message="run to start")
    release = threading.Timer(1.0, gate.set)
    release.start()
    started = time.monotonic()
    try:
        text = ui.get(f"/ui/runs/{run_id}/events").text
    finally:
        release.cancel()
    assert time.monotonic() - started >= 0.9  # the stream stayed open while the run was running
    events = sse_events(text)
    assert events[0] == ("run", {"status": "running"}, None)
    kinds = [kind for kind, _, _ in events]
    assert kinds[-1] == "end" and events[-1][1]["status"] == "succeeded"
    lines = [(ident, data["line"]) for kind, data, ident in events if kind == "line"]
    stored = ui.get(f"/runs/{run_id}/logs").json()["lines"]
    assert lines == [(str(line["id"]), line["line"]) for line in stored]
    tool = ["waiting for the gate", "hello from slow-step", "wrote out.txt"]
    assert [line for _, line in lines if line in tool] == tool
    steps = [data for kind, data, _ in events if kind == "step"]
    assert steps[-1]["name"] == "slow-step" and steps[-1]["status"] == "succeeded"


def test_a_stream_ends_after_its_time_and_resumes_from_the_last_line(ui, gate, monkeypatch):
    import mao.ui.live as live

    monkeypatch.setattr(live, "STREAM_S", 0.5)
    run_id = int(ui.post("/ui/pipelines/slow/run", follow_redirects=False).headers["location"].rsplit("/", 1)[1])
    wait_for(
        lambda: any(x["line"] == "waiting for the gate" for x in ui.get(f"/runs/{run_id}/logs").json()["lines"]),
        10,
        message="the tool's first line",
    )
    first = ui.get(f"/ui/runs/{run_id}/events").text
    assert first.rstrip().endswith("retry: 500")  # ended by time, not by the run
    seen = [(ident, data["line"]) for kind, data, ident in sse_events(first) if kind == "line"]
    assert "end" not in [kind for kind, _, _ in sse_events(first)]
    gate.set()
    run_to_end(ui, run_id)
    rest = sse_events(ui.get(f"/ui/runs/{run_id}/events", headers={"Last-Event-ID": seen[-1][0]}).text)
    assert rest[-1][0] == "end"
    resumed = [(ident, data["line"]) for kind, data, ident in rest if kind == "line"]
    stored = [(str(x["id"]), x["line"]) for x in ui.get(f"/runs/{run_id}/logs").json()["lines"]]
    assert seen + resumed == stored


# ---------------------------------------------------------------------------- auth and CSRF


@pytest.fixture
def locked(make_ui):
    client = make_ui(api_token=TOKEN)
    define(client, headers={"Authorization": f"Bearer {TOKEN}"})
    return client


def test_a_token_protected_instance_needs_a_login_for_every_page(locked):
    for path in (
        "/ui",
        "/ui/pipelines",
        "/ui/pipelines/demo",
        "/ui/runs",
        "/ui/runs/1",
        "/ui/datasets",
        "/ui/datasets/waits",
        "/ui/tools",
    ):
        response = locked.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/ui/login?next=")
    assert locked.get("/ui/runs/1/events", headers={"HX-Request": "true"}).status_code == 401
    assert locked.post("/ui/pipelines/demo/run").status_code == 401
    assert locked.get("/runs", headers={"Authorization": f"Bearer {TOKEN}"}).json()["runs"] == []
    # the bearer header of the API does not open the dashboard: its login does
    assert locked.get("/ui", headers={"Authorization": f"Bearer {TOKEN}"}, follow_redirects=False).status_code == 303


def test_login_sets_a_strict_httponly_cookie_without_the_token(locked):
    page = locked.get("/ui/pipelines")  # redirected to the login page
    assert page.status_code == 200 and 'name="token"' in page.text
    wrong = locked.post("/ui/login", data={"token": "not-it", "next": "/ui/pipelines"})
    assert wrong.status_code == 401 and "not this instance's token" in wrong.text
    assert "mao_ui" not in locked.cookies
    response = locked.post("/ui/login", data={"token": TOKEN, "next": "/ui/pipelines"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/ui/pipelines"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert TOKEN not in cookie
    pages = [locked.get(p) for p in ("/ui", "/ui/pipelines", "/ui/runs", "/ui/datasets", "/ui/tools", "/ui/login")]
    assert all(p.status_code == 200 for p in pages)
    assert all(TOKEN not in p.text for p in pages)
    assert "Log out" in pages[0].text
    run = locked.post("/ui/pipelines/demo/run", follow_redirects=False)
    assert run.status_code == 303 and run.headers["location"].startswith("/ui/runs/")
    locked.post("/ui/logout")
    assert locked.get("/ui", follow_redirects=False).status_code == 303


def test_login_redirects_only_within_the_dashboard(locked):
    for target in ("https://evil.example/", "//evil.example/ui", "/docs", "/ui\\@evil"):
        response = locked.post("/ui/login", data={"token": TOKEN, "next": target}, follow_redirects=False)
        assert response.headers["location"] == "/ui", target


def test_actions_from_another_site_are_refused(ui):
    foreign = {"Origin": "https://evil.example"}
    checks = [
        ("/ui/pipelines/demo/run", {}),
        ("/ui/pipelines/demo/schedule", {"cron": "0 * * * *"}),
        ("/ui/pipelines/demo/unschedule", {}),
        ("/ui/runs/1/cancel", {}),
        ("/ui/login", {"token": "x"}),
        ("/ui/logout", {}),
    ]
    for path, form in checks:
        assert ui.post(path, data=form, headers=foreign).status_code == 403, path
        assert ui.post(path, data=form, headers={"Origin": "null"}).status_code == 403, path
    # no Origin at all: a Referer of this server is accepted, none at all or another one is not
    bare = {"Origin": ""}
    assert ui.post("/ui/pipelines/demo/run", headers=bare).status_code == 403
    assert ui.post("/ui/pipelines/demo/run", headers={**bare, "Referer": "https://evil.example/x"}).status_code == 403
    assert ui.get("/runs").json()["runs"] == []
    assert ui.get("/jobs").json()["jobs"] == []
    ok = ui.post(
        "/ui/pipelines/demo/run", headers={**bare, "Referer": f"{ORIGIN}/ui/pipelines"}, follow_redirects=False
    )
    assert ok.status_code == 303


def test_csrf_is_checked_after_login_too(locked):
    locked.post("/ui/login", data={"token": TOKEN}).raise_for_status()
    assert locked.post("/ui/pipelines/demo/run", headers={"Origin": "https://evil.example"}).status_code == 403
    assert locked.get("/runs", headers={"Authorization": f"Bearer {TOKEN}"}).json()["runs"] == []


# ---------------------------------------------------------------------------- offline


def test_nothing_shipped_loads_from_another_host(ui):
    shipped = [p for p in (UI / "templates").iterdir()] + [p for p in (UI / "static").iterdir()]
    assert {p.name for p in shipped} >= {"htmx.min.js", "htmx.LICENSE.txt", "mao.css", "base.html", "run.js"}
    for path in shipped:
        text = path.read_text(encoding="utf-8")
        for needle in ("http://", "https://", "//cdn", "@import", "fonts.googleapis"):
            assert needle not in text, (path.name, needle)
    for path in ("/ui", "/ui/pipelines", "/ui/runs", "/ui/datasets", "/ui/tools"):
        html = ui.get(path).text
        for url in re.findall(r'(?:src|href|action)="([^"]*)"', html):
            assert url.startswith("/") and not url.startswith("//") or url.startswith("data:"), (path, url)
    assert ui.get("/ui/static/htmx.min.js").status_code == 200
    assert "Zero-Clause BSD" in ui.get("/ui/static/htmx.LICENSE.txt").text


def test_the_dashboard_stays_out_of_the_openapi_document(ui):
    paths = ui.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/ui")]
