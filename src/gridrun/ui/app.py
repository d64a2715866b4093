"""The dashboard's routes: pages, their JSON, live logs and the two actions.

Endpoints that read the store are plain functions, which Starlette runs in a thread
pool: SQLite calls block, and the event loop must stay free for the log streams.
Each request opens its own :class:`~gridrun.store.db.Store` (a connection belongs
to one thread).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from gridrun.errors import GridError, NotFoundError, StateError, UsageError
from gridrun.home import GridHome
from gridrun.store.db import Store
from gridrun.store.models import Experiment, Run, Status
from gridrun.ui import data
from gridrun.ui import sessions as ui_sessions
from gridrun.ui.charts import SeriesCache, points_per_line, run_metrics
from gridrun.ui.security import CSRF_FIELD, AccessMiddleware, Guard, csrf_of, require_csrf

HERE = Path(__file__).parent


def _store(request: Request) -> Store:
    home: GridHome = request.app.state.home
    return Store(home.ensure().db_path)


def _render(request: Request, template: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    env: Environment = request.app.state.jinja
    ctx.setdefault("csrf_field", CSRF_FIELD)
    ctx.setdefault("csrf", csrf_of(request))
    html = env.get_template(template).render(request=request, **ctx)
    return HTMLResponse(html, status_code)


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no '</script>' can close it early."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")


def _not_found(request: Request, exc: NotFoundError) -> HTMLResponse:
    return _render(request, "error.html", 404, message=str(exc))


def _find_run(store: Store, name: str) -> Run:
    return store.get_run(name)


def _find_experiment(store: Store, name: str) -> tuple[Run, Experiment]:
    exp = store.find_experiment(name)
    if exp is None:
        raise NotFoundError(f"No experiment named '{name}'.")
    return store.get_run_by_id(exp.run_id), exp


def _summary(store: Store, exps: list[Experiment]) -> dict[int, dict[str, dict[str, float]]]:
    from gridrun.store import metric_query as query

    return query.summary(store, [e.id for e in exps]) if exps else {}


# ------------------------------------------------------------------- pages
def index(request: Request) -> Response:
    store = _store(request)
    try:
        rows = [data.run_row(r) for r in store.list_runs()]
    finally:
        store.close()
    return _render(request, "index.html", runs=rows)


def _run_detail(request: Request) -> dict[str, Any] | Response:
    """The run named in the path, as its page and its CSV show it; a 404 page if none."""
    store = _store(request)
    try:
        run = _find_run(store, request.path_params["name"])
        return data.run_detail(run, _summary(store, run.experiments))
    except NotFoundError as exc:
        return _not_found(request, exc)
    finally:
        store.close()


def _compared_runs(request: Request, store: Store) -> list[Run]:
    """The runs named by ``?runs=a,b`` (at least one), each once, in the order given."""
    names = [n for n in dict.fromkeys(request.query_params.get("runs", "").split(",")) if n]
    if not names:
        raise UsageError("Name the runs to compare: /compare?runs=RUN1,RUN2.")
    return [store.get_run(n) for n in names]


def _compare_detail(request: Request) -> tuple[dict[str, Any], list[Experiment]]:
    store = _store(request)
    try:
        runs = _compared_runs(request, store)
        exps = [e for r in runs for e in r.experiments]
        return data.compare_detail(runs, _summary(store, exps)), exps
    finally:
        store.close()


def compare_page(request: Request) -> Response:
    """Experiments of several runs side by side: one table, overlaid charts."""
    detail, _exps = _compare_detail(request)
    return _render(request, "run.html", run=detail, initial=_script_json(detail))


def api_compare(request: Request) -> Response:
    return JSONResponse(_compare_detail(request)[0])


def api_compare_metrics(request: Request) -> Response:
    store = _store(request)
    try:
        exps = [e for r in _compared_runs(request, store) for e in r.experiments]
        raw_max = request.query_params.get("max_points", "")
        max_points = int(raw_max) if raw_max.isdigit() else points_per_line(len(exps))
        body = run_metrics(store, exps, request.app.state.series_cache, None, max_points or None)
    finally:
        store.close()
    return Response(body, media_type="application/octet-stream")


def run_page(request: Request) -> Response:
    detail = _run_detail(request)
    if isinstance(detail, Response):
        return detail
    return _render(request, "run.html", run=detail, initial=_script_json(detail))


def experiment_page(request: Request) -> Response:
    home: GridHome = request.app.state.home
    store = _store(request)
    try:
        run, exp = _find_experiment(store, request.path_params["name"])
        detail = data.experiment_detail(run, exp)
        summary = _summary(store, [exp]).get(exp.id, {})
    except NotFoundError as exc:
        return _not_found(request, exc)
    finally:
        store.close()
    artifacts = data.artifacts_of(home, exp)
    for a in artifacts:
        a["human_size"] = data.human_size(a["size"])
    metrics = [{"key": k, **data._clean(v)} for k, v in sorted(summary.items())]
    hint = None
    if exp.status == Status.FAILED:
        from gridrun.hints import experiment_hint

        hint = experiment_hint(home.experiment_dir(exp.name), exp.exit_code, exp.memory)
    return _render(
        request,
        "experiment.html",
        exp=detail,
        hint=hint,
        run_name=run.name,
        metrics=metrics,
        artifacts=artifacts,
        initial=_script_json(detail),
    )


def new_run_page(request: Request) -> Response:
    from gridrun.backends import BACKENDS
    from gridrun.config import load_machine_config

    home: GridHome = request.app.state.home
    form = {
        k: request.query_params.get(k, "") for k in ("localdir", "repo", "ref", "script", "args")
    }
    form["backend"] = load_machine_config(home.config_path).default_backend
    return _render(request, "new.html", form=form, backends=BACKENDS, datastores=_datastores(home))


def _datastores(home: GridHome) -> list[str]:
    from gridrun.datastores.layout import list_datastores

    try:
        return sorted({d.name for d in list_datastores(home) if d.status == "succeeded"})
    except GridError:
        return []


async def new_run_post(request: Request) -> Response:
    from gridrun.backends import BACKENDS
    from gridrun.ui import launch

    refused = await require_csrf(request)
    if refused is not None:
        return refused
    home: GridHome = request.app.state.home
    raw = await request.form()
    form = {k: str(raw.get(k, "")) for k in launch.FIELDS}
    ctx: dict[str, Any] = {
        "form": form,
        "backends": BACKENDS,
        "datastores": await run_in_threadpool(_datastores, home),
    }
    try:
        if raw.get("step") == "submit":
            name = await run_in_threadpool(launch.submit, form, home)
            return RedirectResponse(f"/runs/{name}", 303)
        ctx["preview"] = await run_in_threadpool(launch.preview, form, home)
    except GridError as exc:
        return _render(request, "new.html", 400, error=str(exc), **ctx)
    return _render(request, "new.html", **ctx)


# --------------------------------------------------------------------- API
def api_runs(request: Request) -> Response:
    store = _store(request)
    try:
        return JSONResponse([data.run_row(r) for r in store.list_runs()])
    finally:
        store.close()


def api_run(request: Request) -> Response:
    store = _store(request)
    try:
        run = _find_run(store, request.path_params["name"])
        return JSONResponse(data.run_detail(run, _summary(store, run.experiments)))
    except NotFoundError as exc:
        return JSONResponse({"error": str(exc)}, 404)
    finally:
        store.close()


def api_run_metrics(request: Request) -> Response:
    store = _store(request)
    try:
        run = _find_run(store, request.path_params["name"])
        only = request.query_params.get("experiments")
        exps = run.experiments
        if only:
            names = set(only.split(","))
            exps = [e for e in exps if e.name in names]
        keys = request.query_params.get("keys")
        raw_max = request.query_params.get("max_points", "")
        max_points = int(raw_max) if raw_max.isdigit() else points_per_line(len(exps))
        body = run_metrics(
            store,
            exps,
            request.app.state.series_cache,
            keys.split(",") if keys else None,
            max_points or None,
        )
    except NotFoundError as exc:
        return JSONResponse({"error": str(exc)}, 404)
    finally:
        store.close()
    return Response(body, media_type="application/octet-stream")


def run_csv(request: Request) -> Response:
    """The experiments table as CSV: parameters, then each metric's last, min and max."""
    detail = _run_detail(request)
    if isinstance(detail, Response):
        return detail
    buf = io.StringIO()
    w = csv.writer(buf)
    keys = [m["key"] for m in detail["metrics"]]
    w.writerow(
        [
            "experiment",
            "status",
            *detail["params"],
            *[f"{k}_{s}" for k in keys for s in ("last", "min", "max")],
        ]
    )
    for e in detail["experiments"]:
        m = e["metrics"]
        w.writerow(
            [
                e["name"],
                e["status"],
                *[e["params"].get(p, "") for p in detail["params"]],
                *[_csv_num(m.get(k, {}).get(s)) for k in keys for s in ("last", "min", "max")],
            ]
        )
    return Response(
        buf.getvalue(),
        media_type="text/csv",
        headers={"content-disposition": f'attachment; filename="{detail["name"]}.csv"'},
    )


