"""paintwire.hostkit: what both plug-ins do between document and protocol."""

from __future__ import annotations

import pytest

from paintwire.protocol import (
    Capabilities,
    EngineInfo,
    ImagePayload,
    InputKind,
    InputSpec,
    Layer,
    Limits,
    ModelInfo,
    ModeSpec,
    ParamSpec,
    ParamType,
    ModelKind,
    PixelFormat,
    PlacementKind,
    ProtocolError,
    Result,
    check_job,
)
from paintwire.hostkit.history import History, HistoryEntry, history_entry
from paintwire.hostkit.modes import keep_choice, model_choices, offered_modes
from paintwire.hostkit.placement import MAX_LAYER_NAME, layer_name, place_result
from paintwire.hostkit.request import JobSettings, build_request, params_for_mode
from paintwire.hostkit.snapshot import Snapshot

PROMPT = ParamSpec("prompt", ParamType.STRING, "", "Prompt", "What to make.")
STRENGTH = ParamSpec("strength", ParamType.FLOAT, 0.75, "Strength", "How much changes.", minimum=0.0, maximum=1.0)
SEED = ParamSpec("seed", ParamType.SEED, -1, "Seed", "Random seed.")
WIDTH = ParamSpec("width", ParamType.INT, 0, "Width", "0: canvas.", minimum=0, maximum=4096)
HEIGHT = ParamSpec("height", ParamType.INT, 0, "Height", "0: canvas.", minimum=0, maximum=4096)
METHOD = ParamSpec("method", ParamType.CHOICE, "telea", "Method", "How.", choices=("telea", "ns", "fill"))
BLUR = ParamSpec("mask_blur", ParamType.INT, 4, "Mask blur", "Feather.", minimum=0, maximum=64)
SCALE = ParamSpec("scale", ParamType.FLOAT, 2.0, "Scale", "Times.", minimum=1.0, maximum=4.0)

SD = (ModelKind.SD15, ModelKind.SDXL)
CLASSICAL = EngineInfo("classical", "Classical (no model)", (
    ModeSpec("inpaint", "Inpaint", "", needs_image=True, needs_mask=True, params=(METHOD, BLUR), model_kinds=(ModelKind.BUILTIN,), order=30),
    ModeSpec("upscale", "Upscale", "", needs_image=True, needs_mask=False, params=(SCALE,), model_kinds=(ModelKind.BUILTIN,), order=60,
             placement=PlacementKind.RESIZE),
))
DIFFUSERS = EngineInfo("diffusers", "Diffusers", (
    ModeSpec("txt2img", "Generate", "", needs_image=False, needs_mask=False, params=(PROMPT, SEED, WIDTH, HEIGHT), model_kinds=SD, order=10),
    ModeSpec("img2img", "Refine", "", needs_image=True, needs_mask=False, params=(PROMPT, STRENGTH, SEED), accepts_mask=True,
             model_kinds=SD, order=20),
    ModeSpec("inpaint", "Inpaint", "", needs_image=True, needs_mask=True, params=(PROMPT, STRENGTH, SEED, BLUR), model_kinds=SD, order=30),
))
LIMITS = Limits(max_message_bytes=1 << 26, max_pixels=1 << 24, max_side=4096, max_queued_per_client=4)


def caps(*engines: EngineInfo, models: tuple[ModelInfo, ...] = ()) -> Capabilities:
    return Capabilities(engines=engines, models=models, limits=LIMITS)


BOTH = caps(CLASSICAL, DIFFUSERS, models=(
    ModelInfo("opencv", "classical", "builtin", "OpenCV (built in)"),
    ModelInfo("tiny-sd15", "diffusers", "sd15", "Tiny SD 1.5"),
    ModelInfo("detail-lora", "diffusers", "lora"),
    ModelInfo("big-upscaler", "diffusers", "upscaler"),
))

