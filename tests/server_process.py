"""Start a real Paintwire server in a child process, on a free loopback port.

Used by the integration and host tests and by the benchmarks: the server runs
exactly as a user starts it (`paintwire serve`), with a configuration file.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TESTS = str(Path(__file__).resolve().parent)
LISTENING = re.compile(r"Paintwire serving on ws://(\S+):(\d+)/ws")
READY = re.compile(r"^Paintwire ready\b")  # every engine started (the diffusers engine imports torch after binding)
START_TIMEOUT = 120.0  # importing torch for the diffusers engine is slow on a cold disk


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class ServerProcess:
    process: subprocess.Popen
    host: str
    port: int
    token: str | None = None
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log(self) -> str:
        return "".join(self.output)

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server_process(*, launcher: list[str] | None = None, cwd: str | Path | None = None, wait_ready: bool = True,
                         **config: Any) -> ServerProcess:
    """Start ``paintwire serve`` with ``config`` (settings by their names in the file, docs/configuration.md) written to a TOML file;
    ``launcher`` replaces ``python -m paintwire.cli.main`` in the command, and ``cwd`` is
    the folder it runs in (this process's by default). Returns once every engine has
    started, or with ``wait_ready`` false as soon as the server listens."""
    config.setdefault("host", "127.0.0.1")
    config.setdefault("port", 0)
    config.setdefault("engines", ["classical"])
    # Tests keep the user's history folder untouched: off unless a test asks for it (with its own history_dir).
    config.setdefault("history", False)
    fd, path = tempfile.mkstemp(prefix="paintwire-", suffix=".toml")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for key, value in config.items():
            if value is not None:
                f.write(f"{key} = {_toml_value(value)}\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    # tests/ importable, so a configuration can name test engines ("fixtures.server_only_engine:PosterizeEngine").
    env["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS, env.get("PYTHONPATH", "")) if p)
    env.pop("PAINTWIRE_CONFIG", None)
    proc = subprocess.Popen(
        [*(launcher or [sys.executable, "-m", "paintwire.cli.main"]), "serve", "--config", path, "-v"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd,
    )
    server = ServerProcess(proc, config["host"], 0, config.get("token"))
    listening, ready = threading.Event(), threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            server.output.append(line)
            match = LISTENING.search(line)
            if match and not listening.is_set():
                server.port = int(match.group(2))
                listening.set()
            if READY.search(line):
                ready.set()
        os.unlink(path)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    while not (ready if wait_ready else listening).wait(0.05):
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"paintwire serve did not start:\n{server.log()}")
    return server
