"""The Krita docker's state, without Krita: settings, mode/model choice,
request settings, jobs and history (plugins/krita/paintwire_krita/state.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "krita"))

from paintwire_krita import state as st  # noqa: E402  (imports without Krita: no docker is registered)

from paintwire.protocol import DEFAULT_URL, ImagePayload, Layer, PixelFormat, Result  # noqa: E402
from paintwire.protocol import workflow as wf  # noqa: E402

from test_workflow import BOTH, CLASSICAL, caps  # noqa: E402


def test_settings_round_trip_through_json():
    s = st.PanelSettings(url="ws://host:1/ws", token="t", ui_mode="refine", choice="diffusers/m", resize_target="new_document",
                         values={"refine": {"seed": 3}}, prompts={"prompt": "a fox"})
    assert st.PanelSettings.from_json(s.to_json()) == s


@pytest.mark.parametrize("text", [None, "", "not json", "[1, 2]", '{"url": 5, "ui_mode": "nonsense", "input_source": "x"}'])
def test_unreadable_settings_fall_back_to_defaults(text):
    s = st.PanelSettings.from_json(text)
    assert s.url == DEFAULT_URL and s.ui_mode == "inpaint" and s.input_source == st.INPUT_VISIBLE


def test_connecting_picks_an_offered_mode_and_model():
    state = st.PanelState(st.PanelSettings(ui_mode="generate"))
    assert not state.connected and state.modes() == [] and state.current_mode() is None
    state.set_capabilities(caps(CLASSICAL), "paintwire/0.1.0")
    assert state.connected and state.settings.ui_mode == "inpaint"  # no engine generates here
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
    state.set_mode("refine")
    assert state.current_choice().key == "diffusers/tiny-sd15"
    with pytest.raises(ValueError):
        state.set_mode("paint-by-numbers")


def test_values_are_kept_per_mode_and_the_prompt_across_modes():
    state = st.PanelState()
    state.set_capabilities(BOTH)
    state.set_mode("refine")
    state.set_choice("diffusers/tiny-sd15")
    assert state.value("strength") == 0.75  # the server's default
    state.set_value("prompt", "a fox")
    state.set_value("strength", 0.3)
    state.set_mode("generate")
    js = state.job_settings()
    assert (js.ui_mode, js.engine, js.model) == ("generate", "diffusers", "tiny-sd15")
    assert js.params == {"prompt": "a fox"}  # strength is not a generate parameter
    state.set_mode("inpaint")
    state.set_choice("diffusers/tiny-sd15")
    assert state.value("strength") == 0.75  # refine's strength stays with refine
    state.set_mode("refine")
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
    assert state.history.history[0].job_id == "j1" and state.history.history[0].seeds == (77,)
    assert state.history.thumbnail(state.history.history[0]) == b"PNG"


def test_a_failed_job_gives_no_placement():
    state = st.PanelState()
    state.set_capabilities(BOTH)
    state.start_job(state.job_settings(), "doc", (8, 6))
    ticket, placement = state.finish_job(None)
    assert placement is None and not state.busy and len(state.history.history) == 0


def test_history_settings_come_back_into_the_panel():
    state = st.PanelState()
    state.set_capabilities(BOTH)
    js = wf.JobSettings("refine", "diffusers", "tiny-sd15", {"prompt": "a cat", "seed": 9})
    state.apply_job_settings(js)
    assert state.settings.ui_mode == "refine" and state.current_choice().key == "diffusers/tiny-sd15"
    assert state.job_settings().params == {"prompt": "a cat", "seed": 9}


def test_document_history_round_trips_with_thumbnails_and_survives_garbage():
    for data in (None, b"", b"nonsense", b"[1]", b'{"entries": 5}', b"\xff\xfe"):
        assert len(st.DocumentHistory.from_bytes(data).history) == 0
    stored = st.DocumentHistory()
    for i in range(wf.MAX_HISTORY + 2):  # the oldest entries and their thumbnails go
        stored.record(wf.HistoryEntry(f"j{i}", wf.JobSettings("inpaint", "classical"), (i,), ("Inpaint",), 8, 6), b"PNG%d" % i)
    back = st.DocumentHistory.from_bytes(stored.to_bytes())
    assert [e.job_id for e in back.history.entries] == [e.job_id for e in stored.history.entries]
    assert back.history[0].job_id == f"j{wf.MAX_HISTORY + 1}" and back.thumbnail(back.history[0]) == b"PNG%d" % (wf.MAX_HISTORY + 1)
    assert "j0" not in back.thumbnails and len(back.thumbnails) == wf.MAX_HISTORY


def _result(width: int, height: int) -> Result:
    return Result("j", (Layer(ImagePayload(width, height, PixelFormat.BGRA8, bytes(width * height * 4)), 0, 0, "r"),), width, height)


def test_results_of_the_document_size_become_layers_an_expand_grows_the_canvas():
    # workflow.result_target, as the Krita docker uses it (with the artist's choice for an upscale)
    inpaint = wf.JobSettings("inpaint", "classical")
    assert st.result_target(inpaint, _result(8, 6), (8, 6), "resize") == st.Target(st.TargetKind.LAYERS)
    expand = wf.JobSettings("expand", "diffusers", None, {"left": 16, "top": 0, "right": 0, "bottom": 8})
    assert st.result_target(expand, _result(24, 14), (8, 6), "resize") == st.Target(st.TargetKind.GROW, 16, 0)
    upscale = wf.JobSettings("upscale", "classical", None, {"scale": 2.0})
    assert st.result_target(upscale, _result(16, 12), (8, 6), "resize") == st.Target(st.TargetKind.RESIZE)
    assert st.result_target(upscale, _result(16, 12), (8, 6), "new_document") == st.Target(st.TargetKind.NEW_DOCUMENT)
    # An expand whose result cannot hold the document where it says: not grown in place.
    assert st.result_target(expand, _result(20, 6), (8, 6), "new_document").kind is st.TargetKind.NEW_DOCUMENT


def test_errors_say_whether_the_connection_is_gone():
    assert st.describe_error("Cannot connect to ws://x:1/ws:\n refused", False) == "Not connected: Cannot connect to ws://x:1/ws: refused"
    assert st.describe_error("The mask is empty", True) == "Failed: The mask is empty"


def test_results_are_asked_for_in_kritas_byte_order():
    assert st.OUTPUT_FORMAT is PixelFormat.BGRA8
