from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from paintwire.server.app import PaintwireServer
from paintwire.server.config import (SETTINGS, ConfigError, DeviceConfig, HistoryConfig, LimitsConfig, ModelsConfig, NetworkConfig,
                                     ServerConfig, load_config)
from paintwire.server.engines.registry import build_engines


def test_defaults_bind_loopback(tmp_path):
    config = load_config(env={})
    assert config.network.host == "127.0.0.1" and config.network.port == 7878 and config.network.token is None


def test_file_then_environment_then_flags(tmp_path):
    path = tmp_path / "paintwire.toml"
    path.write_text('port = 9000\nmax_pixels = 1000000\nmodel_dirs = ["/models/a"]\n', encoding="utf-8")
    config = load_config(path, env={"PAINTWIRE_PORT": "9100", "PAINTWIRE_MODEL_DIRS": "/x:/y"}, overrides={"port": 9200})
    assert config.network.port == 9200 and config.limits.max_pixels == 1_000_000
    assert config.models.model_dirs == [Path("/x"), Path("/y")]


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
    server = PaintwireServer(ServerConfig(NetworkConfig(host="0.0.0.0"), engines=["classical"]))
    assert server.generated_token and len(server.network.token) >= 24
    local = PaintwireServer(ServerConfig(engines=["classical"]))
    assert local.network.token is None and not local.generated_token


def test_client_variables_in_the_environment_are_not_server_settings():
    config = load_config(env={"PAINTWIRE_URL": "ws://gpu-box:7878/ws", "PAINTWIRE_TOKEN": "t"})
    assert config.network.token == "t"
    # Other unknown variables are ignored with a warning; a bad value of a known one still stops the server.
    assert load_config(env={"PAINTWIRE_COLOUR": "blue"}).network.port == 7878
    with pytest.raises(ConfigError, match="bad value"):
        load_config(env={"PAINTWIRE_PORT": "seventy"})


def test_capabilities_say_when_an_engine_has_no_usable_model(tmp_path):
    pytest.importorskip("diffusers")
    config = ServerConfig(device=DeviceConfig(name="cpu"), models=ModelsConfig(model_dirs=[tmp_path]), engines=["classical", "diffusers"])
    starting = {e.name: e for e in PaintwireServer(config).capabilities.engines}
    assert starting["diffusers"].starting and "starting" in starting["diffusers"].notice  # built after the server listens
    server = PaintwireServer(config, engines=build_engines(config))
    engines = {e.name: e for e in server.capabilities.engines}
    assert engines["classical"].usable and engines["classical"].notice == ""
    assert not engines["diffusers"].usable and "No Stable Diffusion model is installed" in engines["diffusers"].notice
    assert str(tmp_path) in engines["diffusers"].notice
    assert server.capabilities.to_wire()["engines"][1]["notice"] == engines["diffusers"].notice
    # The engine holds the two sections it was given, not the whole configuration.
    diffusers = server.engines_by_name["diffusers"]
    assert diffusers.device_config is config.device and diffusers.models_config is config.models


# --- the sections ------------------------------------------------------------------------


def test_every_setting_has_one_place_in_a_section():
    """The flat names of the file, the environment and the flags each land in one field,
    and every field of every section is reachable by one setting."""
    places = {(s.section, s.attribute) for s in SETTINGS.values()}
    assert len(places) == len(SETTINGS)
    sections = {"network": NetworkConfig, "limits": LimitsConfig, "history": HistoryConfig, "device": DeviceConfig, "models": ModelsConfig}
    fields = {(name, f.name) for name, cls in sections.items() for f in dataclasses.fields(cls)}
    assert places == fields | {(None, "engines"), (None, "log_file")}
    # The two settings named after their section keep their names outside Python.
    assert (SETTINGS["history"].section, SETTINGS["history"].attribute) == ("history", "enabled")
    assert (SETTINGS["device"].section, SETTINGS["device"].attribute) == ("device", "name")


def test_a_flat_file_fills_the_sections(tmp_path):
    path = tmp_path / "paintwire.toml"
    path.write_text('host = "0.0.0.0"\ntoken = "s"\nmax_steps = 40\nhistory = false\nhistory_max_gb = 1.5\n'
                    'device = "cpu"\nprecision = "fp32"\nmodel_rescan_seconds = 0\nengines = ["classical"]\n', encoding="utf-8")
    config = load_config(path, env={"PAINTWIRE_OFFLOAD": "model"}, overrides={"history_dir": "/h", "max_batch": 3})
    assert config.network == NetworkConfig(host="0.0.0.0", token="s")
    assert (config.limits.max_steps, config.limits.max_batch) == (40, 3)
    assert config.history == HistoryConfig(enabled=False, history_dir="/h", history_max_gb=1.5)
    assert config.device == DeviceConfig(name="cpu", precision="fp32", offload="model")
    assert config.models == ModelsConfig(model_rescan_seconds=0.0)
    assert config.engines == ["classical"] and config.log_file is None


def test_each_section_validates_its_own_settings():
    for section, message in ((NetworkConfig(port=70000), "port"), (LimitsConfig(max_steps=0), "max_steps"),
                             (HistoryConfig(history_max_count=-1), "history_max_count"), (DeviceConfig(precision="half"), "precision"),
                             (ModelsConfig(model_rescan_seconds=-1), "model_rescan_seconds")):
        with pytest.raises(ConfigError, match=message):
            section.validate()
        name = {NetworkConfig: "network", LimitsConfig: "limits", HistoryConfig: "history", DeviceConfig: "device", ModelsConfig: "models"}[type(section)]
        with pytest.raises(ConfigError, match=message):
            ServerConfig(**{name: section}).validate()


def test_each_part_of_the_server_gets_its_section(tmp_path):
    config = ServerConfig(NetworkConfig(port=0), LimitsConfig(max_pixels=4096, max_connections=3, previews_per_second=2.0),
                          HistoryConfig(enabled=False, history_dir=str(tmp_path)), models=ModelsConfig(model_rescan_seconds=7.0),
                          engines=["classical"])
    server = PaintwireServer(config)
    assert server.network is config.network and server.limits is config.limits
    assert server.history.config is config.history
    assert server.model_watch.interval == 7.0
    assert (server.guard.max_total, server.guard.max_per_address, server.guard.handshake_timeout) == (3, 32, 10.0)
    assert server.capabilities.limits.max_pixels == 4096
    server.history.open()
    assert server.history.store is None  # history = false: nothing opened, nothing written
    assert not any(tmp_path.iterdir())


def test_an_engine_of_another_package_gets_the_whole_configuration():
    config = ServerConfig(engines=["tests.fixtures.hold_engine:HoldEngine"])
    [engine] = build_engines(config)
    assert engine.config is config
