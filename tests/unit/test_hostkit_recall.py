"""paintwire.hostkit.recall: recalled settings into the panel, and the recalled image as a layer."""

from __future__ import annotations

import io
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from PIL import Image

from test_hostkit import BOTH, CLASSICAL, caps
from paintwire.hostkit.placement import place_result
from paintwire.hostkit.recall import fetch_image, history_settings, http_url, recalled_result, recollect, settings_in_image
from paintwire.protocol import PixelFormat, Recall
from paintwire.protocol.metadata import png_text
from paintwire.protocol.pngtext import add_text

SAVED = {"engine": "diffusers", "mode": "inpaint", "model": "tiny-sd15", "params": {"prompt": "a fox", "strength": 0.4, "seed": 42,
                                                                                   "mask_blur": 9, "clip_skip": 2}}


def test_recalled_settings_fit_the_servers_mode_with_notes() -> None:
    got = recollect(SAVED, BOTH)
    assert got.settings is not None
    assert (got.settings.engine, got.settings.mode, got.settings.model) == ("diffusers", "inpaint", "tiny-sd15")
    assert got.settings.params == {"prompt": "a fox", "strength": 0.4, "seed": 42, "mask_blur": 9}
    assert len(got.notes) == 1 and "clip_skip" in got.notes[0]
    assert got.summary == "Inpaint \u00b7 tiny-sd15 \u00b7 \u201ca fox\u201d \u00b7 seed 42"


def test_a_model_the_server_lacks_is_named_and_left_out() -> None:
    got = recollect({**SAVED, "model": "elsewhere"}, BOTH)
    assert got.settings is not None and got.settings.model == "tiny-sd15"
    assert any("'elsewhere' is not on this server; using 'tiny-sd15'" in n for n in got.notes)


def test_an_image_from_another_program_goes_to_the_engine_that_has_the_mode() -> None:
    webui = {"mode": "txt2img", "params": {"prompt": "x", "seed": 3}}  # no engine named
    got = recollect(webui, BOTH)
    assert got.settings is not None and got.settings.engine == "diffusers" and got.settings.params == {"prompt": "x", "seed": 3}
    only_classical = recollect(webui, caps(CLASSICAL))
    assert only_classical.settings is None and "cannot do" in only_classical.notes[0]
    assert recollect(webui, None).settings is None


def test_settings_in_image_reads_png_metadata() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buf, "PNG")
    data = add_text(buf.getvalue(), png_text(SAVED))
    found = settings_in_image(data)
    assert found is not None and found.source == "paintwire" and found.settings == SAVED
    assert settings_in_image(buf.getvalue()) is None
    with pytest.raises(ValueError, match=r"^No settings can be read from this file: not a PNG file \(its first bytes"):
        settings_in_image(b"JFIF")


def test_the_recalled_image_is_fetched_with_the_token_and_placed_as_a_layer() -> None:
    seen = {}
    png = b"\x89PNG fake bytes"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen["path"], seen["auth"] = self.path, self.headers.get("Authorization")
            self.send_response(200 if self.path == "/api/history/7/image" else 404)
            self.end_headers()
            self.wfile.write(png)

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"ws://127.0.0.1:{server.server_port}/ws"
        assert http_url(url, "/api/history/7/image") == f"http://127.0.0.1:{server.server_port}/api/history/7/image"
        recall = Recall(7, SAVED, "/api/history/7/image", 2, 1)
        assert fetch_image(url, "tok", recall) == png
        assert seen == {"path": "/api/history/7/image", "auth": "Bearer tok"}
        with pytest.raises(ValueError, match="HTTP 404"):
            fetch_image(url, None, Recall(8, SAVED, "/api/history/8/image"))
    finally:
        server.shutdown()
    result = recalled_result(recall, 2, 1, bytes(8), PixelFormat.BGRA8)
    placement = place_result(result, (2, 1))
    assert not placement.new_document and placement.layers[0].name == "a fox [seed 42]" and placement.layers[0].pixel_format is PixelFormat.BGRA8


def test_a_history_results_settings_are_read_with_the_token_and_the_servers_sentences_kept() -> None:
    """The CLI's ``paintwire recall --id`` reads them through this."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append((self.path, self.headers.get("Authorization")))
            found = self.path == "/api/history/7"
            body = {"id": 7, "settings": SAVED} if found else {"error": {"code": "not_found", "message": "No result 8 in the history."}}
            self.send_response(200 if found else 404)
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"ws://127.0.0.1:{server.server_port}/ws"
    try:
        got = history_settings(url, "tok", 7)
        assert got.source == "history" and got.settings == SAVED and seen == [("/api/history/7", "Bearer tok")]
        with pytest.raises(ValueError, match="^No result 8 in the history.$"):
            history_settings(url, None, 8)
        assert seen[-1] == ("/api/history/8", None)
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        closed = f"ws://127.0.0.1:{free.getsockname()[1]}/ws"
    with pytest.raises(ConnectionError, match="Cannot reach the server at ws://127.0.0.1"):
        history_settings(closed, None, 7)
    with pytest.raises(ValueError, match="Could not fetch the image: Cannot reach"):
        fetch_image(closed, None, Recall(7, SAVED, "/api/history/7/image"))
