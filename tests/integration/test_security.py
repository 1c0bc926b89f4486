"""Access control of the real server: loopback by default, the token at the
handshake, in hello and on HTTP, and browser Origin checks (docs/security.md)."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from paintwire.protocol import Client, ClientConnection, Error, ErrorCode, JobFailed, Welcome
from paintwire.server.app import PaintwireServer
from paintwire.server.config import NetworkConfig, ServerConfig, load_config

TOKEN = "s3cret-token-for-tests"


def open_ws(url: str, **options: Any):
    return connect(url, legacy=True, compression=None, proxy=None, open_timeout=10, **options)


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def hello(url: str, token: str | None = None, **options: Any) -> Any:
    """Open a connection, send hello, return the server's answer."""
    conn = ClientConnection()
    with open_ws(url, **options) as ws:
        ws.send(conn.hello("security-test/1", token))
        return conn.receive(ws.recv(timeout=10))


# --- binding and the generated token -------------------------------------------------------


def test_default_is_loopback_without_token():
    config = load_config(env={})
    assert config.network.host == "127.0.0.1" and config.network.token is None
    server = PaintwireServer(config, engines=[])
    assert not server.generated_token and config.network.token is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.20", "127.example.org"])
def test_any_other_address_gets_a_generated_token(host):
    # Built, not started: nothing listens beyond loopback during the tests.
    config = ServerConfig(NetworkConfig(host=host))
    server = PaintwireServer(config, engines=[])
    assert server.generated_token
    assert config.network.token and len(config.network.token) >= 32


def test_a_configured_token_is_kept():
    config = ServerConfig(NetworkConfig(host="0.0.0.0", token=TOKEN))
    server = PaintwireServer(config, engines=[])
    assert not server.generated_token and config.network.token == TOKEN


def test_loopback_server_serves_without_token(live_server):
    assert isinstance(hello(live_server.url), Welcome)
    assert http_get(f"{live_server.http}/info")[0] == 200


# --- the token ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_server():
    from server_process import start_server_process

    server = start_server_process(token=TOKEN, allowed_origins=["http://allowed.example"])
    yield server
    server.stop()


def test_hello_without_or_with_a_wrong_token_is_refused(token_server):
    for token in (None, "wrong", "é-non-ascii", "x" * 190):
        answer = hello(token_server.url, token)
        assert isinstance(answer, Error) and answer.code is ErrorCode.UNAUTHORIZED, (token, answer)


def test_hello_with_the_token_is_welcomed(token_server):
    assert isinstance(hello(token_server.url, TOKEN), Welcome)
    with Client(token_server.url, token=TOKEN) as client:
        assert client.capabilities.engines


def test_client_reports_unauthorized(token_server):
    with pytest.raises(JobFailed) as info:
        Client(token_server.url, token="wrong").connect()
    assert info.value.error.code is ErrorCode.UNAUTHORIZED


def test_token_at_the_handshake(token_server):
    # A right token in the handshake authorises the connection; hello needs none then.
    assert isinstance(hello(token_server.url, additional_headers={"Authorization": f"Bearer {TOKEN}"}), Welcome)
    assert isinstance(hello(token_server.url + f"?token={TOKEN}"), Welcome)
    # A wrong one is refused before the websocket opens.
    for headers, suffix in (({"Authorization": "Bearer wrong"}, ""), ({}, "?token=wrong"), ({"Authorization": "Bearer é"}, "")):
        with pytest.raises(InvalidStatus) as info:
            with open_ws(token_server.url + suffix, additional_headers=headers):
                pass
        assert info.value.response.status_code == 401


def test_http_info_needs_the_token(token_server):
    assert http_get(f"{token_server.http}/info")[0] == 401
    assert http_get(f"{token_server.http}/info", {"Authorization": "Bearer wrong"})[0] == 401
    assert http_get(f"{token_server.http}/info?token=%C3%A9")[0] == 401  # non-ASCII: refused, not a crash
    status, body = http_get(f"{token_server.http}/info", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and "capabilities" in body and TOKEN not in body
    assert http_get(f"{token_server.http}/info?token={TOKEN}")[0] == 200
    # /health says only that the server is up and which protocol it speaks.
    status, body = http_get(f"{token_server.http}/health")
    assert status == 200 and TOKEN not in body


def test_server_log_does_not_show_a_configured_token(token_server):
    hello(token_server.url, "wrong")
    assert TOKEN not in token_server.log()


# --- browser origins ---------------------------------------------------------------------


def test_unlisted_origin_is_refused(live_server, token_server):
    for server in (live_server, token_server):
        with pytest.raises(InvalidStatus) as info:
            with open_ws(server.url, origin="http://evil.example"):
                pass
        assert info.value.response.status_code == 403
        for path in ("/info", "/health"):
            assert http_get(f"{server.http}{path}", {"Origin": "http://evil.example"})[0] == 403
    # "null" is what sandboxed iframes and file:// pages send.
    assert http_get(f"{live_server.http}/info", {"Origin": "null"})[0] == 403


def test_listed_origin_is_allowed_but_still_needs_the_token(token_server):
    answer = hello(token_server.url, TOKEN, origin="http://allowed.example")
    assert isinstance(answer, Welcome)
    answer = hello(token_server.url, None, origin="http://allowed.example")
    assert isinstance(answer, Error) and answer.code is ErrorCode.UNAUTHORIZED


# --- DNS rebinding and proxies -----------------------------------------------------------


def test_loopback_server_without_token_answers_only_to_loopback_names(live_server, token_server):
    port = live_server.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"paintwire.localhost:{port}"):
        assert http_get(f"{live_server.http}/info", {"Host": host})[0] == 200, host
    # A name rebound to 127.0.0.1 by a web page's DNS: same-origin for the browser, refused here.
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
        assert http_get(f"{live_server.http}/info", {"Host": host})[0] == 403, host
        assert http_get(f"{live_server.http}/health", {"Host": host})[0] == 403, host
    # With a token the token decides (a reverse proxy may forward its own Host).
    status, _ = http_get(f"{token_server.http}/info", {"Host": "proxy.example", "Authorization": f"Bearer {TOKEN}"})
    assert status == 200


def test_client_goes_direct_to_a_loopback_server_whatever_the_proxy_settings(live_server, monkeypatch):
    # A proxy that is not there: a client that used it could not connect.
    for name in ("https_proxy", "http_proxy", "all_proxy", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with Client(live_server.url) as client:
        assert client.capabilities.engines
