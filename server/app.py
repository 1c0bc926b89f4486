"""The aiohttp application: the websocket endpoint and the small HTTP endpoints."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import threading

from aiohttp import web

from paintwire.protocol import PROTOCOL_VERSION, Capabilities, EngineInfo, Limits, ModeSpec, __version__
from paintwire.protocol.images import ABSOLUTE_MAX_SIDE

from .access import AccessPolicy, request_token, token_matches
from .config import LimitsConfig, ServerConfig
from .connections import ConnectionGuard
from .engines.base import Engine
from .engines.registry import EnginesByName, plan_engines
from .engines.starting import StartingEngine
from .jobs import Job
from .history.routes import HistoryApi
from .history.service import HistoryService
from .memory import configure_allocator, release_memory, trim_heaps
from .model_watch import ModelWatch
from .preprocessing import Preprocessing
from .runner import JobRunner
from .scheduler import Scheduler
from .session import Session
from .web import WebViews, add_web_routes

log = logging.getLogger(__name__)

# Shutdown: how long the last frames, each close and the running job may take.
SHUTDOWN_GRACE_SECONDS = 0.5


class PaintwireServer:
    """Everything the routes share: the network and limits settings, engines, capabilities and
    scheduler. It is handed the whole configuration and gives each part the section it uses."""

    def __init__(self, config: ServerConfig, engines: list[Engine] | None = None) -> None:
        network, limits = config.network, config.limits
        if not network.is_loopback and not network.token:
            # Never listen beyond this machine without a token.
            network.token = secrets.token_urlsafe(24)
            self.generated_token = True
        else:
            self.generated_token = False
        self.network = network
        self.limits = limits
        # Engines that take long to start (diffusers) are built after the server listens (engines/starting.py).
        self.engines = engines if engines is not None else plan_engines(config)
        self.engines_by_name = EnginesByName(self.engines)
        self.ready = asyncio.Event()  # every engine has started (or failed to)
        self._starting: asyncio.Task[None] | None = None
        self.capabilities = build_capabilities(self.engines, limits)
        self.access = AccessPolicy(network.token, network.is_loopback, tuple(network.allowed_origins))
        self.guard = ConnectionGuard(limits.max_connections, limits.max_connections_per_address, limits.hello_timeout)
        self.scheduler: Scheduler | None = None
        self.sessions: set[Session] = set()
        self.model_watch = ModelWatch(self.engines, config.models.model_rescan_seconds, self.publish_capabilities)
        self.history = HistoryService(config.history, self.engines_by_name, lambda: self.capabilities)  # opened at start (docs/history.md)
        self.preprocessing = Preprocessing(self.engines_by_name)

    def publish_capabilities(self) -> None:
        """Rebuild the capabilities after a rescan or an engine's start; every session
        checks new jobs against them, and those that asked are told when they changed."""
        new = build_capabilities(self.engines, self.limits)
        if new == self.capabilities:
            return
        self.capabilities = new
        log.info("capabilities changed: %d engines ready, %d models", sum(not e.starting for e in new.engines), len(new.models))
        for session in list(self.sessions):
            session.update_capabilities(new)

    async def rescan(self) -> Capabilities:
        """Look at the model folders now (a client asked); returns the capabilities after."""
        await self.model_watch.rescan()
        return self.capabilities

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20, middlewares=[self.guard.middleware])
        app.router.add_get("/ws", self.websocket)
        app.router.add_get("/health", self.health)
        app.router.add_get("/info", self.info)
        HistoryApi(lambda: self.history.store, self.access, lambda: list(self.sessions)).add_routes(app)
        add_web_routes(app, WebViews(self.access, lambda: self.capabilities, self._open_jobs))
        app.on_startup.append(self._startup)
        app.on_shutdown.append(self._shutdown)
        return app

    async def _startup(self, app: web.Application) -> None:
        self.history.open()
        runner = JobRunner(self.engines_by_name, self.limits.max_pixels, self.limits.previews_per_second, self.history.known_hash)
        self.scheduler = Scheduler(self.engines, runner, self.limits.max_queued_per_client, self.limits.max_queued_total, self.history.record,
                                   on_idle=trim_heaps)
        self.scheduler.start()
        self._starting = asyncio.create_task(self._start_engines(), name="paintwire-engines-start")

    async def _start_engines(self) -> None:
        """Build the engines that start late, one after the other, each in a thread of its own
        (a daemon: one still importing torch when the server stops must not hold the exit);
        publish the capabilities as each is ready, then watch the model folders."""
        loop = asyncio.get_running_loop()
        for engine in [e for e in self.engines if isinstance(e, StartingEngine)]:
            done: asyncio.Future[None] = loop.create_future()

            def build(engine: StartingEngine = engine, done: asyncio.Future[None] = done) -> None:
                engine.start()
                try:
                    loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))
                except RuntimeError:
                    pass  # the server stopped meanwhile

            threading.Thread(target=build, name=f"paintwire-start-{engine.name}", daemon=True).start()
            await done
            if engine.failed:
                self.engines.remove(engine)  # left out, as an engine whose libraries are missing always was
            else:
                log.info("the %s engine is ready (%.1f s)", engine.name, engine.seconds)
            self.publish_capabilities()
        self.model_watch.start()
        self.ready.set()

    async def _shutdown(self, app: web.Application) -> None:
        # Tell every open job's owner first (shutting_down), cancelling the running
        # job, then close every connection; the engine gets what time is left.
        if self._starting is not None:
            self._starting.cancel()
        await self.model_watch.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        await asyncio.gather(*(s.shutdown(SHUTDOWN_GRACE_SECONDS) for s in list(self.sessions)))
        self.guard.close_all()
        if self.scheduler is not None:
            await self.scheduler.wait_stopped(SHUTDOWN_GRACE_SECONDS)
        self.preprocessing.close()
        await asyncio.to_thread(self.history.close)  # what is queued is still recorded

    def _open_jobs(self) -> list[Job]:
        return self.scheduler.open_jobs() if self.scheduler is not None else []

    # -- routes -------------------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        self.access.check_origin(request)
        given = request_token(request.headers, request.query)
        if self.network.token and given is not None and not token_matches(given, self.network.token):
            raise web.HTTPUnauthorized(text="Wrong token.\n")
        pre_authorized = token_matches(given, self.network.token)  # a valid token came with the handshake
        # aiohttp refuses a message of exactly max_msg_size bytes; the limit is inclusive.
        ws = web.WebSocketResponse(max_msg_size=self.limits.max_message_bytes + 1, compress=False, heartbeat=30.0)
        self.guard.frames_follow(request.transport)
        try:
            await ws.prepare(request)
        except web.HTTPException:
            self.guard.frames_follow(request.transport, False)
            raise
        assert self.scheduler is not None
        session = Session(
            ws,
            request.remote or "?",
            scheduler=self.scheduler,
            capabilities=self.capabilities,
            authorize=lambda token: pre_authorized or self.access.authorized(token),
            limits=self.limits,
            transport=request.transport,
            rescan=self.rescan,
            preprocess=self.preprocessing.run,
        )
        self.sessions.add(session)
        try:
            await session.serve()
        finally:
            self.sessions.discard(session)
            del session
            release_memory()
        return ws

    async def health(self, request: web.Request) -> web.Response:
        self.access.check_origin(request)
        return web.json_response({"status": "ok", "server": f"paintwire/{__version__}", "protocol": PROTOCOL_VERSION})

    async def info(self, request: web.Request) -> web.Response:
        self.access.check_request(request)
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


def build_capabilities(engines: list[Engine], limits: LimitsConfig) -> Capabilities:
    return Capabilities(
        engines=tuple(EngineInfo(e.name, e.label, _capped_modes(e.modes(), limits), notice=e.notice(), device=e.device(), controls=e.controls(),
                                 status=e.status()) for e in engines),
        models=tuple(m for e in engines for m in e.models()),
        limits=Limits(
            max_message_bytes=limits.max_message_bytes,
            max_pixels=limits.max_pixels,
            max_side=ABSOLUTE_MAX_SIDE,
            max_queued_per_client=limits.max_queued_per_client,
        ),
    )


# Parameters whose range the configuration caps, whatever an engine advertises:
# they decide how long a job holds the device and how much memory it asks for.
CAPPED_PARAMS = {"steps": "max_steps", "batch_size": "max_batch"}


def _capped_modes(modes: tuple[ModeSpec, ...], limits: LimitsConfig) -> tuple[ModeSpec, ...]:
    """The modes with steps and batch size capped at the configured limits; the
    capped maximum is what clients see and what check_job enforces."""
    out = []
    for mode in modes:
        specs = []
        for spec in mode.params:
            limit = getattr(limits, CAPPED_PARAMS[spec.name], None) if spec.name in CAPPED_PARAMS else None
            if limit is not None and (spec.maximum is None or spec.maximum > limit):
                default = min(spec.default, limit) if isinstance(spec.default, (int, float)) and not isinstance(spec.default, bool) else spec.default
                spec = dataclasses.replace(spec, maximum=limit, default=default)
            specs.append(spec)
        out.append(dataclasses.replace(mode, params=tuple(specs)))
    return tuple(out)


async def start_server(config: ServerConfig, engines: list[Engine] | None = None) -> tuple[web.AppRunner, PaintwireServer, int]:
    """Start serving; returns the runner (for cleanup), the server and the bound port."""
    configure_allocator()
    server = PaintwireServer(config, engines)
    runner = web.AppRunner(server.make_app(), access_log=None, shutdown_timeout=SHUTDOWN_GRACE_SECONDS)
    await runner.setup()
    site = server.guard.site(runner, config.network.host, config.network.port)
    await site.start()
    sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
    port = sockets[0].getsockname()[1] if sockets else config.network.port
    return runner, server, port
