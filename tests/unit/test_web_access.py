"""The origin rules that admit the server's own page (server/access.py)."""

from __future__ import annotations

import pytest

from paintwire.server.access import from_another_site, is_own_origin


@pytest.mark.parametrize(
    "origin, host, own",
    [
        ("http://127.0.0.1:7878", "127.0.0.1:7878", True),
        ("https://paint.example", "paint.example", True),  # behind a TLS proxy
        ("HTTP://LOCALHOST:7878", "localhost:7878", True),
        ("http://127.0.0.1:7879", "127.0.0.1:7878", False),  # another port is another origin
        ("http://localhost:7878", "127.0.0.1:7878", False),
        ("http://127.0.0.1:7878.evil.example", "127.0.0.1:7878", False),
        ("null", "127.0.0.1:7878", False),
        ("", "127.0.0.1:7878", False),
        ("http://127.0.0.1:7878", "", False),
        ("ws://127.0.0.1:7878", "127.0.0.1:7878", False),
    ],
)
def test_own_origin(origin: str, host: str, own: bool) -> None:
    assert is_own_origin(origin, host) is own


@pytest.mark.parametrize(
    "headers, refused",
    [
        ({}, False),  # not a browser
        ({"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}, False),
        ({"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}, False),  # typed into the address bar
        ({"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}, False),  # a link to the page
        ({"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}, True),  # an <img> on another site
        ({"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors"}, True),  # another port of this host
        ({"Sec-Fetch-Site": "cross-site"}, True),
    ],
)
def test_from_another_site(headers: dict[str, str], refused: bool) -> None:
    assert from_another_site(headers) is refused