W, H = 8, 6
PIXELS = bytes(range(256)) * (W * H * 4 // 256) + bytes(W * H * 4 % 256)


def snap(selection: bytes | None = None, mask_layer: bytes | None = None) -> Snapshot:
    return Snapshot(W, H, PIXELS, PixelFormat.BGRA8, selection, mask_layer)


def rect_mask(x: int, y: int, w: int, h: int) -> bytes:
    return bytes(255 if x <= c < x + w and y <= r < y + h else 0 for r in range(H) for c in range(W))


# --- modes and models -------------------------------------------------------------------


def test_offered_modes_are_the_servers_in_its_order_one_per_name():
    assert [m.name for m in offered_modes(caps(CLASSICAL))] == ["inpaint", "upscale"]
    modes = offered_modes(BOTH)
    assert [m.name for m in modes] == ["txt2img", "img2img", "inpaint", "upscale"]
    assert [m.label for m in modes] == ["Generate", "Refine", "Inpaint", "Upscale"]  # the server's words


def test_model_choices_are_the_kinds_the_mode_names():
    choices = model_choices(BOTH, "inpaint")
    assert [(c.engine, c.model, c.label) for c in choices] == [
        ("classical", "opencv", "OpenCV (built in)"), ("diffusers", "tiny-sd15", "Tiny SD 1.5")]
    # Neither the LoRA nor the upscaler model is offered as the model to generate with.
    assert [c.key for c in model_choices(BOTH, "txt2img")] == ["diffusers/tiny-sd15"]


def test_an_engine_without_models_of_the_kind_is_offered_under_its_own_name():
    (choice,) = model_choices(caps(CLASSICAL), "upscale")
    assert (choice.engine, choice.model, choice.label) == ("classical", None, "Classical (no model)")


def test_a_kept_choice_stays_with_its_engine_when_it_can():
    choices = model_choices(BOTH, "inpaint")
    assert keep_choice(choices, "diffusers/tiny-sd15") == "diffusers/tiny-sd15"
    assert keep_choice(choices, "diffusers/gone") == "diffusers/tiny-sd15"
    assert keep_choice(choices, "other/x") == "classical/opencv"


# --- snapshots and masks ----------------------------------------------------------------


def test_no_selection_means_the_whole_canvas():
    assert snap().mask() == b"\xff" * (W * H)
    assert snap(selection=bytes(W * H)).mask() == b"\xff" * (W * H)  # an empty selection is no selection
    assert not snap(selection=bytes(W * H)).has_selection


def test_the_selection_is_the_mask_feathering_kept():
    sel = bytes([0, 64, 128, 255] * (W * H // 4))
    assert snap(selection=sel).mask() == sel


def test_a_mask_layer_replaces_the_selection():
    layer = rect_mask(0, 0, 2, 2)
    assert snap(selection=rect_mask(3, 3, 2, 2), mask_layer=layer).mask() == layer


def test_snapshot_checks_sizes():
    with pytest.raises(ProtocolError):
        Snapshot(W, H, PIXELS[:-1], PixelFormat.BGRA8)
    with pytest.raises(ValueError):
        Snapshot(W, H, PIXELS, PixelFormat.BGRA8, selection=bytes(3))


# --- requests ---------------------------------------------------------------------------


def test_inpaint_request_sends_image_and_selection_in_the_hosts_byte_order():
    sel = rect_mask(2, 1, 3, 2)
    settings = JobSettings("inpaint", "classical", "opencv", {"method": "ns", "prompt": "ignored", "strength": 0.3})
    req = build_request(snap(selection=sel), BOTH, settings, PixelFormat.BGRA8)
    assert (req.engine, req.mode, req.model) == ("classical", "inpaint", "opencv")
    assert req.image == ImagePayload(W, H, PixelFormat.BGRA8, PIXELS)
    assert req.mask == ImagePayload(W, H, PixelFormat.L8, sel)
    assert dict(req.params) == {"method": "ns"}  # other modes' values stay behind
    assert req.output_format is PixelFormat.BGRA8
    check_job(req, BOTH)  # the server's own check accepts it


def test_inpaint_without_selection_masks_the_whole_canvas():
    req = build_request(snap(), BOTH, JobSettings("inpaint", "classical", "opencv"))
    assert req.mask.data == b"\xff" * (W * H)
    check_job(req, BOTH)


def test_a_mode_without_a_mask_gets_none_even_with_a_selection():
    req = build_request(snap(selection=rect_mask(0, 0, 2, 2)), BOTH, JobSettings("upscale", "classical", None, {"scale": 3}))
    assert req.mask is None and req.image is not None
    assert req.params == {"scale": 3.0}
    check_job(req, BOTH)


def test_img2img_takes_the_selection_when_there_is_one_and_no_mask_otherwise():
    settings = JobSettings("img2img", "diffusers", "tiny-sd15", {"prompt": "a fox", "strength": 0.4})
    assert build_request(snap(), BOTH, settings).mask is None
    req = build_request(snap(selection=rect_mask(1, 1, 2, 2)), BOTH, settings)
    assert req.mask is not None
    check_job(req, BOTH)


def test_generate_sends_no_image_and_fills_the_canvas_size():
    settings = JobSettings("txt2img", "diffusers", "tiny-sd15", {"prompt": "a fox", "seed": 7})
    req = build_request(snap(selection=rect_mask(0, 0, 1, 1)), BOTH, settings)
    assert req.image is None and req.mask is None
    assert dict(req.params) == {"prompt": "a fox", "seed": 7, "width": W, "height": H}
    check_job(req, BOTH)
    req = build_request(snap(), BOTH, JobSettings("txt2img", "diffusers", "tiny-sd15", {"width": 64}))
    assert (req.params["width"], req.params["height"]) == (64, H)  # a size the artist set stays


def test_values_of_the_wrong_type_fall_back_to_the_servers_default():
    mode = CLASSICAL.mode("inpaint")
    assert params_for_mode(mode, {"method": "nonsense", "mask_blur": "4", "unknown": 1}) == {}
    assert params_for_mode(mode, {"mask_blur": 9, "method": "fill"}) == {"method": "fill", "mask_blur": 9}


def test_unknown_engine_or_mode_is_a_clear_error():
    with pytest.raises(ProtocolError, match="no engine"):
        build_request(snap(), caps(CLASSICAL), JobSettings("inpaint", "diffusers"))
    with pytest.raises(ProtocolError, match="cannot do"):
        build_request(snap(), caps(CLASSICAL), JobSettings("txt2img", "classical"))


# --- results ----------------------------------------------------------------------------


def test_layer_names_come_from_the_prompt_and_seed():
    assert layer_name("  a red\n fox ", 42, "Inpaint") == "a red fox [seed 42]"
    assert layer_name(None, None, "Inpaint (telea)") == "Inpaint (telea)"
    assert layer_name("", 3, "Inpaint") == "Inpaint [seed 3]"
    long = layer_name("word " * 100, 4294967295, "x")
    assert len(long) == MAX_LAYER_NAME and long.endswith("\u2026 [seed 4294967295]")


def layer(x: int, y: int, w: int, h: int, seed: int | None = None, name: str = "Result") -> Layer:
    data = bytes(i % 251 for i in range(w * h * 4))
    return Layer(ImagePayload(w, h, PixelFormat.BGRA8, data), x, y, name, seed)


def test_one_result_layer_goes_straight_into_the_document_at_its_position():
    result = Result("j1", (layer(3, 2, 4, 3, seed=9),), W, H)
    placement = place_result(result, (W, H), "a fox")
    assert not placement.new_document and placement.group is None
    (p,) = placement.layers
    assert (p.name, p.x, p.y, p.width, p.height, p.seed) == ("a fox [seed 9]", 3, 2, 4, 3, 9)
    assert p.pixels == result.layers[0].image.data and p.pixel_format is PixelFormat.BGRA8


def test_several_results_go_into_a_group_named_after_the_job():
    result = Result("j2", (layer(0, 0, 2, 2, 10), layer(0, 0, 2, 2, 11)), W, H)
    placement = place_result(result, (W, H), "a fox")
    assert placement.group == "a fox [2 results, seeds 10-11]"
    assert [p.name for p in placement.layers] == ["a fox [seed 10]", "a fox [seed 11]"]


def test_a_result_of_another_size_goes_to_a_new_document():
    placement = place_result(Result("j3", (layer(0, 0, 16, 12),), 16, 12), (W, H))
    assert placement.new_document and (placement.width, placement.height) == (16, 12)


def test_a_grown_canvas_holds_the_document_at_its_offset():
    grown = Result("j4", (layer(0, 0, W + 16, H + 8),), W + 16, H + 8, offset_x=16, offset_y=8)
    placement = place_result(grown, (W, H), None, PlacementKind.GROW)
    assert placement.grows((W, H)) and (placement.offset_x, placement.offset_y) == (16, 8)
    assert not place_result(grown, (W, H), None, PlacementKind.RESIZE).grows((W, H))
    # An offset that puts the document outside the result's canvas is no grow in place.
    outside = Result("j5", (layer(0, 0, W + 4, H),), W + 4, H, offset_x=16, offset_y=0)
    assert not place_result(outside, (W, H), None, PlacementKind.GROW).grows((W, H))


# --- history ----------------------------------------------------------------------------


def entry(job: str, seeds=(5,)) -> HistoryEntry:
    settings = JobSettings("inpaint", "diffusers", "tiny-sd15", {"prompt": "a fox", "seed": -1, "strength": 0.5})
    result = Result(job, tuple(layer(0, 0, 1, 1, s) for s in seeds), W, H)
    return history_entry(job, settings, result, place_result(result, (W, H), "a fox"), "Inpaint")


def test_history_is_newest_first_and_bounded():
    history = History(limit=2)
    for job in ("a", "b", "c"):
        history.add(entry(job))
    assert [e.job_id for e in history.entries] == ["c", "b"]


def test_history_entry_reruns_with_the_seed_it_got():
    e = entry("a", seeds=(11, 12))
    assert e.rerun_settings(1).params == {"prompt": "a fox", "seed": 12, "strength": 0.5}
    assert e.settings.params["seed"] == -1  # the entry itself is unchanged
    assert "Inpaint" in e.summary and "seed 11, 12" in e.summary and "a fox" in e.summary


def test_history_round_trips_without_pixels_and_drops_broken_entries():
    history = History()
    history.add(entry("a"))
    items = history.to_list() + [{"job_id": "broken"}]
    back = History.from_list(items)
    assert len(back) == 1
    got = back[0]
    assert (got.job_id, got.seeds, got.layer_names, got.settings) == ("a", (5,), ("a fox [seed 5]",), history[0].settings)
    assert got.result is None


def test_the_kit_needs_only_the_standard_library_and_the_protocol():
    import ast
    from pathlib import Path

    import paintwire.hostkit

    for path in sorted(Path(paintwire.hostkit.__path__[0]).glob("*.py")):
        if path.name == "memory_document.py":
            continue  # the in-memory document for tests needs numpy; the bundles leave it out (below)
        tree = ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 10))
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        outside = {m for m in imported if m.split(".")[0] not in STDLIB and not m.startswith("paintwire.protocol")}
        assert not outside, f"{path.name} imports {outside}"


def test_the_bundles_leave_out_the_in_memory_document_and_no_plugin_imports_it(tmp_path):
    import importlib.util
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("paintwire_bundle", repo / "plugins" / "bundle.py")
    bundle = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bundle)
    vendor = bundle.write_vendor(tmp_path / "vendor")
    assert (vendor / "paintwire" / "hostkit" / "job_flow.py").is_file()
    assert not (vendor / "paintwire" / "hostkit" / "memory_document.py").exists()
    for path in sorted((repo / "plugins").rglob("*.py")):
        assert "memory_document" not in path.read_text(encoding="utf-8") or path.name == "bundle.py", path