def _csv_num(v: float | None) -> str:
    return "" if v is None else repr(v)


def api_experiment(request: Request) -> Response:
    store = _store(request)
    try:
        run, exp = _find_experiment(store, request.path_params["name"])
        detail = data.experiment_detail(run, exp)
        detail["metrics"] = {
            k: data._clean(v) for k, v in _summary(store, [exp]).get(exp.id, {}).items()
        }
    except NotFoundError as exc:
        return JSONResponse({"error": str(exc)}, 404)
    finally:
        store.close()
    home: GridHome = request.app.state.home
    detail["artifacts"] = [
        {**a, "human_size": data.human_size(a["size"])} for a in data.artifacts_of(home, exp)
    ]
    return JSONResponse(detail)


def api_sweep_count(request: Request) -> Response:
    from gridrun.ui import launch

    q = request.query_params
    answer = launch.count(q.get("args", ""), q.get("strategy", ""), q.get("num_trials", ""))
    return JSONResponse(answer, 400 if answer["error"] else 200)


async def experiment_logs(request: Request) -> Response:
    """Server-sent events of the experiment's [build], [stdout] and [stderr] lines."""
    from gridrun.agent.builder import build_log_path
    from gridrun.ui.logstream import stream_logs

    home: GridHome = request.app.state.home
    name = request.path_params["name"]

    def lookup() -> tuple[Run, Experiment]:
        store = _store(request)
        try:
            return _find_experiment(store, name)
        finally:
            store.close()

    try:
        run, exp = await run_in_threadpool(lookup)
    except NotFoundError as exc:
        return JSONResponse({"error": str(exc)}, 404)

    async def finished() -> bool:
        _run, e = await run_in_threadpool(lookup)
        return e.status.finished

    sources = {
        "build": build_log_path(home, run.name),
        "output": home.experiment(exp.name).output_log,
    }
    return StreamingResponse(
        stream_logs(
            sources, finished, request.headers.get("last-event-id"), request.is_disconnected
        ),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


def artifact_download(request: Request) -> Response:
    home: GridHome = request.app.state.home
    store = _store(request)
    try:
        _run, exp = _find_experiment(store, request.path_params["name"])
    except NotFoundError as exc:
        return _not_found(request, exc)
    finally:
        store.close()
    path = data.artifact_path(home, exp, _raw_artifact_path(request))
    if path is None:
        return _not_found(request, NotFoundError("No such artifact."))
    return FileResponse(path, filename=data.display_name(path.name))


def _raw_artifact_path(request: Request) -> bytes | str:
    """The artifact's name as the bytes the link carried: the server decodes a path as
    UTF-8, which loses a name that is not (``bad\\xffname.txt``)."""
    raw = request.scope.get("raw_path")
    marker = b"/artifacts/"
    if isinstance(raw, bytes) and marker in raw:
        return unquote_to_bytes(raw.split(b"?", 1)[0].split(marker, 1)[1])
    return str(request.path_params["path"])


# ----------------------------------------------------------------- actions
async def stop(request: Request) -> Response:
    """POST /runs/<name>/stop or /experiments/<name>/stop: as ``grid stop``."""
    from gridrun.agent.stopping import stop_experiments, stop_run
    from gridrun.config import load_machine_config

    refused = await require_csrf(request)
    if refused is not None:
        return refused
    home: GridHome = request.app.state.home
    kind = request.path_params["kind"]
    name = request.path_params["name"]
    if kind not in ("runs", "experiments"):
        return JSONResponse({"error": "Not found."}, 404)

    def do_stop() -> list[str]:
        store = _store(request)
        try:
            grace = load_machine_config(home.config_path).stop_grace_seconds
            if kind == "runs":
                run = store.get_run(name, with_experiments=False)
                return stop_run(home, store, run.id, grace)
            _run, exp = _find_experiment(store, name)
            return stop_experiments(home, store, [exp], grace)
        finally:
            store.close()

    try:
        stopped = await run_in_threadpool(do_stop)
    except NotFoundError as exc:
        return JSONResponse({"error": str(exc)}, 404)
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"stopped": stopped})
    return RedirectResponse(f"/{kind}/{name}", 303)


