"""The dashboard's pages and actions, under ``/ui``.

Server-rendered (Jinja2) from the same functions the API's routes use, so a page shows
what the API answers. Actions are HTML forms (htmx swaps a pipeline's card in place);
each refuses a request from another site. None of this is in the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from mao.coverage.grid import SYMBOLS
from mao.errors import InvalidInput, MAOError, NotFound, RateLimited
from mao.instance import Instance
from mao.models import PipelineRunBody
from mao.status import RunStatus, parse_status
from mao.tokens import API_TOKEN_FILE
from mao.ui import views
from mao.ui.auth import (
    COOKIE,
    LoginRequired,
    Sessions,
    check_same_origin,
    close_session,
    expected_token,
    logged_in,
    open_session,
    require_login,
    safe_next,
)
from mao.ui.gitgraph import git_graph, topo_order
from mao.ui.heatmap import heatmap
from mao.ui.live import PAGE_LINES, RunStream, log_page
from mao.validation import check_name
from mao.web.auth import verify_token

HERE = Path(__file__).parent
PAGE_SIZE = 25
HISTORY = 20
RECENT = 10
FAILURES = 5
MAX_FORM_BYTES = 8192
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
)

templates = Jinja2Templates(directory=str(HERE / "templates"))


def _when(value: str | None) -> str:
    """An ISO time as ``2026-11-28 12:00:05Z`` (UTC)."""
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


templates.env.filters["when"] = _when
templates.env.filters["seconds"] = _seconds
templates.env.filters["short"] = lambda sha: (sha or "")[:10] or "—"
templates.env.globals["ACTIVE"] = {s.value for s in RunStatus if s.active}
templates.env.globals["STATUSES"] = [s.value for s in RunStatus]
templates.env.globals["SYMBOLS"] = SYMBOLS


class PageRoute(APIRoute):
    """A dashboard route: errors become HTML pages with their status, a missing login a
    redirect to the login page, and every answer carries the dashboard's CSP."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginRequired as exc:
                if request.method != "GET" or request.headers.get("hx-request"):
                    response = _error(request, 401, "log in first: this dashboard needs the API token")
                else:
                    response = RedirectResponse("/ui/login?" + urlencode({"next": exc.next_url}), status_code=303)
            except MAOError as exc:
                response = _error(request, exc.status_code, exc.message)
            except (RequestValidationError, ValidationError) as exc:
                response = _error(request, 400, _invalid(exc))
            response.headers.setdefault("Content-Security-Policy", CSP)
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "same-origin")
            return response

        return handle


def _invalid(exc: RequestValidationError | ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "path", "query"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)
pages = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False, dependencies=[Depends(require_login)])


def install_ui(app: FastAPI) -> None:
    """Mount the dashboard on ``app``: its pages, actions, static files and the store of its logins."""
    app.state.ui_sessions = Sessions()
    app.include_router(router)
    app.include_router(pages)
    app.mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="ui-static")


def _instance(request: Request) -> Instance:
    instance: Instance = request.app.state.instance
    return instance


def _page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    instance = _instance(request)
    context.setdefault("section", template.split(".")[0])
    return templates.TemplateResponse(
        request,
        template,
        {
            "instance_name": instance.name,
            "version": instance.version,
            "auth": expected_token(request) is not None,
            "logged_in": logged_in(request),
            **context,
        },
        status_code=status_code,
    )


def _error(request: Request, status_code: int, message: str) -> HTMLResponse:
    if request.headers.get("hx-request"):
        return templates.TemplateResponse(
            request, "_error.html", {"message": message, "status_code": status_code}, status_code=status_code
        )
    return _page(request, "error.html", status_code=status_code, message=message, section="")


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the dashboard's forms are small)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise InvalidInput("form too large")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput("malformed form") from exc
    return {key: values[0] for key, values in fields.items()}


# ---------------------------------------------------------------------------- login


