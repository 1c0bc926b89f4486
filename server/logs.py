"""The server's log: quiet where it should be, one line per expected problem, and a
short summary at start.

At the default level the log holds Paintwire's own warnings and errors only:
no progress bars and no warnings from the libraries underneath (diffusers,
transformers, torch), which speak to developers, not to painters. An expected
problem (a model that cannot load, a folder that is missing) is one line with
the reason; a traceback means a bug, or the debug level (PAINTWIRE_DEBUG=1) was
asked for, which also lets the libraries speak again.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from paintwire.protocol import EngineStatus

from .logtext import SafeFormatter

if TYPE_CHECKING:
    from .app import PaintwireServer

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries that log or warn at their own discretion; heard at the debug level only.
LIBRARIES = ("diffusers", "transformers", "huggingface_hub", "torch", "PIL", "urllib3", "accelerate", "py.warnings")


def debug_requested() -> bool:
    return os.environ.get("PAINTWIRE_DEBUG", "") not in ("", "0")


def configure(verbose: bool = False, log_file: str | None = None) -> str:
    """Set up logging for ``paintwire serve``; returns where the log goes, in words.
    Call it before the engines are imported: the libraries read their settings then."""
    debug = debug_requested()
    handler: logging.Handler = logging.FileHandler(log_file, encoding="utf-8") if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter(FORMAT))  # client-chosen text cannot forge a line
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING)
    quiet_libraries(debug)
    where = log_file or "the terminal"
    level = "everything (debug)" if debug else "connections and jobs" if verbose else "warnings and errors"
    return f"{where}, {level}"


def quiet_libraries(debug: bool = False) -> None:
    if not debug:
        # Read by the libraries when they are imported: no bars, only their errors.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    logging.captureWarnings(True)  # warnings.warn() goes to the py.warnings logger, quiet below
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.ERROR)


def page_url(host: str, port: int, token: str | None, generated: bool) -> str:
    """The web page's address. A generated token is printed anyway, so it goes in the
    link (the page keeps it for the tab and drops it from the address bar); a token
    the user chose is theirs to type, and is never written to the log."""
    url = f"http://{host}:{port}/"
    if token and generated:
        return f"{url}#token={token}"
    return f"{url} (open it with #token=YOUR_TOKEN at the end)" if token else url


def serving(server: "PaintwireServer", host: str, port: int) -> list[str]:
    """What the server prints the moment it listens: its address, its page, and the engines
    still starting (they are built after binding; ``ready`` follows when they are)."""
    shown = f"[{host}]" if ":" in host else host
    lines = [f"Paintwire serving on ws://{shown}:{port}/ws (health: http://{shown}:{port}/health)"]
    lines.append("  page: " + page_url(shown, port, server.network.token, server.generated_token))
    starting = [e.name for e in server.engines if e.status() == EngineStatus.STARTING]
    if starting:
        lines.append(f"  starting: {', '.join(starting)} (clients can connect meanwhile; they are told when it is ready)")
    return lines


def ready(server: "PaintwireServer", log_where: str, seconds: float) -> list[str]:
    """The summary once every engine has started: engines, models, device, log."""
    lines = [f"Paintwire ready ({seconds:.1f} s after it started listening)"]
    lines.append("  engines: " + ", ".join(f"{e.name} ({', '.join(m.name for m in e.modes())})" for e in server.engines))
    with_folders = [e for e in server.engines if e.model_folders()]
    models = [m for e in with_folders for m in e.models()]
    usable = [m for m in models if m.usable]
    folders = sorted({str(f) for e in with_folders for f in e.model_folders()})
    line = f"  models: {len(usable)} found" + (f" in {', '.join(folders)}" if folders else " (no model folders: --model-dir)")
    if len(usable) < len(models):
        line += f"; {len(models) - len(usable)} cannot be used (the log and 'paintwire info' say why)"
    if folders and server.model_watch.interval > 0:
        line += "; watched for changes"
    lines.append(line)
    devices = [d for e in server.engines if (d := e.device_label())]
    lines.append(f"  device: {', '.join(devices) if devices else 'cpu'}")
    lines += [f"  memory: {line}" for e in server.engines for line in e.memory_lines()]
    lines.append(f"  log: {log_where}")
    return lines
