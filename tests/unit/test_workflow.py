"""paintwire.protocol.workflow: what the plug-ins do between document and protocol."""

from __future__ import annotations

import pytest

from paintwire.protocol import (
    Capabilities,
    EngineInfo,
    ImagePayload,
    Layer,
    Limits,
    ModelInfo,
    ModeSpec,
    ParamSpec,
    ParamType,
    PixelFormat,
    ProtocolError,
    Result,
    check_job,
)
from paintwire.protocol import workflow as wf

PROMPT = ParamSpec("prompt", ParamType.STRING, "", "Prompt", "What to make.")
STRENGTH = ParamSpec("strength", ParamType.FLOAT, 0.75, "Strength", "How much changes.", minimum=0.0, maximum=1.0)
SEED = ParamSpec("seed", ParamType.SEED, -1, "Seed", "Random seed.")
WIDTH = ParamSpec("width", ParamType.INT, 0, "Width", "0: canvas.", minimum=0, maximum=4096)
HEIGHT = ParamSpec("height", ParamType.INT, 0, "Height", "0: canvas.", minimum=0, maximum=4096)
METHOD = ParamSpec("method", ParamType.CHOICE, "telea", "Method", "How.", choices=("telea", "ns", "fill"))
BLUR = ParamSpec("mask_blur", ParamType.INT, 4, "Mask blur", "Feather.", minimum=0, maximum=64)
SCALE = ParamSpec("scale", ParamType.FLOAT, 2.0, "Scale", "Times.", minimum=1.0, maximum=4.0)

CLASSICAL = EngineInfo("classical", "Classical (no model)", (
    ModeSpec("inpaint", "Inpaint", "", needs_image=True, needs_mask=True, params=(METHOD, BLUR)),
    ModeSpec("upscale", "Upscale", "", needs_image=True, needs_mask=False, params=(SCALE,)),
))
DIFFUSERS = EngineInfo("diffusers", "Diffusers", (
    ModeSpec("txt2img", "Text to image", "", needs_image=False, needs_mask=False, params=(PROMPT, SEED, WIDTH, HEIGHT)),
    ModeSpec("img2img", "Image to image", "", needs_image=True, needs_mask=False, params=(PROMPT, STRENGTH, SEED), accepts_mask=True),
    ModeSpec("inpaint", "Inpaint", "", needs_image=True, needs_mask=True, params=(PROMPT, STRENGTH, SEED, BLUR)),
))
LIMITS = Limits(max_message_bytes=1 << 26, max_pixels=1 << 24, max_side=4096, max_queued_per_client=4)


def caps(*engines: EngineInfo, models: tuple[ModelInfo, ...] = ()) -> Capabilities:
    return Capabilities(engines=engines, models=models, limits=LIMITS)


BOTH = caps(CLASSICAL, DIFFUSERS, models=(
    ModelInfo("opencv", "classical", "builtin", "OpenCV (built in)"),
    ModelInfo("tiny-sd15", "diffusers", "sd15", "Tiny SD 1.5"),
    ModelInfo("detail-lora", "diffusers", "lora"),
))