def _login_page(request: Request, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The login page; it names the file the instance keeps its token in, when it made one."""
    path = _instance(request).settings.data_dir / API_TOKEN_FILE
    token_file = str(path) if path.is_file() else None
    return _page(request, "login.html", status_code, section="login", token_file=token_file, **context)


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    if expected_token(request) is None or logged_in(request):
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, next=safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    check_same_origin(request)
    form = await _form(request)
    target = safe_next(form.get("next"))
    token = expected_token(request)
    if token is None:
        return RedirectResponse(target, status_code=303)
    try:
        right = verify_token(request, form.get("token", "").strip(), token)
    except RateLimited as exc:
        wait = exc.details["retry_after"]
        page = _login_page(request, status_code=429, next=target, wait=wait)
        page.headers.update(exc.headers)
        return page
    if not right:
        return _login_page(request, status_code=401, next=target, failed=True)
    close_session(request)  # a login over a live one replaces it
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        open_session(request),
        max_age=_instance(request).settings.ui_session_max_age,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/ui",
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    check_same_origin(request)
    close_session(request)  # the cookie's id is refused from now on, wherever a copy of it went
    response = RedirectResponse("/ui/login" if expected_token(request) else "/ui", status_code=303)
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


# ---------------------------------------------------------------------------- overview


def _section(read: Callable[[], Any]) -> tuple[Any, str | None]:
    """What ``read`` returns, or the error a page shows in its place."""
    try:
        return read(), None
    except MAOError as exc:
        return None, exc.message


@pages.get("")
def overview(request: Request) -> Response:
    instance = _instance(request)
    health = instance.operations.health()
    federation, federation_error = _section(lambda: instance.operations.federation_status())
    ttl = instance.settings.instance_ttl
    for record in (federation or {}).get("instances", []):
        record["alive"] = float(record.get("age", 0)) <= ttl
    return _page(
        request,
        "overview.html",
        health=health,
        federation=federation,
        federation_error=federation_error,
        backend=instance.settings.registry_backend,
        ttl=ttl,
        recent=views.recent_runs(instance, RECENT),
        failures=views.last_failures(instance, FAILURES),
    )


# ---------------------------------------------------------------------------- pipelines


def _described(instance: Instance) -> list[dict[str, Any]]:
    """This instance's pipelines as ``GET /pipeline`` lists them."""
    return [instance.pipelines.describe(row) for row in instance.store.list_pipelines()]


def _pipeline_view(instance: Instance, described: dict[str, Any]) -> dict[str, Any]:
    last = instance.store.list_runs(described["name"], None, 1)
    return {**described, "last_run": views.run_view(last[0]) if last else None}


@pages.get("/pipelines")
def pipelines(request: Request) -> Response:
    instance = _instance(request)
    rows = [_pipeline_view(instance, p) for p in _described(instance)]
    return _page(request, "pipelines.html", pipelines=rows)


@pages.get("/pipelines/{name}")
def pipeline_page(request: Request, name: str) -> Response:
    """One pipeline: its card, its control metrics and run durations as charts, its
    coverage, its insights and its last runs."""
    instance = _instance(request)
    check_name(name, "pipeline name")
    view = _pipeline_view(instance, instance.pipelines.describe(instance.store.get_pipeline(name)))
    runs = [views.run_view(r) for r in instance.store.list_runs(name, None, views.CHART_RUNS)]
    grid, grid_error = views.coverage_grid(instance, name)
    insights, insights_error = views.insights_of(instance, name)
    return _page(
        request,
        "pipeline.html",
        section="pipelines",
        p=view,
        runs=runs[:RECENT],
        metric_charts=views.metric_charts(instance, view, runs),
        durations=views.pipeline_durations_chart(name, runs),
        grid=grid,
        grid_map=heatmap(name, grid) if grid else None,
        grid_error=grid_error,
        insights=insights,
        insights_error=insights_error,
    )


def _card(request: Request, name: str, message: str | None = None, status_code: int = 200, **form: Any) -> Response:
    """The pipeline's card after an action: the card alone for htmx (swapped in place), else
    the pipelines page; ``form`` keeps what was typed when the action was refused."""
    instance = _instance(request)
    view = _pipeline_view(instance, instance.pipelines.describe(instance.store.get_pipeline(name)))
    context = {"p": view, "message": message, "form": form}
    if request.headers.get("hx-request"):
        return templates.TemplateResponse(request, "_pipeline.html", context, status_code=status_code)
    if status_code >= 400:
        rows = [_pipeline_view(instance, p) for p in _described(instance)]
        return _page(request, "pipelines.html", status_code=status_code, pipelines=rows, forms={name: form})
    return RedirectResponse("/ui/pipelines", status_code=303)


@pages.post("/pipelines/{name}/run")
def run_now(request: Request, name: str) -> Response:
    check_same_origin(request)
    started = _instance(request).operations.run_pipeline(PipelineRunBody(name=name))
    return RedirectResponse(f"/ui/runs/{started['run_id']}", status_code=303)


@pages.post("/pipelines/{name}/schedule")
async def schedule(request: Request, name: str) -> Response:
    check_same_origin(request)
    form = await _form(request)
    cron = form.get("cron", "").strip()
    mode = form.get("mode") or "every"
    check_name(name, "pipeline name")
    try:
        if not cron:
            raise InvalidInput("give a cron schedule, e.g. '0 * * * *' (hourly)")
        body = PipelineRunBody.model_validate({"name": name, "cron": cron, "mode": mode})
        job = _instance(request).operations.run_pipeline(body)["job"]
    except NotFound:
        raise
    except MAOError as exc:
        return _card(request, name, status_code=exc.status_code, error=exc.message, cron=cron, mode=mode)
    except ValidationError as exc:
        return _card(request, name, status_code=400, error=_invalid(exc), cron=cron, mode=mode)
    return _card(request, name, f"scheduled: {job['cron']}")


@pages.post("/pipelines/{name}/unschedule")
def unschedule(request: Request, name: str) -> Response:
    check_same_origin(request)
    check_name(name, "pipeline name")
    _instance(request).scheduler.unschedule(name)
    return _card(request, name, "unscheduled")


# ---------------------------------------------------------------------------- runs


@pages.get("/runs")
def runs(request: Request, pipeline: str = "", status: str = "", page: int = 1) -> Response:
    instance = _instance(request)
    if pipeline:
        check_name(pipeline, "pipeline name")
    wanted = parse_status(status) if status else None
    page = max(1, min(page, 10**6))
    rows = instance.store.list_runs(pipeline or None, wanted, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
    charted = [views.run_view(r) for r in instance.store.list_runs(pipeline or None, wanted, views.CHART_RUNS)]
    context: dict[str, Any] = {
        "runs": [views.run_view(r) for r in rows[:PAGE_SIZE]],
        "durations": views.runs_durations_chart(charted, pipeline, status),
        "pipeline": pipeline,
        "status": status,
        "page": page,
        "more": len(rows) > PAGE_SIZE,
        "pipelines": [p.name for p in instance.store.list_pipelines()],
        "query": lambda **changes: urlencode(
            {k: v for k, v in {"pipeline": pipeline, "status": status, "page": page, **changes}.items() if v}
        ),
    }
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "runs-table":
        return templates.TemplateResponse(request, "_runs_table.html", context)
    return _page(request, "runs.html", **context)


def _run_context(instance: Instance, run_id: int) -> dict[str, Any]:
    run = views.run_view(instance.store.get_run(run_id))
    return {"run": run, "active": RunStatus(run["status"]).active}


@pages.get("/runs/{run_id}")
def run_page(request: Request, run_id: int, before: int | None = Query(default=None, ge=1, le=2**63 - 1)) -> Response:
    """The run with its last log lines (those before the line ``before``: an earlier part, not live)."""
    instance = _instance(request)
    context = _run_context(instance, _run_id(run_id))
    if before is not None:
        context["active"] = False  # the page shows an earlier part of the log: no live lines after it
    page = log_page(instance, run_id, before)
    insights, insights_error = views.insights_of(instance, context["run"]["pipeline"])
    return _page(
        request,
        "run.html",
        section="runs",
        page=page,
        page_lines=PAGE_LINES,
        insights=insights,
        insights_error=insights_error,
        **context,
    )


@pages.get("/runs/{run_id}/log")
def run_log(request: Request, run_id: int, before: int = Query(ge=1, le=2**63 - 1)) -> Response:
    """The log lines before the line ``before``, for the run page's link to earlier lines."""
    instance = _instance(request)
    instance.store.get_run(_run_id(run_id))
    page = log_page(instance, run_id, before)
    return templates.TemplateResponse(request, "_log_lines.html", {"page": page})


@pages.get("/runs/{run_id}/steps")
def run_steps(request: Request, run_id: int) -> Response:
    """The run's summary and steps table (the run page refreshes it when the run ends)."""
    context = _run_context(_instance(request), _run_id(run_id))
    return templates.TemplateResponse(request, "_run_summary.html", context)


@pages.post("/runs/{run_id}/cancel")
def cancel(request: Request, run_id: int) -> Response:
    check_same_origin(request)
    _instance(request).runner.cancel(_run_id(run_id))
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


@pages.get("/runs/{run_id}/events")
async def run_events(request: Request, run_id: int, after: int = 0) -> Response:
    """Server-Sent Events: ``run`` and ``step`` statuses, ``line`` log lines (id = the line's
    id), and ``end`` when the run has ended; then the stream closes."""
    instance = _instance(request)
    last = request.headers.get("last-event-id", "")
    if last.isdigit():
        after = max(after, int(last))
    stream = RunStream(instance, _run_id(run_id), max(0, after))
    try:
        instance.store.get_run(run_id)
    except BaseException:
        stream.close()
        raise
    return StreamingResponse(
        stream.events(request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _run_id(run_id: int) -> int:
    if not 1 <= run_id < 2**63:
        raise NotFound(f"run {run_id} does not exist")
    return run_id


# ---------------------------------------------------------------------------- datasets and tools


@pages.get("/datasets")
def datasets(request: Request) -> Response:
    instance = _instance(request)
    listed = instance.catalog.datasets()
    return _page(request, "datasets.html", datasets=listed, heads=views.dataset_heads(instance, listed))


@pages.get("/datasets/{name}")
def dataset_page(request: Request, name: str) -> Response:
    instance = _instance(request)
    check_name(name, "dataset name")
    dataset = {"name": name, **instance.catalog.get_dataset(name)}
    history, history_error = _section(lambda: instance.datasets.log(name, dataset["master"], limit=HISTORY))
    history = topo_order(history) if history else history
    graph = git_graph(name, history) if history else None
    untrusted = instance.untrusted_ground_truth().get(name)
    votes, votes_error = None, None
    if dataset.get("policy") == "vote":
        votes, votes_error = _section(lambda: instance.tallier.votes(name, None))
    writers = sorted({p.name for p in instance.store.list_pipelines() for s in p.steps if s.output_dataset == name})
    grids = []
    for pipeline in writers:
        grid, grid_error = views.coverage_grid(instance, pipeline)
        grids.append(
            {"pipeline": pipeline, "grid": grid, "map": heatmap(pipeline, grid) if grid else None, "error": grid_error}
        )
    return _page(
        request,
        "dataset.html",
        section="datasets",
        name=name,
        dataset=dataset,
        history=history,
        history_error=history_error,
        graph=graph,
        votes=votes,
        votes_error=votes_error,
        untrusted=untrusted,
        grids=grids,
    )


@pages.get("/tools")
def tools(request: Request) -> Response:
    return _page(request, "tools.html", tools=_instance(request).catalog.tools())
