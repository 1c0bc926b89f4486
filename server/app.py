"""The aiohttp application: the websocket endpoint and the small HTTP endpoints."""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import logging
import secrets

from aiohttp import web

from paintwire.protocol.images import ABSOLUTE_MAX_SIDE
from paintwire.protocol import PROTOCOL_VERSION, Capabilities, EngineInfo, Limits, ModeSpec, __version__

from .config import ServerConfig
from .engines.base import Engine
from .engines.registry import build_engines
from .scheduler import Scheduler
from .session import Session

log = logging.getLogger(__name__)


class PaintwireServer:
    """Everything the routes share: the configuration, engines, capabilities and scheduler."""

    def __init__(self, config: ServerConfig, engines: list[Engine] | None = None) -> None:
        if not config.is_loopback and not config.token:
            # Never listen beyond this machine without a token.
            config.token = secrets.token_urlsafe(24)
            self.generated_token = True
        else:
            self.generated_token = False
        self.config = config
        self.engines = engines if engines is not None else build_engines(config)
        self.capabilities = Capabilities(
            engines=tuple(EngineInfo(e.name, e.label, _capped_modes(e.modes(), config), e.device()) for e in self.engines),
            models=tuple(m for e in self.engines for m in e.models()),
            limits=Limits(
                max_message_bytes=config.max_message_bytes,
                max_pixels=config.max_pixels,
                max_side=ABSOLUTE_MAX_SIDE,
                max_queued_per_client=config.max_queued_per_client,
            ),
        )
        self.scheduler: Scheduler | None = None
        self.sessions: set[Session] = set()

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_get("/ws", self.websocket)
        app.router.add_get("/health", self.health)
        app.router.add_get("/info", self.info)
        app.on_startup.append(self._startup)
        app.on_shutdown.append(self._shutdown)
        return app

    async def _startup(self, app: web.Application) -> None:
        self.scheduler = Scheduler(self.engines, self.config)
        self.scheduler.start()

    async def _shutdown(self, app: web.Application) -> None:
        # Stop the scheduler first so that every open job's owner is told
        # (shutting_down) before its connection closes.
        if self.scheduler is not None:
            await self.scheduler.stop()
        for session in list(self.sessions):
            await session.shutdown()

    # -- access -------------------------------------------------------------------------

    def _request_token(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[len("Bearer "):].strip()
        return request.query.get("token")

    def _token_ok(self, request: web.Request) -> bool:
        given = self._request_token(request)
        # Compare bytes: compare_digest raises TypeError on non-ASCII str, and header
        # values may carry undecodable bytes as surrogates.
        return bool(self.config.token and given and hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self.config.token.encode()))

    def _check_origin(self, request: web.Request) -> None:
        # Browsers send Origin; a web page must not drive a local server unless allowed.
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self.config.allowed_origins:
            raise web.HTTPForbidden(text=f"Origin {origin} is not allowed; add it to allowed_origins in the configuration.\n")
        if self.config.is_loopback and not self.config.token and not _loopback_host(request.url.host or ""):
            # DNS rebinding: a page whose name was made to resolve to 127.0.0.1 is
            # same-origin with this server, and browsers send no Origin on its GETs.
            raise web.HTTPForbidden(text="This server answers only to localhost and loopback addresses (or set a token).\n")

    # -- routes -------------------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        self._check_origin(request)
        if self.config.token and self._request_token(request) is not None and not self._token_ok(request):
            raise web.HTTPUnauthorized(text="Wrong token.\n")
        # aiohttp refuses a message of exactly max_msg_size bytes; the limit is inclusive.
        ws = web.WebSocketResponse(max_msg_size=self.config.max_message_bytes + 1, compress=False, heartbeat=30.0)
        await ws.prepare(request)
        assert self.scheduler is not None
        session = Session(ws, self, request.remote or "?", pre_authorized=self._token_ok(request))
        self.sessions.add(session)
        try:
            await session.serve()
        finally:
            self.sessions.discard(session)
        return ws

    async def health(self, request: web.Request) -> web.Response:
        self._check_origin(request)
        return web.json_response({"status": "ok", "server": f"paintwire/{__version__}", "protocol": PROTOCOL_VERSION})

    async def info(self, request: web.Request) -> web.Response:
        self._check_origin(request)
        if self.config.token and not self._token_ok(request):
            raise web.HTTPUnauthorized(text="This server needs a token: send 'Authorization: Bearer <token>'.\n")
        assert self.scheduler is not None
        return web.json_response(
            {
                "server": f"paintwire/{__version__}",
                "protocol": PROTOCOL_VERSION,
                "capabilities": self.capabilities.to_wire(),
                "queue": self.scheduler.status(),
                "clients": len(self.sessions),
            }
        )


def _loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Parameters whose range the configuration caps, whatever an engine advertises:
# they decide how long a job holds the device and how much memory it asks for.
CAPPED_PARAMS = {"steps": "max_steps", "batch_size": "max_batch", "batch": "max_batch"}


def _capped_modes(modes: tuple[ModeSpec, ...], config: ServerConfig) -> tuple[ModeSpec, ...]:
    """The modes with steps and batch size capped at the configured limits; the
    capped maximum is what clients see and what check_job enforces."""
    out = []
    for mode in modes:
        specs = []
        for spec in mode.params:
            limit = getattr(config, CAPPED_PARAMS[spec.name], None) if spec.name in CAPPED_PARAMS else None
            if limit is not None and (spec.maximum is None or spec.maximum > limit):
                default = min(spec.default, limit) if isinstance(spec.default, (int, float)) and not isinstance(spec.default, bool) else spec.default
                spec = dataclasses.replace(spec, maximum=limit, default=default)
            specs.append(spec)
        out.append(dataclasses.replace(mode, params=tuple(specs)))
    return tuple(out)


async def start_server(config: ServerConfig, engines: list[Engine] | None = None) -> tuple[web.AppRunner, PaintwireServer, int]:
    """Start serving; returns the runner (for cleanup), the server and the bound port."""
    server = PaintwireServer(config, engines)
    runner = web.AppRunner(server.make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
    port = sockets[0].getsockname()[1] if sockets else config.port
    return runner, server, port