STDLIB = {"__future__", "contextlib", "time", "dataclasses", "typing", "json", "enum", "urllib", "zlib"}  # zlib: in every Python the hosts bundle


# --- placement kinds and the version rule on the client side ------------------------------


def test_the_modes_placement_and_the_grown_canvas_offset_reach_the_placement():
    result = Result("j", (layer(0, 0, 12, 8),), 12, 8, offset_x=3, offset_y=1)
    placement = place_result(result, (W, H), None, PlacementKind.GROW)
    assert (placement.kind, placement.offset_x, placement.offset_y, placement.new_document) == (PlacementKind.GROW, 3, 1, True)


def test_an_unknown_placement_kind_is_a_new_document_when_the_size_changes_else_layers():
    grown = Result("j", (layer(0, 0, 12, 8),), 12, 8)
    same = Result("j", (layer(0, 0, 2, 2),), W, H)
    assert place_result(grown, (W, H), None, "stack_of_pages").kind is PlacementKind.NEW_DOCUMENT
    assert place_result(same, (W, H), None, "stack_of_pages").kind is PlacementKind.LAYERS


def test_a_mode_that_requires_an_input_the_client_does_not_know_is_not_offered():
    control = ModeSpec("control_gen", "Control", "", inputs=(InputSpec(InputKind.IMAGE), InputSpec("control_layer")), order=5)
    optional = ModeSpec("hinted", "Hinted", "", inputs=(InputSpec(InputKind.IMAGE), InputSpec("control_layer", required=False)), order=6)
    engine = EngineInfo("future", "Future", (control, optional))
    assert [m.name for m in offered_modes(caps(engine))] == ["hinted"]
    # A host can also say which known kinds it gathers.
    sketchy = ModeSpec("s", "S", "", inputs=(InputSpec(InputKind.IMAGE), InputSpec(InputKind.SKETCH)))
    assert offered_modes(caps(EngineInfo("e", "E", (sketchy,))), supported=(InputKind.IMAGE, InputKind.MASK)) == []


