from __future__ import annotations

from pathlib import Path

import pytest

from paintwire.server.app import PaintwireServer
from paintwire.server.config import ConfigError, ServerConfig, load_config
from paintwire.server.engines.registry import build_engines


def test_defaults_bind_loopback(tmp_path):
    config = load_config(env={})
    assert config.host == "127.0.0.1" and config.port == 7878 and config.token is None


def test_file_then_environment_then_flags(tmp_path):
    path = tmp_path / "paintwire.toml"
    path.write_text('port = 9000\nmax_pixels = 1000000\nmodel_dirs = ["/models/a"]\n', encoding="utf-8")
    config = load_config(path, env={"PAINTWIRE_PORT": "9100", "PAINTWIRE_MODEL_DIRS": "/x:/y"}, overrides={"port": 9200})
    assert config.port == 9200 and config.max_pixels == 1_000_000
    assert config.model_dirs == [Path("/x"), Path("/y")]


@pytest.mark.parametrize(
    "content, needle",
    [("prot = 1\n", "Unknown setting 'prot'"), ("port = [\n", "not valid TOML"), ("port = 'abc'\n", "bad value")],
)
def test_bad_files_get_clear_errors(tmp_path, content, needle):
    path = tmp_path / "c.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=needle):
        load_config(path, env={})


def test_a_missing_file_is_named():
    with pytest.raises(ConfigError, match="Cannot read the configuration file"):
        load_config(Path("/nonexistent/paintwire.toml"), env={})


def test_listening_beyond_loopback_generates_a_token():
    server = PaintwireServer(ServerConfig(host="0.0.0.0", engines=["classical"]))
    assert server.generated_token and len(server.config.token) >= 24
    local = PaintwireServer(ServerConfig(engines=["classical"]))
    assert local.config.token is None and not local.generated_token


def test_client_variables_in_the_environment_are_not_server_settings():
    config = load_config(env={"PAINTWIRE_URL": "ws://gpu-box:7878/ws", "PAINTWIRE_TOKEN": "t"})
    assert config.token == "t"
    # Other unknown variables are ignored with a warning; a bad value of a known one still stops the server.
    assert load_config(env={"PAINTWIRE_COLOUR": "blue"}).port == 7878
    with pytest.raises(ConfigError, match="bad value"):
        load_config(env={"PAINTWIRE_PORT": "seventy"})


def test_capabilities_say_when_an_engine_has_no_usable_model(tmp_path):
    pytest.importorskip("diffusers")
    config = ServerConfig(engines=["classical", "diffusers"], model_dirs=[tmp_path], device="cpu")
    starting = {e.name: e for e in PaintwireServer(config).capabilities.engines}
    assert starting["diffusers"].starting and "starting" in starting["diffusers"].notice  # built after the server listens
    server = PaintwireServer(config, engines=build_engines(config))
    engines = {e.name: e for e in server.capabilities.engines}
    assert engines["classical"].usable and engines["classical"].notice == ""
    assert not engines["diffusers"].usable and "No Stable Diffusion model is installed" in engines["diffusers"].notice
    assert str(tmp_path) in engines["diffusers"].notice
    assert server.capabilities.to_wire()["engines"][1]["notice"] == engines["diffusers"].notice