W, H = 8, 6
PIXELS = bytes(range(256)) * (W * H * 4 // 256) + bytes(W * H * 4 % 256)


def snap(selection: bytes | None = None, mask_layer: bytes | None = None) -> wf.Snapshot:
    return wf.Snapshot(W, H, PIXELS, PixelFormat.BGRA8, selection, mask_layer)


def rect_mask(x: int, y: int, w: int, h: int) -> bytes:
    return bytes(255 if x <= c < x + w and y <= r < y + h else 0 for r in range(H) for c in range(W))


# --- modes and models -------------------------------------------------------------------


def test_available_modes_are_those_some_engine_offers_in_display_order():
    assert [m.key for m in wf.available_modes(caps(CLASSICAL))] == ["inpaint", "upscale"]
    assert [m.key for m in wf.available_modes(BOTH)] == ["generate", "refine", "inpaint", "upscale"]


def test_model_choices_list_models_per_engine_and_skip_add_ons():
    choices = wf.model_choices(BOTH, "inpaint")
    assert [(c.engine, c.model, c.label) for c in choices] == [
        ("classical", "opencv", "OpenCV (built in)"), ("diffusers", "tiny-sd15", "Tiny SD 1.5")]
    assert [c.key for c in wf.model_choices(BOTH, "generate")] == ["diffusers/tiny-sd15"]


def test_an_engine_without_models_is_offered_under_its_own_name():
    (choice,) = wf.model_choices(caps(CLASSICAL), "upscale")
    assert (choice.engine, choice.model, choice.label) == ("classical", None, "Classical (no model)")


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
        wf.Snapshot(W, H, PIXELS[:-1], PixelFormat.BGRA8)
    with pytest.raises(ValueError):
        wf.Snapshot(W, H, PIXELS, PixelFormat.BGRA8, selection=bytes(3))


def test_mask_from_layer_uses_alpha_when_the_layer_has_transparency():
    pixels = bytes([10, 20, 30, 0, 10, 20, 30, 200])
    assert wf.mask_from_layer(pixels) == bytes([0, 200])


def test_mask_from_an_opaque_layer_is_its_grey_level():
    pixels = bytes([0, 0, 0, 255, 255, 255, 255, 255, 90, 90, 90, 255])
    assert wf.mask_from_layer(pixels) == bytes([0, 255, 90])


def test_sixteen_bit_pixels_round_trip_through_eight_bits():
    eight = bytes([0, 1, 128, 255])
    sixteen = wf.from_8bit(eight, "U16")
    assert sixteen == bytes([0, 0, 1, 1, 128, 128, 255, 255])  # v * 257, little-endian
    assert wf.to_8bit(sixteen, "U16") == eight
    assert wf.to_8bit(bytes([0x34, 0x12]), "U16") == bytes([0x12])  # the high byte
    assert wf.to_8bit(eight, "U8") == eight


@pytest.mark.parametrize("depth", ["F16", "F32"])
def test_float_depths_are_refused_with_a_hint(depth):
    with pytest.raises(ValueError, match="8-bit and 16-bit integer"):
        wf.to_8bit(b"\x00" * 8, depth)


# --- requests ---------------------------------------------------------------------------


def test_inpaint_request_sends_image_and_selection_in_the_hosts_byte_order():
    sel = rect_mask(2, 1, 3, 2)
    settings = wf.JobSettings("inpaint", "classical", "opencv", {"method": "ns", "prompt": "ignored", "strength": 0.3})
    req = wf.build_request(snap(selection=sel), BOTH, settings, PixelFormat.BGRA8)
    assert (req.engine, req.mode, req.model) == ("classical", "inpaint", "opencv")
    assert req.image == ImagePayload(W, H, PixelFormat.BGRA8, PIXELS)
    assert req.mask == ImagePayload(W, H, PixelFormat.L8, sel)
    assert dict(req.params) == {"method": "ns"}  # other modes' values stay behind
    assert req.output_format is PixelFormat.BGRA8
    check_job(req, BOTH)  # the server's own check accepts it


def test_inpaint_without_selection_masks_the_whole_canvas():
    req = wf.build_request(snap(), BOTH, wf.JobSettings("inpaint", "classical", "opencv"))
    assert req.mask.data == b"\xff" * (W * H)
    check_job(req, BOTH)


def test_a_mode_without_a_mask_gets_none_even_with_a_selection():
    req = wf.build_request(snap(selection=rect_mask(0, 0, 2, 2)), BOTH, wf.JobSettings("upscale", "classical", None, {"scale": 3}))
    assert req.mask is None and req.image is not None
    assert req.params == {"scale": 3.0}
    check_job(req, BOTH)


def test_img2img_takes_the_selection_when_there_is_one_and_no_mask_otherwise():
    settings = wf.JobSettings("refine", "diffusers", "tiny-sd15", {"prompt": "a fox", "strength": 0.4})
    assert wf.build_request(snap(), BOTH, settings).mask is None
    req = wf.build_request(snap(selection=rect_mask(1, 1, 2, 2)), BOTH, settings)
    assert req.mask is not None
    check_job(req, BOTH)


def test_generate_sends_no_image_and_fills_the_canvas_size():
    settings = wf.JobSettings("generate", "diffusers", "tiny-sd15", {"prompt": "a fox", "seed": 7})
    req = wf.build_request(snap(selection=rect_mask(0, 0, 1, 1)), BOTH, settings)
    assert req.image is None and req.mask is None
    assert dict(req.params) == {"prompt": "a fox", "seed": 7, "width": W, "height": H}
    check_job(req, BOTH)
    req = wf.build_request(snap(), BOTH, wf.JobSettings("generate", "diffusers", "tiny-sd15", {"width": 64}))
    assert (req.params["width"], req.params["height"]) == (64, H)  # a size the artist set stays


def test_values_of_the_wrong_type_fall_back_to_the_servers_default():
    mode = CLASSICAL.mode("inpaint")
    assert wf.params_for_mode(mode, {"method": "nonsense", "mask_blur": "4", "unknown": 1}) == {}
    assert wf.params_for_mode(mode, {"mask_blur": 9, "method": "fill"}) == {"method": "fill", "mask_blur": 9}


def test_unknown_engine_or_mode_is_a_clear_error():
    with pytest.raises(ProtocolError, match="no engine"):
        wf.build_request(snap(), caps(CLASSICAL), wf.JobSettings("inpaint", "diffusers"))
    with pytest.raises(ProtocolError, match="cannot do"):
        wf.build_request(snap(), caps(CLASSICAL), wf.JobSettings("generate", "classical"))


# --- results ----------------------------------------------------------------------------


def test_layer_names_come_from_the_prompt_and_seed():
    assert wf.layer_name("  a red\n fox ", 42, "Inpaint") == "a red fox [seed 42]"
    assert wf.layer_name(None, None, "Inpaint (telea)") == "Inpaint (telea)"
    assert wf.layer_name("", 3, "Inpaint") == "Inpaint [seed 3]"
    long = wf.layer_name("word " * 100, 4294967295, "x")
    assert len(long) == wf.MAX_LAYER_NAME and long.endswith("\u2026 [seed 4294967295]")


def layer(x: int, y: int, w: int, h: int, seed: int | None = None, name: str = "Result") -> Layer:
    data = bytes(i % 251 for i in range(w * h * 4))
    return Layer(ImagePayload(w, h, PixelFormat.BGRA8, data), x, y, name, seed)


def test_one_result_layer_goes_straight_into_the_document_at_its_position():
    result = Result("j1", (layer(3, 2, 4, 3, seed=9),), W, H)
    placement = wf.place_result(result, (W, H), "a fox")
    assert not placement.new_document and placement.group is None
    (p,) = placement.layers
    assert (p.name, p.x, p.y, p.width, p.height, p.seed) == ("a fox [seed 9]", 3, 2, 4, 3, 9)
    assert p.pixels == result.layers[0].image.data and p.pixel_format is PixelFormat.BGRA8


def test_several_results_go_into_a_group_named_after_the_job():
    result = Result("j2", (layer(0, 0, 2, 2, 10), layer(0, 0, 2, 2, 11)), W, H)
    placement = wf.place_result(result, (W, H), "a fox")
    assert placement.group == "a fox [2 results, seeds 10-11]"
    assert [p.name for p in placement.layers] == ["a fox [seed 10]", "a fox [seed 11]"]


def test_a_result_of_another_size_goes_to_a_new_document():
    placement = wf.place_result(Result("j3", (layer(0, 0, 16, 12),), 16, 12), (W, H))
    assert placement.new_document and (placement.width, placement.height) == (16, 12)


def test_clip_to_canvas_keeps_the_inside_part_at_the_right_place():
    full = wf.place_result(Result("j", (layer(-1, 4, 3, 3),), W, H), (W, H)).layers[0]
    clipped = wf.clip_to_canvas(full, W, H)
    assert (clipped.x, clipped.y, clipped.width, clipped.height) == (0, 4, 2, 2)
    # Row 0 of the clip is row 0 of the layer from its column 1.
    assert clipped.pixels[:8] == full.pixels[4:12]
    assert clipped.pixels[8:16] == full.pixels[16:24]
    assert wf.clip_to_canvas(full, W, H) is not full
    inside = wf.place_result(Result("j", (layer(1, 1, 2, 2),), W, H), (W, H)).layers[0]
    assert wf.clip_to_canvas(inside, W, H) is inside
    outside = wf.place_result(Result("j", (layer(W, 0, 2, 2),), W, H), (W, H)).layers[0]
    assert wf.clip_to_canvas(outside, W, H) is None


# --- history ----------------------------------------------------------------------------


def entry(job: str, seeds=(5,)) -> wf.HistoryEntry:
    settings = wf.JobSettings("inpaint", "diffusers", "tiny-sd15", {"prompt": "a fox", "seed": -1, "strength": 0.5})
    result = Result(job, tuple(layer(0, 0, 1, 1, s) for s in seeds), W, H)
    return wf.history_entry(job, settings, result, wf.place_result(result, (W, H), "a fox"))


def test_history_is_newest_first_and_bounded():
    history = wf.History(limit=2)
    for job in ("a", "b", "c"):
        history.add(entry(job))
    assert [e.job_id for e in history.entries] == ["c", "b"]


def test_history_entry_reruns_with_the_seed_it_got():
    e = entry("a", seeds=(11, 12))
    assert e.rerun_settings(1).params == {"prompt": "a fox", "seed": 12, "strength": 0.5}
    assert e.settings.params["seed"] == -1  # the entry itself is unchanged
    assert "Inpaint" in e.summary and "seed 11, 12" in e.summary and "a fox" in e.summary


def test_history_round_trips_without_pixels_and_drops_broken_entries():
    history = wf.History()
    history.add(entry("a"))
    items = history.to_list() + [{"job_id": "broken"}]
    back = wf.History.from_list(items)
    assert len(back) == 1
    got = back[0]
    assert (got.job_id, got.seeds, got.layer_names, got.settings) == ("a", (5,), ("a fox [seed 5]",), history[0].settings)
    assert got.result is None


def test_workflow_uses_the_standard_library_only():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(wf.__file__).read_text(encoding="utf-8"), feature_version=(3, 10))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"__future__", "enum", "time", "dataclasses", "typing"}, imported
