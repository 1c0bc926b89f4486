"""Server configuration: defaults, then a TOML file, then environment, then flags.

Every setting has one name used in all three places: ``max_pixels`` in the
file, ``PAINTWIRE_MAX_PIXELS`` in the environment, ``--max-pixels`` on the
command line. The file stays flat (docs/configuration.md); in Python the
settings are grouped into sections, and each part of the server is handed the
section it uses: the app the network, connections, sessions and the queue the
limits, the history service the history, the diffusers engine the device and
the models. ``SETTINGS`` maps each setting's name to its section and field.
"""

from __future__ import annotations

import argparse
import logging
import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from paintwire.protocol.addresses import is_loopback_host

log = logging.getLogger(__name__)

DEFAULT_PORT = 7878


# PAINTWIRE_* variables that are not server settings: the file's own location,
# and the URL that the CLI and the plug-ins read (a user may export it in the
# same shell that starts the server). PAINTWIRE_TOKEN serves both sides.
NOT_SERVER_SETTINGS = frozenset({"PAINTWIRE_CONFIG", "PAINTWIRE_URL"})


# The GPU settings' vocabularies (the diffusers engine reads them from here).
PRECISIONS = ("auto", "fp16", "bf16", "fp32")
OFFLOADS = ("auto", "none", "model", "sequential")
SWITCHES = ("auto", "on", "off")


class ConfigError(Exception):
    """A setting is wrong; the message says which and how to fix it."""


def _named(setting: str, default: Any) -> Any:
    """A field whose setting has another name than the field (the section's own name)."""
    return field(default=default, metadata={"setting": setting})


@dataclass
class NetworkConfig:
    """Where the server listens and who may connect."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # Required for any address other than loopback; sent by clients in hello
    # and as "Authorization: Bearer" on HTTP.
    token: str | None = None
    # Browser pages may not connect unless their Origin is listed here.
    allowed_origins: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, got {self.port}.")

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)


@dataclass
class LimitsConfig:
    """What one message, job, client and the whole server may take."""

    # 8192x8192 covers large print canvases; raw RGBA of that is 256 MiB.
    max_pixels: int = 8192 * 8192
    max_message_bytes: int = 8192 * 8192 * 5 + (1 << 20)  # image + mask + headers
    max_queued_per_client: int = 16
    max_queued_total: int = 256
    # Caps on the engines' own parameter ranges (steps, batch size): they bound
    # how long one job can hold the device and how much memory it can ask for.
    max_steps: int = 150
    max_batch: int = 8
    previews_per_second: float = 4.0
    # Sending: over this many unsent bytes a client's next job waits until it
    # reads (one result may exceed it; see docs/security.md for the bound), and
    # a client whose socket takes no byte for send_timeout seconds is dropped.
    max_unsent_bytes: int = 64 << 20
    send_timeout: float = 60.0
    # Connections: the websocket upgrade and the hello must both come within
    # hello_timeout seconds; more connections than these limits are refused.
    hello_timeout: float = 10.0
    max_connections: int = 256
    max_connections_per_address: int = 32

    def validate(self) -> None:
        if self.max_pixels < 1 or self.max_message_bytes < 1024:
            raise ConfigError("max_pixels and max_message_bytes must be positive (max_message_bytes at least 1024).")
        if self.max_queued_per_client < 1 or self.max_queued_total < 1:
            raise ConfigError("queue limits must be at least 1.")
        if self.max_steps < 1 or self.max_batch < 1:
            raise ConfigError("max_steps and max_batch must be at least 1.")
        if self.previews_per_second < 0:
            raise ConfigError("previews_per_second must be 0 (off) or more.")
        if self.max_unsent_bytes < 0 or self.send_timeout <= 0 or self.hello_timeout <= 0:
            raise ConfigError("max_unsent_bytes must be 0 or more, send_timeout and hello_timeout more than 0.")
        if self.max_connections < 1 or self.max_connections_per_address < 1:
            raise ConfigError("max_connections and max_connections_per_address must be at least 1.")


@dataclass
class HistoryConfig:
    """The history of results (docs/history.md): off means nothing is written. Its folder
    (empty: the user's data folder), and its limits: beyond either, the oldest unstarred
    results go first; 0 means no limit of that kind."""

    enabled: bool = _named("history", True)
    history_dir: str | None = None
    history_max_count: int = 10000
    history_max_gb: float = 5.0

    def validate(self) -> None:
        if self.history_max_count < 0 or self.history_max_gb < 0:
            raise ConfigError("history_max_count and history_max_gb must be 0 (no limit) or more.")


@dataclass
class DeviceConfig:
    """Which device the models run on, and how they use it."""

    name: str = _named("device", "auto")  # auto, cuda, cuda:N, mps or cpu
    # Device memory Paintwire may use, in GiB; 0: what is free on the device at start.
    # The warm model cache and the small-card measures (offload, VAE tiling) follow it.
    memory_budget_gb: float = 0.0
    precision: str = "auto"  # auto, fp16, bf16 or fp32 (see PRECISIONS)
    offload: str = "auto"  # auto, none, model or sequential (see OFFLOADS)
    attention_slicing: str = "auto"  # auto, on or off
    channels_last: bool = False  # UNet in channels_last memory format
    torch_compile: bool = False  # torch.compile the UNet; the first job at each size compiles

    def validate(self) -> None:
        if self.memory_budget_gb < 0:
            raise ConfigError("memory_budget_gb must be 0 (decide from the device) or more.")
        for name, allowed in (("precision", PRECISIONS), ("offload", OFFLOADS), ("attention_slicing", SWITCHES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}.")


@dataclass
class ModelsConfig:
    """Where the models are, and how often to look again."""

    # Folders scanned for models (diffusers folders, .safetensors files, LoRA,
    # embeddings, VAEs, upscalers). The Hugging Face cache is added when present.
    model_dirs: list[Path] = field(default_factory=list)
    # How often the model folders are checked for added, removed or changed models
    # (names, sizes and times only); 0 turns the check off (clients can still ask for a rescan).
    model_rescan_seconds: float = 5.0

    def validate(self) -> None:
        if self.model_rescan_seconds < 0:
            raise ConfigError("model_rescan_seconds must be 0 (off) or more.")


@dataclass
class ServerConfig:
    """The whole configuration: the sections, and the two settings of the server as a whole."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    # Engines to build: built-in names or module:Class (engines/external.py, which hands
    # such an engine this whole configuration).
    engines: list[str] = field(default_factory=lambda: ["classical", "diffusers"])
    # Where the log goes: empty for the terminal (stderr), or a file to append to.
    log_file: str | None = None

    def validate(self) -> None:
        for section in SECTIONS:
            getattr(self, section).validate()


SECTIONS = ("network", "limits", "history", "device", "models")


@dataclass(frozen=True)
class Setting:
    """Where a setting of the file, the environment and the flags lives in ServerConfig."""

    section: str | None  # None: a field of ServerConfig itself
    attribute: str
    type: str  # the field's annotation, as written


def _settings() -> dict[str, Setting]:
    out: dict[str, Setting] = {}
    for top in dataclasses.fields(ServerConfig):
        if top.name in SECTIONS:
            for f in dataclasses.fields(top.default_factory):  # type: ignore[misc]
                out[f.metadata.get("setting", f.name)] = Setting(top.name, f.name, str(f.type))
        else:
            out[top.name] = Setting(None, top.name, str(top.type))
    return out


SETTINGS = _settings()


def _coerce(name: str, value: Any) -> Any:
    kind = SETTINGS[name].type
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind == "list[Path]":
            items = value.split(os.pathsep) if isinstance(value, str) else list(value)
            return [Path(v).expanduser() for v in items if str(v)]
        if kind == "list[str]":
            return [v for v in (value.split(",") if isinstance(value, str) else value) if v]
        return None if value in ("", None) else str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"Setting {name!r} has a bad value {value!r}.") from None


