"""The page's settings form follows the form layout the server sends with each mode
(ModeSpec.form, made by paintwire.protocol.form, the rule the plug-ins render too):
the same sections in the same order, the folds with the server's titles, and for
each field the widget, range, step and slider it names. A real server with the
classical engine and a test engine whose mode takes a parameter of every kind; a
real headless chromium."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from server_process import ServerProcess, start_server_process  # noqa: E402

WAIT_MS = 60_000  # a loaded two-core machine is slow; nothing here asserts a time
MAX_STEPS = 40  # below the test engine's own 150: the page must show the server's capped range


@pytest.fixture(scope="module")
def server(browser: Any) -> Iterator[ServerProcess]:
    process = start_server_process(engines=["classical", "fixtures.form_engine:FormEngine"], max_steps=MAX_STEPS)
    yield process
    process.stop()


@pytest.fixture
def page(browser: Any, server: ServerProcess) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(WAIT_MS)
    page.goto(server.http + "/")
    page.wait_for_selector("#connection.ok")
    page.click("nav button[data-view=canvas]")
    page.wait_for_selector("#view-canvas:not([hidden])")
    yield page
    context.close()
    assert not errors, f"the page raised: {errors}"


def server_modes(server: ServerProcess) -> dict[str, dict]:
    with urllib.request.urlopen(server.http + "/info", timeout=30) as response:
        capabilities = json.load(response)["capabilities"]
    return {mode["name"]: mode for engine in capabilities["engines"] for mode in engine["modes"]}


# What the page shows, read from its DOM: the form's children in order, a fold as its
# title and fields, each field as its widget's parts.
READ_FORM = """() => {
  const field = (label) => {
    const input = label.querySelector('[name]');
    const range = label.querySelector('input[type=range]');
    return {
      name: input.name, widget: label.dataset.widget, tag: input.tagName.toLowerCase(), type: input.type || '',
      min: input.min ?? '', max: input.max ?? '', step: input.step ?? '', slider: !!range,
      range: range ? [range.min, range.max, range.step] : null, caption: [...label.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent).join('').trim(), help: label.title,
      options: input.tagName === 'SELECT' ? [...input.options].map((o) => [o.value, o.text]) : null,
    };
  };
  return [...document.getElementById('canvas-form').children].map((child) => child.tagName === 'DETAILS'
    ? { fold: child.querySelector('summary').textContent, open: child.open, fields: [...child.querySelectorAll('label')].map(field) }
    : { field: field(child) });
}"""

# How each widget of the layout is drawn by the page.
ELEMENTS = {"prompt": ("textarea", "textarea"), "string": ("input", "text"), "bool": ("input", "checkbox"),
            "choice": ("select", "select-one"), "int": ("input", "number"), "float": ("input", "number"), "seed": ("input", "number")}


def expected_form(mode: dict) -> list[tuple]:
    out: list[tuple] = []
    for section in mode["form"]:
        names = [f["name"] for f in section["fields"]]
        if section["folded"]:
            out.append(("fold", section["title"], names))
        else:
            out.extend(("field", name) for name in names)
    return out


def shown_form(items: list[dict]) -> list[tuple]:
    return [("fold", item["fold"], [f["name"] for f in item["fields"]]) if "fold" in item else ("field", item["field"]["name"]) for item in items]


def check_fields(mode: dict, items: list[dict]) -> None:
    specs = {p["name"]: p for p in mode["params"]}
    shown = {f["name"]: f for item in items for f in (item["fields"] if "fold" in item else [item["field"]])}
    for section in mode["form"]:
        for field in section["fields"]:
            got, spec = shown[field["name"]], specs[field["name"]]
            where = f"{mode['name']}.{field['name']}"
            assert got["widget"] == field["widget"] and (got["tag"], got["type"]) == ELEMENTS[field["widget"]], where
            assert got["caption"] == spec["label"] and got["help"] == spec["help"], where
            if field["widget"] in ("int", "float", "seed"):
                assert [float(got[k]) for k in ("min", "max", "step")] == [field["min"], field["max"], field["step"]], where
                assert got["slider"] == field["slider"], where
                if field["slider"]:
                    assert [float(v) for v in got["range"]] == [field["min"], field["max"], field["step"]], where
            else:
                assert not got["slider"], where
            if field["widget"] == "choice":
                labels = spec.get("choice_labels") or spec["choices"]
                assert got["options"] == [list(pair) for pair in zip(spec["choices"], labels)], where


def show_mode(page: Any, name: str) -> list[dict]:
    page.select_option("#canvas-mode", name)
    page.wait_for_function("(name) => document.querySelector('#canvas-form [name]') !== null || name === ''", arg=name)
    return page.evaluate(READ_FORM)


def test_the_form_has_the_servers_sections_widgets_and_ranges(page: Any, server: ServerProcess) -> None:
    modes = server_modes(server)
    offered = page.eval_on_selector_all("#canvas-mode option", "(options) => options.map((o) => o.value)")
    assert "showcase" in offered and "inpaint" in offered
    for name in offered:
        items = show_mode(page, name)
        assert shown_form(items) == expected_form(modes[name]), name
        check_fields(modes[name], items)
        assert all(not item["open"] for item in items if "fold" in item), "folds start closed"


def test_what_only_the_servers_rule_knows_reaches_the_page(page: Any, server: ServerProcess) -> None:
    """The layout's decisions, not the page's: the negative prompt (in a folded group)
    opens the form as a prompt box, the "soft" fold has the title the server gives it,
    a short int range gets a slider and a wide one none, and steps stop at the
    configured cap, not at the engine's own maximum."""
    items = show_mode(page, "showcase")
    top = [item["field"] for item in items if "field" in item]
    assert [f["name"] for f in top[:2]] == ["prompt", "negative_prompt"] and top[1]["tag"] == "textarea"
    folds = {item["fold"]: [f["name"] for f in item["fields"]] for item in items if "fold" in item}
    assert folds == {"Advanced": ["tiling", "sampler"], "Soft inpainting settings": ["soft_bias"], "Colour balance": ["title"]}
    assert list(folds) == ["Advanced", "Soft inpainting settings", "Colour balance"]  # the order the groups first appear in
    by_name = {f["name"]: f for f in top}
    assert by_name["steps"]["slider"] and not by_name["width"]["slider"] and float(by_name["steps"]["max"]) == MAX_STEPS
    assert float(by_name["strength"]["step"]) == 0.01 and float(by_name["cfg_scale"]["step"]) == 1.0


def test_the_forms_values_run_a_job(page: Any) -> None:
    """What the artist sets in each widget reaches the server in the parameter's type
    (the server refuses a job with a value of the wrong type)."""
    show_mode(page, "showcase")
    page.fill("textarea[name=prompt]", "a lighthouse")
    page.fill("input[name=steps]", "12")
    page.fill("input[name=strength]", "0.3")
    page.click("details[data-group=advanced] summary")
    page.check("input[name=tiling]")
    page.select_option("select[name=sampler]", "ddim")
    slider = page.locator("input[name=steps] ~ input[type=range]")
    assert slider.input_value() == "12"  # the slider follows the number box
    page.evaluate("() => { delete document.body.dataset.lastJob; }")
    page.click("#canvas-run")
    page.wait_for_selector("body[data-last-job]")
    assert page.get_attribute("body", "data-last-job") == "result", page.text_content("#canvas-status")
