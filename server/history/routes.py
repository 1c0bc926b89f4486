"""The history's HTTP API (docs/history.md): list, one record, its image and
thumbnail, star, delete, the clients that take a recall, and send a recall.

Same token and origin rules as every route (server/access.py). Errors are JSON
``{"error": {"code", "message"}}`` with a stable code and a sentence. Database
calls run in a worker thread; the event loop only routes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any, Callable, Iterable, Protocol

from aiohttp import web

from paintwire.protocol import Recall

from ..access import AccessPolicy, request_token
from .store import MAX_PAGE, Filters, HistoryStore, Record

IMMUTABLE = "private, max-age=31536000, immutable"  # ids are never reused, so a file never changes


class RecallTarget(Protocol):
    """A connected client, as the history sees it (a session)."""

    id: str
    client_name: str | None
    accepts_recall: bool

    def emit(self, message: Any) -> None: ...


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.response = _error(status, code, message)


def iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _time(text: str, name: str) -> float:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "bad_request", f"{name} must be an ISO 8601 date or time, e.g. 2026-12-01 or 2026-12-01T18:00:00Z; got {text!r}.") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)  # a bare date or time is UTC, as the items' times are
    return when.timestamp()


def _int(text: str, name: str, lo: int, hi: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, "bad_request", f"{name} must be a whole number; got {text!r}.") from None
    if not lo <= value <= hi:
        raise ApiError(400, "bad_request", f"{name} must be {lo} to {hi}; got {value}.")
    return value


def item(record: Record) -> dict[str, Any]:
    base = f"/api/history/{record.id}"
    out = {
        "id": record.id, "created": iso(record.created), "client": record.client, "engine": record.engine, "mode": record.mode,
        "model": record.model, "prompt": record.prompt, "seed": record.seed, "width": record.width, "height": record.height,
        "starred": record.starred, "parent": record.parent, "thumb": f"{base}/thumb", "image": f"{base}/image",
    }
    if record.settings is not None:
        out["settings"] = record.settings
    return out


class HistoryApi:
    def __init__(self, store: Callable[[], HistoryStore | None], access: AccessPolicy, clients: Callable[[], Iterable[RecallTarget]]) -> None:
        self._store = store  # opened when the server starts; None while the history is off
        self.access = access
        self.clients = clients

    @property
    def store(self) -> HistoryStore | None:
        return self._store()

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/api/history", self._wrap(self.list))
        r.add_get("/api/history/{id}", self._wrap(self.one))
        r.add_get("/api/history/{id}/image", self._wrap(self.image))
        r.add_get("/api/history/{id}/thumb", self._wrap(self.thumb))
        r.add_post("/api/history/{id}/star", self._wrap(self.star))
        r.add_delete("/api/history/{id}", self._wrap(self.delete))
        r.add_post("/api/history/{id}/send", self._wrap(self.send))
        r.add_get("/api/clients", self._wrap(self.list_clients, needs_store=False))

    def _wrap(self, handler: Callable[[web.Request], Any], needs_store: bool = True) -> Callable[[web.Request], Any]:
        async def route(request: web.Request) -> web.StreamResponse:
            self.access.check_origin(request)
            if not self.access.authorized(request_token(request.headers, request.query)):
                return _error(401, "unauthorized", "This server needs a token: send 'Authorization: Bearer <token>' or ?token=.")
            if needs_store and self.store is None:
                return _error(404, "history_off", "The history is off on this server (history = false in its configuration).")
            try:
                return await handler(request)
            except ApiError as exc:
                return exc.response

        return route

    # -- helpers ----------------------------------------------------------------------

    def _id(self, request: web.Request) -> int:
        return _int(request.match_info["id"], "The history id", 1, 2**63 - 1)

    async def _record(self, request: web.Request) -> Record:
        assert self.store is not None
        record_id = self._id(request)
        record = await asyncio.to_thread(self.store.get, record_id)
        if record is None:
            raise ApiError(404, "not_found", f"No result {record_id} in the history (it may have been deleted).")
        return record

    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "bad_request", "The body must be a JSON object.") from None
        if not isinstance(body, dict):
            raise ApiError(400, "bad_request", "The body must be a JSON object.")
        return body

    # -- routes -----------------------------------------------------------------------

    async def list(self, request: web.Request) -> web.Response:
        assert self.store is not None
        q = request.query
        limit = _int(q["limit"], "limit", 1, MAX_PAGE) if "limit" in q else 100
        before = _int(q["before"], "before", 1, 2**63 - 1) if q.get("before") else None
        starred = q.get("starred", "").lower()
        if starred not in ("", "0", "1", "true", "false"):
            raise ApiError(400, "bad_request", f"starred must be 1 or 0; got {starred!r}.")
        filters = Filters(
            model=q.get("model") or None, mode=q.get("mode") or None, starred=starred in ("1", "true"), text=q.get("q") or None,
            since=_time(q["since"], "since") if q.get("since") else None, until=_time(q["until"], "until") if q.get("until") else None,
        )
        records, cursor = await asyncio.to_thread(self.store.list, filters, limit, before)
        return web.json_response({"items": [item(r) for r in records], "next": None if cursor is None else str(cursor)})

    async def one(self, request: web.Request) -> web.Response:
        return web.json_response(item(await self._record(request)))

    async def _file(self, request: web.Request, thumb: bool) -> web.StreamResponse:
        assert self.store is not None
        record = await self._record(request)
        path = self.store.thumb_path(record.id) if thumb else self.store.image_path(record.id)
        if not path.exists():
            raise ApiError(404, "not_found", f"The file of result {record.id} is missing; 'paintwire history maintain' tidies the history.")
        headers = {"Cache-Control": IMMUTABLE, "Content-Type": "image/webp" if thumb else "image/png"}
        if not thumb:
            headers["Content-Disposition"] = f'inline; filename="paintwire-{record.id}.png"'
        return web.FileResponse(path, headers=headers)

    async def image(self, request: web.Request) -> web.StreamResponse:
        return await self._file(request, thumb=False)

    async def thumb(self, request: web.Request) -> web.StreamResponse:
        return await self._file(request, thumb=True)

    async def star(self, request: web.Request) -> web.Response:
        assert self.store is not None
        record_id = self._id(request)
        body = await self._json(request)
        if not isinstance(body.get("starred"), bool):
            raise ApiError(400, "bad_request", 'Send {"starred": true} or {"starred": false}.')
        if not await asyncio.to_thread(self.store.star, record_id, body["starred"]):
            raise ApiError(404, "not_found", f"No result {record_id} in the history.")
        return web.json_response({"id": record_id, "starred": body["starred"]})

    async def delete(self, request: web.Request) -> web.Response:
        assert self.store is not None
        record_id = self._id(request)
        if not await asyncio.to_thread(self.store.delete, record_id):
            raise ApiError(404, "not_found", f"No result {record_id} in the history.")
        return web.json_response({"id": record_id, "deleted": True})

    def _recall_targets(self) -> list[RecallTarget]:
        return [c for c in self.clients() if c.accepts_recall]

    async def list_clients(self, request: web.Request) -> web.Response:
        return web.json_response([{"id": c.id, "name": c.client_name or ""} for c in self._recall_targets()])

    async def send(self, request: web.Request) -> web.Response:
        record = await self._record(request)
        body = await self._json(request)
        target_id = body.get("client")
        target = next((c for c in self._recall_targets() if c.id == target_id), None)
        if target is None:
            raise ApiError(404, "unknown_client", f"No connected client {target_id!r} takes recalls; GET /api/clients lists those that do.")
        image = f"/api/history/{record.id}/image"
        target.emit(Recall(record.id, record.settings or {}, image, record.width, record.height))
        return web.json_response({"id": record.id, "client": target.id, "sent": True})