def _apply(config: ServerConfig, values: Mapping[str, Any], source: str) -> None:
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in SETTINGS:
            raise ConfigError(f"Unknown setting {key!r} in {source}; known: {', '.join(sorted(SETTINGS))}.")
        setting = SETTINGS[name]
        target = getattr(config, setting.section) if setting.section else config
        setattr(target, setting.attribute, _coerce(name, value))


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> ServerConfig:
    """Build the configuration from its three sources, later ones winning."""
    config = ServerConfig()
    env = os.environ if env is None else env
    path = path or (Path(env["PAINTWIRE_CONFIG"]) if env.get("PAINTWIRE_CONFIG") else None)
    if path is not None:
        try:
            with open(path, "rb") as f:
                _apply(config, tomllib.load(f), str(path))
        except OSError as exc:
            raise ConfigError(f"Cannot read the configuration file {path}: {exc.strerror}.") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"The configuration file {path} is not valid TOML: {exc}.") from None
    settings = {k[len("PAINTWIRE_"):].lower(): v for k, v in env.items() if k.startswith("PAINTWIRE_") and k not in NOT_SERVER_SETTINGS}
    for name in [n for n in settings if n not in SETTINGS]:
        # An environment carries variables for many programs: warn, do not refuse to start.
        log.warning("ignoring PAINTWIRE_%s: not a server setting (known: %s)", name.upper(), ", ".join(sorted(SETTINGS)))
        del settings[name]
    _apply(config, settings, "the environment")
    _apply(config, {k: v for k, v in (overrides or {}).items() if v is not None}, "the command line")
    config.validate()
    return config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The serve command's flags; each overrides the file and the environment."""
    parser.add_argument("--config", type=Path, help="TOML configuration file (also PAINTWIRE_CONFIG)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1; any other needs a token)")
    parser.add_argument("--port", type=int, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--token", help="token clients must send; generated when listening beyond loopback without one")
    parser.add_argument("--model-dir", dest="model_dirs", action="append", help="folder to scan for models (repeatable)")
    parser.add_argument("--device", help="auto, cuda, cuda:N, mps or cpu (default auto)")
    parser.add_argument("--max-pixels", type=int, help="largest image accepted, in pixels")
    parser.add_argument("--max-queued-per-client", type=int, help="jobs one client may have waiting")
    parser.add_argument("--max-steps", type=int, help="most sampling steps a job may ask for (default 150)")
    parser.add_argument("--max-batch", type=int, help="most images one job may ask for (default 8)")
    parser.add_argument("--engines", help="comma-separated engines to load (default classical,diffusers)")
    parser.add_argument("--history", dest="history", action=argparse.BooleanOptionalAction, default=None,
                        help="record every result in the history (default on; --no-history writes nothing)")
    parser.add_argument("--history-dir", dest="history_dir", help="the history's folder (default: the user's data folder)")
    parser.add_argument("--log-file", dest="log_file", help="append the log to this file instead of the terminal")
    parser.add_argument("--precision", choices=PRECISIONS, help="dtype models run in (default auto: bf16 or fp16 on a GPU, fp32 on the CPU; bf16 or fp16 on a CPU is timed at start and a slow one warned about)")
    parser.add_argument("--offload", choices=OFFLOADS, help="keep weights in RAM and move them to the GPU as needed (default auto: on small cards)")
    parser.add_argument("--memory-budget-gb", dest="memory_budget_gb", type=float, help="device memory Paintwire may use, in GiB (default: what is free at start)")


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name, None) for name in SETTINGS if getattr(args, name, None) is not None}
