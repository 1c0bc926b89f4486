"""The Krita docker's state, without Krita: settings, mode/model choice,
request settings, jobs and history (plugins/krita/paintwire_krita/state.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "krita"))

from paintwire_krita import state as st  # noqa: E402  (imports without Krita: no docker is registered)

from paintwire.hostkit.history import MAX_HISTORY, History, HistoryEntry  # noqa: E402
from paintwire.hostkit.placement import place_result  # noqa: E402
from paintwire.hostkit.request import JobSettings  # noqa: E402
from paintwire.hostkit.sources import InputSource  # noqa: E402
from paintwire.protocol import DEFAULT_URL, ImagePayload, Layer, PixelFormat, Result  # noqa: E402

from test_hostkit import BOTH, CLASSICAL, caps  # noqa: E402

MODE = CLASSICAL.mode("inpaint")


def test_settings_round_trip_through_json():
    s = st.PanelSettings(url="ws://host:1/ws", token="t", mode="img2img", choice="diffusers/m", resize_target="new_document",
                         values={"img2img": {"seed": 3}}, prompts={"prompt": "a fox"})
    assert st.PanelSettings.from_json(s.to_json()) == s


@pytest.mark.parametrize("text", [None, "", "not json", "[1, 2]", '{"url": 5, "mode": 7, "input_source": "x"}'])
def test_unreadable_settings_fall_back_to_defaults(text):
    s = st.PanelSettings.from_json(text)
    assert s.url == DEFAULT_URL and s.mode == "" and s.input_source == InputSource.VISIBLE


def test_connecting_picks_an_offered_mode_and_model():
    state = st.PanelState(st.PanelSettings(mode="txt2img"))
    assert not state.connected and state.modes() == [] and state.current_mode() is None
    state.set_capabilities(caps(CLASSICAL), "paintwire/0.1.0")
    assert state.connected and state.settings.mode == "inpaint"  # no engine generates here
    assert state.current_choice().key == "classical/"
    assert state.current_mode().name == "inpaint"


def test_switching_mode_keeps_the_engine_when_it_can():
    state = st.PanelState()
    state.set_capabilities(BOTH)
    state.set_choice("diffusers/tiny-sd15")
    state.set_mode("upscale")  # only the classical engine upscales
    assert state.current_choice().key == "classical/opencv"
    state.set_choice("diffusers/tiny-sd15")  # not offered for upscale: ignored
    assert state.current_choice().key == "classical/opencv"
    state.settings.choice = "diffusers/tiny-sd15"
    state.set_mode("img2img")
    assert state.current_choice().key == "diffusers/tiny-sd15"
    with pytest.raises(ValueError):
        state.set_mode("paint-by-numbers")  # not a mode this server offers


def test_values_are_kept_per_mode_and_the_prompt_across_modes():
    state = st.PanelState()
    state.set_capabilities(BOTH)
    state.set_mode("img2img")
    state.set_choice("diffusers/tiny-sd15")
    assert state.value("strength") == 0.75  # the server's default
    state.set_value("prompt", "a fox")
    state.set_value("strength", 0.3)
    state.set_mode("txt2img")
    js = state.job_settings()
    assert (js.mode, js.engine, js.model) == ("txt2img", "diffusers", "tiny-sd15")
    assert js.params == {"prompt": "a fox"}  # strength is not a generate parameter
    state.set_mode("inpaint")
    state.set_choice("diffusers/tiny-sd15")
    assert state.value("strength") == 0.75  # refine's strength stays with refine
    state.set_mode("img2img")
    assert state.job_settings().params == {"prompt": "a fox", "strength": 0.3}
    state.set_value("strength", "lots")  # a stale value of the wrong type shows the default
    assert state.value("strength") == 0.75


def test_settings_from_an_older_plugin_are_cleaned():
    s = st.PanelSettings.from_json('{"values": {"inpaint": {"mask_blur": 3}, "refine": 5}, "prompts": {"prompt": "x", "steps": 3}}')
    assert s.values == {"inpaint": {"mask_blur": 3}} and s.prompts == {"prompt": "x"}


def test_job_settings_need_a_server():
    with pytest.raises(ValueError, match="Connect"):
        st.PanelState().job_settings()


def test_a_job_in_flight_blocks_a_second_and_ends_in_a_placement():
    state = st.PanelState()
    state.set_capabilities(BOTH)
    state.set_choice("diffusers/tiny-sd15")
    state.set_value("prompt", "a fox")
    ticket = state.start_job(state.job_settings(), document="doc", document_size=(8, 6))
    assert state.busy
    with pytest.raises(ValueError):
        state.start_job(state.job_settings(), "doc", (8, 6))
    ticket.job_id = "j1"
    result = Result("j1", (Layer(ImagePayload(2, 2, PixelFormat.BGRA8, bytes(16)), 3, 1, "Inpaint", 77),), 8, 6)
    done, placement = state.finish_job(result)
    assert done is ticket and not state.busy
    assert placement.layers[0].name == "a fox [seed 77]" and (placement.layers[0].x, placement.layers[0].y) == (3, 1)
    state.record(ticket, result, placement, thumbnail=b"PNG")
    assert state.history[0].job_id == "j1" and state.history[0].seeds == (77,)
    assert state.thumbnails["j1"] == b"PNG"


def test_a_failed_job_gives_no_placement():
    state = st.PanelState()
    state.set_capabilities(BOTH)
    state.start_job(state.job_settings(), "doc", (8, 6))
    ticket, placement = state.finish_job(None)
    assert placement is None and not state.busy and len(state.history) == 0


def test_history_settings_come_back_into_the_panel():
    state = st.PanelState()
    state.set_capabilities(BOTH)
    js = JobSettings("img2img", "diffusers", "tiny-sd15", {"prompt": "a cat", "seed": 9})
    state.apply_job_settings(js)
    assert state.settings.mode == "img2img" and state.current_choice().key == "diffusers/tiny-sd15"
    assert state.job_settings().params == {"prompt": "a cat", "seed": 9}


def test_history_json_survives_garbage():
    assert len(History.from_json("nonsense")) == 0
    assert len(History.from_json('{"a": 1}')) == 0
    history = History()
    history.add(HistoryEntry("j", JobSettings("inpaint", "classical"), (None,), ("Inpaint",), 8, 6))
    assert json.loads(history.to_json())[0]["job_id"] == "j"
    assert History.from_json(history.to_json())[0].layer_names == ("Inpaint",)


def test_document_history_round_trips_with_thumbnails_and_survives_garbage():
    for data in (None, b"", b"nonsense", b"[1]", b'{"entries": 5}', b"\xff\xfe"):
        assert len(st.history_from_bytes(data)[0]) == 0
    state = st.PanelState()
    for i in range(MAX_HISTORY + 2):  # the oldest entries and their thumbnails go
        result = Result(f"j{i}", (Layer(ImagePayload(1, 1, PixelFormat.BGRA8, bytes(4)), 0, 0, "r", i),), 8, 6)
        ticket = st.Ticket(i, JobSettings("inpaint", "classical"), MODE, "doc", (8, 6), job_id=f"j{i}")
        state.record(ticket, result, place_result(result, (8, 6)), b"PNG%d" % i)
    history, thumbnails = st.history_from_bytes(st.history_to_bytes(state.history, state.thumbnails))
    assert [e.job_id for e in history.entries] == [e.job_id for e in state.history.entries]
    assert history[0].job_id == f"j{MAX_HISTORY + 1}" and thumbnails[history[0].job_id] == b"PNG%d" % (MAX_HISTORY + 1)
    assert "j0" not in thumbnails and len(thumbnails) == MAX_HISTORY


def test_unreadable_resize_targets_fall_back_to_resizing_the_document():
    assert st.PanelSettings.from_json('{"resize_target": "sideways"}').resize_target == "resize"
    assert st.PanelSettings.from_json('{"resize_target": "new_document"}').resize_target == "new_document"


def test_a_documents_control_layers_round_trip_and_unreadable_ones_are_dropped():
    from paintwire.hostkit.controls import ControlLayer

    controls = [ControlLayer("Group/Lines", "lineart", 0.8, 0.0, 0.6), ControlLayer("Depth", "depth", enabled=False)]
    assert st.controls_from_bytes(st.controls_to_bytes(controls)) == controls
    assert st.controls_from_bytes(None) == [] and st.controls_from_bytes(b"\xff\xfe") == [] and st.controls_from_bytes(b"{}") == []
