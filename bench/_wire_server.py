"""The receiving end of bench/wire.py: a real aiohttp websocket server, in its
own process, that decodes what it receives the way each kind of server does
and answers "ok" once the pixels are numpy arrays.

  /paintwire  binary frames (msgpack, blob frames, shared-memory references):
              decode_client_message, then payload_to_array (Paintwire's own code, as
              the server runs it)
  /bytes      binary frames, not decoded: the websocket transport alone
  /webui      text frames of JSON with base64 PNGs: json.loads, b64decode, PIL decode
              (what a WebUI-style API does with init_images and mask)
"""

from __future__ import annotations

import base64
import io
import json
import sys

import numpy as np
from aiohttp import WSMsgType, web
from PIL import Image

from paintwire.protocol import decode_client_message, shm
from paintwire.server.imaging import payload_to_array

MAX = 1 << 31


async def paintwire(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=MAX, compress=False)
    await ws.prepare(request)
    reader = shm.SegmentReads()  # what a server gives a connection whose probe it read
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            submit = decode_client_message(msg.data, max_pixels=1 << 30, reader=reader)
            image = payload_to_array(submit.job.image)
            mask = payload_to_array(submit.job.mask)
            await ws.send_bytes(b"ok %d" % (int(image[-1, -1, 0]) + int(mask[-1, -1])))
    return ws


async def webui(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=MAX, compress=False)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            body = json.loads(msg.data)
            image = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["init_images"][0]))))
            mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["mask"]))))
            await ws.send_bytes(b"ok %d" % (int(image[-1, -1, 0]) + int(mask[-1, -1])))
    return ws


async def bytes_only(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=MAX, compress=False)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            await ws.send_bytes(b"ok %d" % len(msg.data))
    return ws


def main() -> None:
    app = web.Application()
    app.router.add_get("/bytes", bytes_only)
    app.router.add_get("/paintwire", paintwire)
    app.router.add_get("/webui", webui)

    async def ready(app: web.Application) -> None:
        print("ready", flush=True)

    app.on_startup.append(ready)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