def test_a_request_leaves_optional_inputs_out_and_sends_required_ones():
    hinted = ModeSpec("hinted", "Hinted", "", inputs=(InputSpec(InputKind.IMAGE), InputSpec("control_layer", required=False)))
    c = caps(EngineInfo("future", "Future", (hinted,)))
    req = build_request(snap(selection=rect_mask(0, 0, 2, 2)), c, JobSettings("hinted", "future"))
    assert req.image is not None and req.mask is None  # the mode takes no mask
    check_job(req, c)


# --- the form model -----------------------------------------------------------------------


def test_form_fields_carry_kinds_ranges_labels_and_folds_in_the_servers_order():
    from paintwire.hostkit.form import FieldKind, fields

    sampler = ParamSpec("sampler", ParamType.CHOICE, "euler_a", "Sampler", "", choices=("euler_a", "ddim"),
                        choice_labels=("Euler a", "DDIM"), group="advanced")
    soft = ParamSpec("soft_bias", ParamType.FLOAT, 1.0, "Bias", "", minimum=0.0, maximum=8.0, group="soft")
    mode = ModeSpec("m", "M", "", params=(sampler, soft, STRENGTH, PROMPT, BLUR, SEED))
    got = fields(mode, {"strength": 0.3, "mask_blur": "wrong type"})
    assert [f.name for f in got] == ["prompt", "strength", "mask_blur", "seed", "sampler", "soft_bias"]
    by = {f.name: f for f in got}
    assert by["prompt"].kind == FieldKind.PROMPT and by["seed"].kind == FieldKind.SEED
    assert by["strength"].value == 0.3 and (by["strength"].step, by["strength"].digits) == (0.01, 2)
    assert by["mask_blur"].value == 4 and by["mask_blur"].slider  # the default, where the stored value no longer fits
    assert by["sampler"].choices == (("euler_a", "Euler a"), ("ddim", "DDIM")) and by["sampler"].group_title == "Advanced"
    assert by["soft_bias"].group_title == "Soft inpainting settings" and (by["soft_bias"].step, by["soft_bias"].digits) == (0.1, 1)


