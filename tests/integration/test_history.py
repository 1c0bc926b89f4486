"""The history through a real server: results recorded off the event loop, the
/api/history routes, the PNG's metadata, limits, deletion, and recall to a client."""

from __future__ import annotations

import dataclasses
import io
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from helpers import inpaint_request, rect_mask, rgba_payload, scene
from paintwire.protocol import Client, ControlInput, JobFailed, JobRequest, Recall
from paintwire.protocol.metadata import recall as recall_settings
from paintwire.protocol.pngtext import read_text


def http(server, method: str, path: str, body: Any = None, token: str | None = None, origin: str | None = None) -> tuple[int, bytes, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.http + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if origin:
        req.add_header("Origin", origin)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def get_json(server, path: str, **kw: Any) -> Any:
    status, body, _ = http(server, "GET", path, **kw)
    assert status == 200, body
    return json.loads(body)


def wait_for_items(server, count: int, path: str = "/api/history?limit=500", **kw: Any) -> list[dict]:
    deadline = time.monotonic() + 30
    while True:
        items = get_json(server, path, **kw)["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return items
        time.sleep(0.05)


def run_inpaint(server, client_name: str = "history-test", token: str | None = None, **params: Any):
    img = scene(96, 64)
    with Client(server.url, name=client_name, token=token) as client:
        return client.run(inpaint_request(img, rect_mask(96, 64, 20, 10, 30, 20), method=params.pop("method", "telea"), **params))


def test_results_are_recorded_with_their_settings_image_and_thumbnail(start_server, tmp_path: Path) -> None:
    server = start_server(history=True, history_dir=str(tmp_path))
    result = run_inpaint(server, mask_blur=6)
    items = wait_for_items(server, len(result.layers))
    assert len(items) == len(result.layers) == 1
    item = items[0]
    assert (item["client"], item["engine"], item["mode"]) == ("history-test", "classical", "inpaint")
    assert item["created"].endswith("Z") and item["starred"] is False and item["parent"] is None
    one = get_json(server, f"/api/history/{item['id']}")
    assert one["settings"]["params"]["mask_blur"] == 6 and one["settings"]["params"]["method"] == "telea"

    status, png, headers = http(server, "GET", item["image"])
    assert status == 200 and headers["Content-Type"] == "image/png"
    recalled = recall_settings(read_text(png))
    assert recalled is not None and recalled.source == "paintwire"
    assert recalled.settings["params"]["mask_blur"] == 6
    assert "parameters" in read_text(png)
    layer = result.layers[0]
    stored = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
    assert stored.shape[:2] == (layer.image.height, layer.image.width)

    status, thumb, headers = http(server, "GET", item["thumb"])
    assert status == 200 and headers["Content-Type"] == "image/webp"
    assert max(Image.open(io.BytesIO(thumb)).size) <= 256


def test_listing_pages_filters_stars_and_deletes(start_server, tmp_path: Path) -> None:
    server = start_server(history=True, history_dir=str(tmp_path))
    for method in ("telea", "ns", "fill", "telea", "ns"):
        run_inpaint(server, method=method)
    run_inpaint_upscale = JobRequest("classical", "upscale", inpaint_request(scene(40, 30), rect_mask(40, 30, 0, 0, 1, 1)).image, params={"scale": 2.0})
    with Client(server.url, name="history-test") as client:
        client.run(run_inpaint_upscale)
    items = wait_for_items(server, 6)
    assert len(items) == 6 and [i["id"] for i in items] == sorted((i["id"] for i in items), reverse=True)

    first = get_json(server, "/api/history?limit=4")
    assert len(first["items"]) == 4 and first["next"] is not None
    rest = get_json(server, f"/api/history?limit=4&before={first['next']}")
    assert len(rest["items"]) == 2 and rest["next"] is None
    assert [i["id"] for i in first["items"] + rest["items"]] == [i["id"] for i in items]

    assert {i["mode"] for i in get_json(server, "/api/history?mode=upscale")["items"]} == {"upscale"}
    assert len(get_json(server, "/api/history?mode=inpaint")["items"]) == 5
    assert get_json(server, "/api/history?since=2000-01-01&until=2000-01-02")["items"] == []

    target = items[2]["id"]
    status, body, _ = http(server, "POST", f"/api/history/{target}/star", {"starred": True})
    assert status == 200, body
    starred = get_json(server, "/api/history?starred=1")["items"]
    assert [i["id"] for i in starred] == [target] and starred[0]["starred"] is True
    assert get_json(server, "/api/history?starred=1&mode=upscale")["items"] == []  # filters combine

    image_file = next(tmp_path.rglob(f"images/*/{target}.png"))
    thumb_file = next(tmp_path.rglob(f"thumbs/*/{target}.webp"))
    status, _, _ = http(server, "DELETE", f"/api/history/{target}")
    assert status == 200
    assert not image_file.exists() and not thumb_file.exists()
    assert http(server, "GET", f"/api/history/{target}")[0] == 404
    assert len(get_json(server, "/api/history")["items"]) == 5


def test_bad_requests_get_a_code_and_a_sentence(start_server, tmp_path: Path) -> None:
    server = start_server(history=True, history_dir=str(tmp_path))
    for method, path, body in (
        ("GET", "/api/history?limit=0", None), ("GET", "/api/history?limit=x", None), ("GET", "/api/history?since=yesterday", None),
        ("GET", "/api/history/abc", None), ("POST", "/api/history/1/star", {"starred": "yes"}),
    ):
        status, raw, _ = http(server, method, path, body)
        err = json.loads(raw)["error"]
        assert status == 400 and err["code"] == "bad_request" and err["message"].endswith("."), (path, raw)
    status, raw, _ = http(server, "GET", "/api/history/999")
    assert status == 404 and json.loads(raw)["error"]["code"] == "not_found"
    status, raw, _ = http(server, "POST", "/api/history/1/send", {"client": "nobody"})
    assert status == 404
    # The server keeps serving.
    assert get_json(server, "/api/history")["items"] == []


def test_token_and_origin_rules_apply(start_server, tmp_path: Path) -> None:
    server = start_server(history=True, history_dir=str(tmp_path), token="s3cret")
    status, raw, _ = http(server, "GET", "/api/history")
    assert status == 401 and json.loads(raw)["error"]["code"] == "unauthorized"
    assert http(server, "GET", "/api/history", token="s3cret")[0] == 200
    assert http(server, "GET", "/api/history?token=s3cret")[0] == 200
    assert http(server, "GET", "/api/history", token="s3cret", origin="https://evil.example")[0] == 403


def test_history_off_writes_nothing(start_server, tmp_path: Path) -> None:
    folder = tmp_path / "history"
    server = start_server(history=False, history_dir=str(folder))
    run_inpaint(server)
    status, raw, _ = http(server, "GET", "/api/history")
    assert status == 404 and json.loads(raw)["error"]["code"] == "history_off"
    assert not folder.exists()


def test_limits_drop_the_oldest_unstarred(start_server, tmp_path: Path) -> None:
    server = start_server(history=True, history_dir=str(tmp_path), history_max_count=3)
    run_inpaint(server)
    first = wait_for_items(server, 1)[0]["id"]
    assert http(server, "POST", f"/api/history/{first}/star", {"starred": True})[0] == 200
    for _ in range(4):
        run_inpaint(server)
    deadline = time.monotonic() + 30
    while True:
        ids = [i["id"] for i in get_json(server, "/api/history")["items"]]
        if ids and max(ids) >= first + 4 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(ids) == 3 and first in ids  # the starred oldest stays; the next oldest went
    assert ids[:2] == [first + 4, first + 3]
    assert len(list(tmp_path.rglob("images/*/*.png"))) == 3


def test_recall_reaches_the_chosen_client(start_server, tmp_path: Path) -> None:
    server = start_server(history=True, history_dir=str(tmp_path))
    run_inpaint(server, mask_blur=9)
    record = wait_for_items(server, 1)[0]
    with Client(server.url, name="krita-like/1.0", recall=True) as taker, Client(server.url, name="plain/1.0"):
        clients = get_json(server, "/api/clients")
        assert [c["name"] for c in clients] == ["krita-like/1.0"]  # only clients that take recalls are listed
        # The id is a string, and the one the client's own welcome gave it.
        assert isinstance(clients[0]["id"], str) and clients[0]["id"] == taker.protocol.client_id
        status, body, _ = http(server, "POST", f"/api/history/{record['id']}/send", {"client": clients[0]["id"]})
        assert status == 200, body
        message = next(m for m in taker.events(timeout=10) if isinstance(m, Recall))
        assert message.id == record["id"] and message.image == f"/api/history/{record['id']}/image"
        assert message.settings["params"]["mask_blur"] == 9 and message.settings["mode"] == "inpaint"
        # The client can still run jobs afterwards: the recall belongs to no job. One that starts
        # from the recalled result names it, and the history links the two.
        request = inpaint_request(scene(32, 32), rect_mask(32, 32, 4, 4, 8, 8))
        assert taker.run(dataclasses.replace(request, parent=record["id"])).layers
    child = wait_for_items(server, 2)[0]
    assert child["parent"] == record["id"] and child["client"] == "krita-like/1.0"


def test_a_recall_that_comes_during_a_preprocess_waits_for_poll(start_server, tmp_path: Path) -> None:
    # A preview of a control layer waits for its own answer; a recall sent meanwhile is not lost.
    server = start_server(history=True, history_dir=str(tmp_path))
    run_inpaint(server)
    record = wait_for_items(server, 1)[0]
    with Client(server.url, name="krita-like/1.0", recall=True) as taker:
        (listed,) = get_json(server, "/api/clients")
        status, body, _ = http(server, "POST", f"/api/history/{record['id']}/send", {"client": listed["id"]})
        assert status == 200, body
        control = ControlInput("canny", rgba_payload(scene(32, 32)), preprocessor="none")
        with pytest.raises(JobFailed):  # the classical engine takes no control layers: an answer all the same
            taker.preprocess("classical", control, timeout=10)  # the recall is on the wire before this answer
        (kept,) = taker.poll()
        assert isinstance(kept, Recall) and kept.id == record["id"]


def test_a_burst_of_results_is_all_recorded(start_server, tmp_path: Path) -> None:
    # A burst of results: every client gets every result, whatever the history does with them.
    server = start_server(history=True, history_dir=str(tmp_path))
    with Client(server.url, name="burst") as client:
        for _ in range(6):
            assert client.run(inpaint_request(scene(64, 64), rect_mask(64, 64, 8, 8, 16, 16))).layers
    assert len(wait_for_items(server, 6)) == 6


def test_results_keep_flowing_while_the_history_cannot_write(start_server, tmp_path: Path) -> None:
    import sqlite3

    server = start_server(history=True, history_dir=str(tmp_path))
    run_inpaint(server)
    assert len(wait_for_items(server, 1)) == 1
    # Another process holds the database's write lock (as 'history maintain' does): the
    # recorder waits, and every client still gets every result at once.
    blocker = sqlite3.connect(tmp_path / "history.sqlite3", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with Client(server.url, name="while-blocked") as client:
            for _ in range(4):  # the recorder stays blocked all along: the lock is held until after the last result
                assert client.run(inpaint_request(scene(64, 64), rect_mask(64, 64, 8, 8, 16, 16)), timeout=20).layers
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    items = wait_for_items(server, 5)
    assert len(items) == 5 and {i["client"] for i in items[:4]} == {"while-blocked"}  # recorded once the lock was free


def test_the_cli_recalls_a_history_result_by_its_id(start_server, tmp_path: Path) -> None:
    import subprocess
    import sys

    server = start_server(history=True, history_dir=str(tmp_path), token="tok")
    run_inpaint(server, token="tok", method="ns", mask_blur=7)
    record = wait_for_items(server, 1, token="tok")[0]
    cli = [sys.executable, "-m", "paintwire.cli.main", "recall", "--url", server.url, "--token", "tok"]
    run = subprocess.run([*cli, "--id", str(record["id"])], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("paintwire run inpaint --engine classical ") and "-p method=ns" in run.stdout and "-p mask_blur=7" in run.stdout
    missing = subprocess.run([*cli, "--id", "999"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "No result 999" in missing.stderr
    neither = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert neither.returncode == 2 and "--id" in neither.stderr
