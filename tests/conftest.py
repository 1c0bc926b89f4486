"""Shared fixtures: a real server in a child process, and small test images."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ helpers importable as plain modules

from server_process import ServerProcess, start_server_process  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    """A factory: ``start_server(**config)`` starts a server with those settings;
    every server started is stopped after the test, and must exit cleanly."""
    started: list[ServerProcess] = []

    def start(**config: Any) -> ServerProcess:
        server = start_server_process(**config)
        started.append(server)
        return server

    yield start
    for server in started:
        code = server.stop()
        assert code == 0, f"server exited with {code}:\n{server.log()}"


@pytest.fixture(scope="session")
def live_server() -> Iterator[ServerProcess]:
    """One classical-engine server shared by the tests of a session."""
    server = start_server_process()
    yield server
    server.stop()


# The history's default folder is under XDG_DATA_HOME: tests that start a server in this
# process (or a child) without naming history_dir write there, never into the user's folder.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="paintwire-test-data-")
