"""Who may talk to the server: the one token check, and the origin rules.

HTTP routes and websocket hellos both come here, so there is exactly one
comparison of a token; "this machine" is paintwire.protocol.addresses.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Mapping

from aiohttp import web

from paintwire.protocol.addresses import is_loopback_host


def token_matches(given: str | None, expected: str | None) -> bool:
    """A constant-time comparison; False when either side has no token."""
    if not given or not expected:
        return False
    # Compare bytes: compare_digest raises TypeError on non-ASCII str, and header
    # values may carry undecodable bytes as surrogates.
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape"))


def request_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The token of an HTTP request: 'Authorization: Bearer ...' or ?token=."""
    auth = headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[len("Bearer "):].strip()
    return query.get("token")


@dataclass(frozen=True)
class AccessPolicy:
    """The server's rules for a request, from its configuration."""

    token: str | None
    loopback_only: bool  # bound to a loopback address
    allowed_origins: tuple[str, ...]

    def authorized(self, token: str | None) -> bool:
        """Whether a client presenting ``token`` may use the server."""
        return self.token is None or token_matches(token, self.token)

    def check_origin(self, request: web.Request) -> None:
        """Raises HTTPForbidden for a browser page that may not drive this server.
        The server's own page (same scheme-less host and port as the request) is
        always admitted; other pages only when listed in ``allowed_origins``."""
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self.allowed_origins and not is_own_origin(origin, request.host):
            raise web.HTTPForbidden(text=f"Origin {origin} is not allowed; add it to allowed_origins in the configuration.\n")
        if origin is None and from_another_site(request.headers):
            raise web.HTTPForbidden(text="A page of another site may not load this server's data; open the server's own page.\n")
        if self.loopback_only and not self.token and not is_loopback_host(request.url.host or ""):
            # DNS rebinding: a page whose name was made to resolve to 127.0.0.1 is
            # same-origin with this server, and browsers send no Origin on its GETs.
            raise web.HTTPForbidden(text="This server answers only to localhost and loopback addresses (or set a token).\n")

    def check_request(self, request: web.Request) -> None:
        """The origin rules, then the token: for the HTTP routes that need one."""
        self.check_origin(request)
        if not self.authorized(request_token(request.headers, request.query)):
            raise web.HTTPUnauthorized(text="This server needs a token: send 'Authorization: Bearer <token>'.\n")


def from_another_site(headers: Mapping[str, str]) -> bool:
    """A browser's request made by a page of another site that carries no Origin:
    browsers leave Origin out of plain GETs (an <img>, a no-cors fetch) but mark
    every request with Sec-Fetch-Site. Following a link (a navigation) is allowed;
    clients that are not browsers send neither header."""
    return headers.get("Sec-Fetch-Site") in ("cross-site", "same-site") and headers.get("Sec-Fetch-Mode") != "navigate"


def is_own_origin(origin: str, host: str) -> bool:
    """Whether ``origin`` is the page this server serves at ``host`` (the request's
    Host header, with its port). Either scheme: behind a TLS proxy the page is
    https while the server sees plain HTTP. A page whose name was rebound to this
    machine also matches, which is why the Host rule and the token still apply."""
    if not host or origin in ("null", ""):
        return False
    origin = origin.lower()
    host = host.lower()
    return origin in (f"http://{host}", f"https://{host}")
