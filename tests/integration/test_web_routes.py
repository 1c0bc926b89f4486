"""The web page's routes on a real server, without a browser: its files, the
origin rule that admits the server's own page and nothing else, the token on the
JSON views, and what /api/queue and /api/models say (docs/web.md)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from paintwire.protocol import Client, JobCancelled, Welcome
from paintwire.protocol.connection import ClientConnection

from helpers import rgba_payload, scene, wait_for_running_job

TOKEN = "page-token-for-tests"


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture(scope="module")
def token_server():
    from server_process import start_server_process

    server = start_server_process(token=TOKEN)
    yield server
    server.stop()


def test_the_page_and_its_files_are_served_with_a_strict_policy(live_server):
    status, headers, body = http_get(live_server.http + "/")
    assert status == 200 and b"/static/js/main.js" in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    for name, kind in (("js/main.js", "javascript"), ("style.css", "text/css"), ("vendor/msgpack.min.js", "javascript")):
        status, headers, body = http_get(f"{live_server.http}/static/{name}")
        assert status == 200 and kind in headers["Content-Type"], name


def test_no_file_outside_the_page_is_served(live_server):
    for name in ("../routes.py", "..%2froutes.py", "js/../../routes.py", "nothing.js", "js"):
        status, _, body = http_get(f"{live_server.http}/static/{name}")
        assert status == 404, name


def test_the_pages_own_origin_is_admitted_and_no_other(live_server):
    own = f"http://127.0.0.1:{live_server.port}"
    assert http_get(live_server.http + "/api/models", {"Origin": own})[0] == 200
    assert http_get(live_server.http + "/api/models", {"Origin": f"https://127.0.0.1:{live_server.port}"})[0] == 200  # behind a TLS proxy
    for origin in (f"http://127.0.0.1:{live_server.port + 1}", "http://localhost:7878", "http://evil.example", "null"):
        assert http_get(live_server.http + "/api/models", {"Origin": origin})[0] == 403, origin
        assert http_get(live_server.http + "/", {"Origin": origin})[0] == 403, origin
    with connect(live_server.url, origin=own, legacy=True, proxy=None) as ws:
        conn = ClientConnection()
        ws.send(conn.hello("origin-test/1", None))
        assert isinstance(conn.receive(ws.recv(timeout=10)), Welcome)
    with pytest.raises(InvalidStatus) as info:
        with connect(live_server.url, origin=f"http://127.0.0.1:{live_server.port + 1}", legacy=True, proxy=None):
            pass
    assert info.value.response.status_code == 403


def test_requests_marked_from_another_site_are_refused_without_an_origin(live_server):
    """Browsers send no Origin with an <img> or a no-cors GET, but mark them."""
    for site in ("cross-site", "same-site"):
        assert http_get(live_server.http + "/api/models", {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "no-cors"})[0] == 403
    # Following a link to the page from elsewhere is fine; so is the page's own fetch.
    assert http_get(live_server.http + "/", {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"})[0] == 200
    assert http_get(live_server.http + "/api/models", {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"})[0] == 200


def test_json_views_need_the_token_and_the_page_does_not(token_server):
    assert http_get(token_server.http + "/")[0] == 200  # it asks for the token itself
    for path in ("/api/queue", "/api/models"):
        assert http_get(token_server.http + path)[0] == 401
        assert http_get(token_server.http + path, {"Authorization": "Bearer wrong"})[0] == 401
        assert http_get(token_server.http + path, {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert http_get(f"{token_server.http}{path}?token={TOKEN}")[0] == 200


def test_start_up_summary_names_the_page(live_server, token_server):
    assert f"page: http://127.0.0.1:{live_server.port}/\n" in live_server.log()
    line = next(line for line in token_server.log().splitlines() if "page:" in line)
    assert TOKEN not in line and "#token=YOUR_TOKEN" in line  # a chosen token is never printed


def test_models_view_lists_every_model(live_server):
    status, _, body = http_get(live_server.http + "/api/models")
    data = json.loads(body)
    assert status == 200
    assert {"name": "opencv", "engine": "classical", "kind": "builtin", "label": "OpenCV (built in)", "problem": "", "family": "", "memory": ""} in data["models"]
    assert [e["name"] for e in data["engines"]] == ["classical"]


def test_queue_lists_running_and_queued_jobs_in_order(start_server):
    server = start_server(engines=["classical", "fixtures.server_only_engine:PosterizeEngine"])
    big, small = rgba_payload(scene(2048, 2048)), rgba_payload(scene(64, 64))
    first, second = Client(server.url, name="first/1"), Client(server.url, name="second/1")
    first.connect()
    second.connect()
    outcomes: dict[str, Any] = {}
    seen: list[list[dict[str, Any]]] = []

    def run(name: str, client: Client, engine: str, mode: str, params: dict[str, Any]) -> None:
        from paintwire.protocol import JobRequest

        try:
            image = big if name == "first" else small
            outcomes[name] = client.run(JobRequest(engine, mode, image, params=params), timeout=300)
        except JobCancelled:
            outcomes[name] = "cancelled"

    threads = [
        threading.Thread(target=run, args=("first", first, "classical", "upscale", {"scale": 4.0}), daemon=True),
        threading.Thread(target=run, args=("second", second, "extras", "posterize", {})),
    ]
    threads[0].start()
    wait_for_running_job(server.http)  # the big upscale holds the worker: the posterize job queues behind it
    threads[1].start()
    deadline = time.monotonic() + 120
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        status, _, body = http_get(server.http + "/api/queue")
        assert status == 200
        jobs = json.loads(body)["jobs"]
        if jobs:
            seen.append(jobs)
        time.sleep(0.05)
    for t in threads:
        t.join(30)
    first.close()
    second.close()
    assert set(outcomes) == {"first", "second"} and "cancelled" not in outcomes.values()
    both = [jobs for jobs in seen if len(jobs) == 2]
    assert both, f"never saw both jobs at once: {seen[:3]}"
    running, queued = both[0]
    assert (running["client"], running["mode"], running["state"]) == ("first/1", "upscale", "running")
    assert (queued["client"], queued["mode"], queued["state"], queued["position"]) == ("second/1", "posterize", "queued", 0)
    fractions = [jobs[0]["fraction"] for jobs in seen if jobs[0]["client"] == "first/1"]
    assert fractions == sorted(fractions) and 0 <= fractions[0] <= fractions[-1] <= 1
    assert json.loads(http_get(server.http + "/api/queue")[2])["jobs"] == []
