"""The page's routes: its static files, and the two JSON views only the page needs
(``/api/queue`` and ``/api/models``). The history routes live with the history."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from aiohttp import web

from paintwire.protocol import Capabilities, JobPhase

from ..access import AccessPolicy
from ..jobs import Job

STATIC = Path(__file__).resolve().parent / "static"
# The page's files hold no secret: they load without a token (the page then asks
# for one), under the same origin and Host rules as every other route.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    # Everything the page uses is its own: no CDN, no inline script, no framing.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; connect-src 'self' ws: wss:; style-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


@dataclass
class WebViews:
    """What the page's JSON views read: injected, so this module never sees the server."""

    access: AccessPolicy
    capabilities: Callable[[], Capabilities]
    open_jobs: Callable[[], list[Job]]

    async def index(self, request: web.Request) -> web.StreamResponse:
        self.access.check_origin(request)
        return web.FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    async def queue(self, request: web.Request) -> web.Response:
        """Running and queued jobs, in the order they run. Anyone with the token sees
        them all; only a job's own connection can cancel it (the websocket rule)."""
        self.access.check_request(request)
        return web.json_response({"jobs": [queue_entry(job, i) for i, job in enumerate(self.open_jobs())]})

    async def models(self, request: web.Request) -> web.Response:
        """Every model of every engine with its kind and, when it cannot be used, why."""
        self.access.check_request(request)
        caps = self.capabilities()
        return web.json_response(
            {
                "engines": [{"name": e.name, "label": e.label, "notice": e.notice, "device": e.device.summary() if e.device else ""} for e in caps.engines],
                "models": [{"name": m.name, "engine": m.engine, "kind": m.kind, "label": m.label or m.name, "problem": m.problem or "",
                            "family": m.family, "memory": m.memory} for m in caps.models],
            }
        )


def queue_entry(job: Job, index: int) -> dict[str, object]:
    request = job.checked.request
    running = job.state is JobPhase.RUNNING
    return {
        "id": job.id,
        "client": getattr(job.owner, "client_name", None) or "",
        "engine": request.engine,
        "mode": request.mode,
        "model": request.model or "",
        "state": "running" if running else "queued",
        "position": 0 if running else max(job.position, 0),
        "fraction": round(job.fraction, 4) if running else 0.0,
    }


@dataclass
class _StaticFiles:
    access: AccessPolicy

    async def serve(self, request: web.Request) -> web.StreamResponse:
        self.access.check_origin(request)
        name = request.match_info["name"]
        path = (STATIC / name).resolve()
        # Only files under static/: a name with .. or a link out is not found.
        if STATIC not in path.parents or not path.is_file():
            raise web.HTTPNotFound(text=f"No page file {name!r}.\n")
        return web.FileResponse(path, headers=PAGE_HEADERS)


def add_web_routes(app: web.Application, views: WebViews) -> None:
    app.router.add_get("/", views.index)
    app.router.add_get("/api/queue", views.queue)
    app.router.add_get("/api/models", views.models)
    app.router.add_get("/static/{name:.+}", _StaticFiles(views.access).serve)