@contextlib.asynccontextmanager
async def _warm_up(app: Starlette) -> AsyncIterator[None]:
    """Before the URL is printed: start the thread pool (anyio imports its machinery on
    first use) and open the store once, so the first page a user opens does not pay
    ~100 ms for them. Nothing is read or kept."""

    def open_store() -> None:
        home: GridHome = app.state.home
        try:
            Store(home.ensure().db_path).close()
        except (GridError, OSError, sqlite3.Error):
            pass  # the pages report it, as they would have without a warm-up

    await run_in_threadpool(open_store)
    on_ready = getattr(app.state, "on_ready", None)
    if on_ready is not None:
        on_ready()
    yield


def _error_answer(request: Request, message: str, status: int) -> Response:
    """One line, as JSON for the API and as a page elsewhere: never a bare 500."""
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status)
    return _render(request, "error.html", status, message=message)


async def _grid_error(request: Request, exc: Exception) -> Response:
    status = 404 if isinstance(exc, NotFoundError) else 503 if isinstance(exc, StateError) else 400
    return _error_answer(request, str(exc), status)


async def _unavailable(request: Request, exc: Exception) -> Response:
    """The disk or the database failed under a request (full, read-only, locked)."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return _error_answer(request, f"GRID_HOME cannot be read right now ({reason}).", 503)


def create_app(home: GridHome, token: str, *, loopback_only: bool = True) -> Starlette:
    """The dashboard for one GRID_HOME, open to holders of ``token`` alone.

    ``loopback_only`` (bound to a loopback address) also refuses any Host header that
    does not name loopback, against DNS rebinding."""
    routes = [
        Route("/", index),
        Route("/runs/new", new_run_page, methods=["GET"]),
        Route("/runs/new", new_run_post, methods=["POST"]),
        Route("/runs/{name}", run_page),
        Route("/compare", compare_page),
        Route("/runs/{name}/export.csv", run_csv),
        Route("/experiments/{name}", experiment_page),
        Route("/experiments/{name}/artifacts/{path:path}", artifact_download),
        Route("/{kind:str}/{name}/stop", stop, methods=["POST"]),
        Route("/experiments/{name}/session", ui_sessions.open_session, methods=["POST"]),
        Route("/sessions", ui_sessions.sessions_page),
        Route("/sessions/{name}/{path:path}", ui_sessions.proxy_http, methods=ui_sessions.METHODS),
        WebSocketRoute("/sessions/{name}/{path:path}", ui_sessions.proxy_ws),
        Route("/api/runs", api_runs),
        Route("/api/runs/{name}", api_run),
        Route("/api/runs/{name}/metrics", api_run_metrics),
        Route("/api/compare", api_compare),
        Route("/api/compare/metrics", api_compare_metrics),
        Route("/api/experiments/{name}", api_experiment),
        Route("/api/experiments/{name}/logs", experiment_logs),
        Route("/api/sweep/count", api_sweep_count),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    handlers = {GridError: _grid_error, OSError: _unavailable, sqlite3.Error: _unavailable}
    app = Starlette(routes=routes, lifespan=_warm_up, exception_handlers=handlers)  # type: ignore[arg-type]
    guard = Guard(token, loopback_only=loopback_only)
    app.state.home = home
    app.state.guard = guard
    app.state.series_cache = SeriesCache()
    jinja = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape())
    jinja.filters["num"] = data.number
    app.state.jinja = jinja
    app.add_middleware(AccessMiddleware, guard=guard)
    return app
