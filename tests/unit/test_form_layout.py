"""The form layout (paintwire.protocol.form): the one rule by which a mode's parameters
become a form, sent by the server in ModeSpec.form and rendered as sent by the
plug-ins (hostkit.form) and the server's page (tests/browser/test_page_form_layout.py)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures.form_engine import SHOWCASE, FormEngine  # noqa: E402

from paintwire.hostkit.form import FieldKind, fields, param_fields  # noqa: E402
from paintwire.protocol import Capabilities, EngineInfo, Limits, ModeSpec, ParamSpec, ParamType, Widget  # noqa: E402
from paintwire.protocol.form import FormLayout, form_layout  # noqa: E402
from paintwire.server.app import build_capabilities  # noqa: E402
from paintwire.server.config import LimitsConfig, ServerConfig  # noqa: E402


def layout_of(mode: ModeSpec) -> list[tuple[str, str, bool, list[str]]]:
    return [(s.group, s.title, s.folded, [f.name for f in s.fields]) for s in mode.form.sections]


def test_sections_prompts_first_then_folds_in_the_order_groups_appear():
    assert layout_of(SHOWCASE) == [
        ("basic", "", False, ["prompt", "negative_prompt", "steps", "width", "strength", "cfg_scale", "offset", "seed"]),
        ("advanced", "Advanced", True, ["tiling", "sampler"]),  # sampler comes back to the fold that tiling opened
        ("soft", "Soft inpainting settings", True, ["soft_bias"]),
        ("colour_balance", "Colour balance", True, ["title"]),  # an unknown group: its name, readable
    ]


def test_widgets_ranges_steps_and_sliders():
    by = {f.name: f for _, f in SHOWCASE.form.fields()}
    assert by["prompt"].widget is Widget.PROMPT and by["negative_prompt"].widget is Widget.PROMPT
    assert (by["seed"].widget, by["seed"].minimum, by["seed"].maximum) == (Widget.SEED, -1, 2**32 - 1)
    assert (by["steps"].minimum, by["steps"].maximum, by["steps"].step, by["steps"].slider) == (1, 150, 1, True)
    assert not by["width"].slider  # 64..4096: too wide to drag
    assert (by["strength"].step, by["strength"].digits, by["strength"].slider) == (0.01, 2, True)
    assert (by["soft_bias"].step, by["soft_bias"].digits) == (0.1, 1)
    assert (by["cfg_scale"].step, by["cfg_scale"].digits) == (1.0, 1)
    assert (by["offset"].minimum, by["offset"].maximum, by["offset"].slider) == (-1e9, 1e9, False)  # unbounded: what a spin box holds
    unbounded = form_layout([ParamSpec("n", ParamType.INT, 0, "N", "")]).sections[0].fields[0]
    assert (unbounded.minimum, unbounded.maximum, unbounded.slider) == (-(2**31 - 1), 2**31 - 1, False)
    assert (by["tiling"].widget, by["sampler"].widget, by["title"].widget) == (Widget.BOOL, Widget.CHOICE, Widget.STRING)


def test_the_wire_form_carries_numbers_only_for_number_widgets():
    sections = SHOWCASE.to_wire()["form"]
    wire = {f["name"]: f for s in sections for f in s["fields"]}
    assert wire["tiling"] == {"name": "tiling", "widget": "bool"}
    assert wire["steps"] == {"name": "steps", "widget": "int", "min": 1, "max": 150, "step": 1, "digits": 0, "slider": True}
    assert sections[1] == {"group": "advanced", "title": "Advanced", "folded": True, "fields": [wire["tiling"], wire["sampler"]]}


def test_the_server_sends_the_layout_of_its_capped_ranges():
    """The layout is made from the params the server enforces: steps capped by max_steps."""
    caps = build_capabilities([FormEngine(ServerConfig())], LimitsConfig(max_steps=40))
    mode = caps.engine("forms").mode("showcase")
    steps = next(f for _, f in mode.form.fields() if f.name == "steps")
    assert steps.maximum == 40 and steps.slider
    assert dataclasses.replace(SHOWCASE, params=SHOWCASE.params[:1]).form == form_layout(SHOWCASE.params[:1])  # never a stale layout


def test_a_client_reads_the_layout_the_server_sent():
    wire = msgpack.unpackb(msgpack.packb(SHOWCASE.to_wire()), raw=False)
    assert ModeSpec.from_wire(wire) == SHOWCASE  # the same layout, read back
    # A server that lays the form out otherwise is followed: its order, its titles, its ranges,
    # and a parameter it leaves out is not shown.
    wire["form"] = [
        {"group": "extra", "title": "Extras", "folded": True, "fields": [{"name": "seed", "widget": "seed", "min": -1, "max": 99, "step": 1, "digits": 0, "slider": True}]},
        {"group": "basic", "title": "", "folded": False, "fields": [{"name": "width", "widget": "int", "min": 64, "max": 128, "step": 8, "digits": 0, "slider": True},
                                                                      {"name": "prompt", "widget": "prompt"}]},
    ]
    mode = ModeSpec.from_wire(wire)
    got = fields(mode, {"width": 100})
    assert [(f.name, f.group_title, f.folded) for f in got] == [("seed", "Extras", True), ("width", "", False), ("prompt", "", False)]
    width = got[1]
    assert (width.kind, width.minimum, width.maximum, width.step, width.slider, width.value) == (FieldKind.INT, 64, 128, 8, True, 100)
    assert mode.params == SHOWCASE.params  # the parameters themselves: all there, with their defaults for the job


def test_the_layout_is_read_by_the_version_rule():
    wire = SHOWCASE.to_wire()
    # A newer server: a widget this client does not know, a parameter of a type it does not know.
    wire["params"] = wire["params"] + [{"name": "tint", "type": "colour", "default": "#fff", "label": "Tint", "help": ""}]
    wire["form"][0]["fields"][2] = {"name": "steps", "widget": "dial", "min": 1, "max": 150}
    wire["form"][0]["fields"].append({"name": "tint", "widget": "colour"})
    mode = ModeSpec.from_wire(wire)
    by = {f.name: f for _, f in mode.form.fields()}
    assert "tint" not in by  # left out with its parameter
    assert by["steps"] == next(f for _, f in SHOWCASE.form.fields() if f.name == "steps")  # this side's widget for it
    # An older server sends no layout; an unreadable one is replaced: the same rule, made here.
    for form in (None, "nonsense", [{"fields": [{"widget": "int"}]}]):
        old = SHOWCASE.to_wire()
        old.pop("form") if form is None else old.__setitem__("form", form)
        assert ModeSpec.from_wire(old).form == SHOWCASE.form


def test_hosts_render_the_capabilities_layout():
    """hostkit reads a mode's form from the capabilities a client received; a control
    kind's parameters are laid out by the same rule."""
    caps = Capabilities((EngineInfo("forms", "Forms", (SHOWCASE,)),), (), Limits(1 << 20, 1 << 16, 256, 4))
    mode = Capabilities.from_wire(msgpack.unpackb(msgpack.packb(caps.to_wire()), raw=False)).engine("forms").mode("showcase")
    names = [f.name for f in fields(mode, {})]
    assert names == [f.name for _, f in SHOWCASE.form.fields()]
    assert [f.name for f in param_fields(SHOWCASE.params, {})] == names
    assert isinstance(mode.form, FormLayout)