def test_an_engine_with_a_notice_offers_a_sentence_instead_of_its_modes():
    import dataclasses

    from paintwire.hostkit.modes import ChoiceError, choose, engine_notices

    notice = "No Stable Diffusion model is installed on the server: put a checkpoint into a model folder."
    lacking = caps(CLASSICAL, dataclasses.replace(DIFFUSERS, notice=notice), models=BOTH.models)
    assert [m.name for m in offered_modes(lacking)] == ["inpaint", "upscale"]  # the classical engine's only
    assert [c.engine for c in model_choices(lacking, "inpaint")] == ["classical"]
    assert engine_notices(lacking) == [notice] and engine_notices(BOTH) == []
    with pytest.raises(ChoiceError, match="No Stable Diffusion model is installed"):
        choose(lacking, "txt2img")
    assert [m.name for m in offered_modes(BOTH)][:2] == ["txt2img", "img2img"]


def test_an_engine_that_is_starting_offers_its_notice_and_its_modes_once_started():
    import dataclasses

    from paintwire.hostkit.modes import engine_notices, engines_started
    from paintwire.protocol import EngineStatus

    notice = "The diffusers engine is starting (loading its libraries and finding its models); its modes follow in a moment."
    early = caps(CLASSICAL, dataclasses.replace(DIFFUSERS, modes=(), notice=notice, status=EngineStatus.STARTING))
    assert [m.name for m in offered_modes(early)] == ["inpaint", "upscale"] and engine_notices(early) == [notice]
    assert [e.name for e in engines_started(early, BOTH)] == ["diffusers"]
    assert engines_started(BOTH, BOTH) == [] and engines_started(early, early) == []
    assert [e.name for e in engines_started(None, BOTH)] == ["classical", "diffusers"]
