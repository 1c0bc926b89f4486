"""Every diffusers mode and control through the real server and the real client,
with tiny SD1.5- and SDXL-shaped models built by the tests (no downloads)."""

from __future__ import annotations

import numpy as np
import pytest
from diffusion_fixtures import box_mask, diffusers_server, hf_cache_dir, picture, tiny_models_dir  # noqa: F401
from helpers import layer_pixels, mask_payload, rgba_payload, run_and_cancel

from fixtures.tiny_models import EMBEDDING, LORA, SD15, SD15_INPAINT, SDXL, SDXL_SINGLE, SINGLE, VAE
from paintwire.protocol import Client, ErrorCode, JobFailed, JobRequest
from paintwire.server import masks
from paintwire.server.layers import OutputLayer
from paintwire.server.region import flatten

W = H = 64
FAST = {"steps": 2, "seed": 7, "prompt": "a red apple"}


@pytest.fixture(scope="module")
def client(diffusers_server):
    with Client(diffusers_server.url, name="diffusers-test", timeout=120) as c:
        yield c


def run(client, mode, image=None, mask=None, model=SD15, events=None, **params):
    request = JobRequest(
        "diffusers", mode, rgba_payload(image) if image is not None else None,
        mask_payload(mask) if mask is not None else None, model=model, params={**FAST, **params},
    )
    return client.run(request, on_event=events.append if events is not None else None, timeout=120)


def pixels(result, i=0):
    return layer_pixels(result.layers[i])


def flat(image, result, i=0):
    layer = result.layers[i]
    return flatten(image, OutputLayer(layer_pixels(layer), layer.x, layer.y, layer.name))


MASK = box_mask(W, H, 16, 20, 28, 24)


def assert_inpainted(image, mask, result, blur=4, outward=False):
    """The result differs inside the mask and equals the input, bit for bit, outside it."""
    out = flat(image, result)
    soft = masks.feather(mask, blur, outward)
    assert np.array_equal(out[soft == 0], image[soft == 0])
    assert (out[mask > 0] != image[mask > 0]).any(axis=-1).mean() > 0.5
    return out


# -- models -----------------------------------------------------------------------------


def test_capabilities_list_every_model_with_its_kind(client):
    models = {m.name: m.kind for m in client.capabilities.models if m.engine == "diffusers"}
    assert models[SD15] == "sd15" and models[SD15_INPAINT] == "sd15-inpaint" and models[SDXL] == "sdxl"
    assert models[SINGLE] == "sd15" and models[SDXL_SINGLE] == "sdxl"  # single files, detected from their tensors
    assert models[LORA] == "lora" and models[EMBEDDING] == "embedding" and models[VAE] == "vae"
    assert models["tiny/cached"] == "sd15"  # found in the Hugging Face cache
    engine = client.capabilities.engine("diffusers")
    assert {m.name for m in engine.modes} == {"txt2img", "img2img", "edit", "inpaint", "inpaint_sketch", "outpaint", "upscale"}


def test_unknown_model_is_a_clear_error(client):
    with pytest.raises(JobFailed) as info:
        run(client, "txt2img", model="no-such-model", width=W, height=H)
    assert info.value.error.code is ErrorCode.UNKNOWN_MODEL


def test_a_lora_is_not_a_checkpoint(client):
    with pytest.raises(JobFailed) as info:
        run(client, "txt2img", model=LORA, width=W, height=H)
    assert info.value.error.code is ErrorCode.UNKNOWN_MODEL and "lora" in info.value.error.message


# -- txt2img ----------------------------------------------------------------------------


def test_txt2img_size_seed_progress_and_previews(client):
    events = []
    result = run(client, "txt2img", width=W, height=48, events=events, steps=3)
    assert (result.width, result.height) == (W, 48)
    (layer,) = result.layers
    assert (layer.x, layer.y, layer.image.width, layer.image.height) == (0, 0, W, 48)
    assert layer.seed == 7 and layer.settings["seed"] == 7
    steps = [(e.step, e.total) for e in events if e.TYPE == "progress" and e.phase == "denoising"]
    assert steps == [(0, 3), (1, 3), (2, 3), (3, 3)]  # "step 0 of 3" as the first step begins
    previews = [e for e in events if e.TYPE == "preview"]
    assert previews and (previews[0].width, previews[0].height) == (W, 48)


def test_same_seed_same_pixels_and_random_seed_is_reported(client):
    a = run(client, "txt2img", width=W, height=H)
    b = run(client, "txt2img", width=W, height=H)
    c = run(client, "txt2img", width=W, height=H, seed=8)
    assert np.array_equal(pixels(a), pixels(b))
    assert not np.array_equal(pixels(a), pixels(c))
    d = run(client, "txt2img", width=W, height=H, seed=-1)
    assert 0 <= d.layers[0].seed < 2**32 and d.layers[0].settings["seed"] == d.layers[0].seed
    e = run(client, "txt2img", width=W, height=H, seed=d.layers[0].seed)
    assert np.array_equal(pixels(d), pixels(e))


@pytest.fixture(scope="module")
def four_step_base(client):
    # 4 steps: with 2, the multistep solvers all take plain first-order steps.
    return run(client, "txt2img", width=W, height=H, steps=4)


@pytest.mark.parametrize("param,value", [
    ("prompt", "a blue bird"), ("negative_prompt", "blurry"), ("cfg_scale", 2.0), ("scheduler", "euler_a"),
    ("scheduler", "ddim"), ("scheduler", "unipc"), ("clip_skip", 2), ("vae", VAE),
])
def test_each_sampling_control_changes_the_result(client, four_step_base, param, value):
    base = four_step_base
    changed = run(client, "txt2img", width=W, height=H, steps=4, **{param: value})
    assert not np.array_equal(pixels(base), pixels(changed))
    assert changed.layers[0].settings[param] == value


def test_batch_gives_one_layer_per_seed(client):
    result = run(client, "txt2img", width=W, height=H, batch_size=2)
    assert [l.seed for l in result.layers] == [7, 8]
    assert not np.array_equal(pixels(result, 0), pixels(result, 1))


def test_lora_in_the_prompt_changes_the_result_and_its_weight_matters(client):
    plain = run(client, "txt2img", width=W, height=H)
    full = run(client, "txt2img", width=W, height=H, prompt=f"a red apple <lora:{LORA}:1.0>")
    half = run(client, "txt2img", width=W, height=H, prompt=f"a red apple <lora:{LORA}:0.5>")
    assert not np.array_equal(pixels(plain), pixels(full))
    assert not np.array_equal(pixels(full), pixels(half))
    again = run(client, "txt2img", width=W, height=H)  # the LoRA does not stay applied
    assert np.array_equal(pixels(plain), pixels(again))


def test_unknown_lora_is_a_clear_error(client):
    with pytest.raises(JobFailed) as info:
        run(client, "txt2img", width=W, height=H, prompt="a cat <lora:nope:0.7>")
    err = info.value.error
    assert err.code is ErrorCode.INVALID_PARAM and err.field == "job.params.prompt" and "nope" in err.message


def test_unknown_vae_is_a_clear_error(client):
    with pytest.raises(JobFailed) as info:
        run(client, "txt2img", width=W, height=H, vae="nope")
    assert info.value.error.code is ErrorCode.INVALID_PARAM and info.value.error.field == "job.params.vae"


@pytest.mark.parametrize("model", [SDXL, SINGLE, SDXL_SINGLE, SD15_INPAINT, "tiny/cached"])
def test_other_architectures_generate(client, model):
    result = run(client, "txt2img", model=model, width=W, height=H)
    assert (result.width, result.height) == (W, H) and pixels(result)[..., :3].std() > 0


def test_txt2img_defaults_to_the_models_native_size(client):
    result = run(client, "txt2img", model=SDXL)
    assert (result.width, result.height) == (64, 64)  # the tiny models' native size


# -- img2img ----------------------------------------------------------------------------


@pytest.mark.parametrize("model", [SD15_INPAINT, SDXL])
def test_img2img_with_other_architectures(client, model):
    image = picture()
    result = run(client, "img2img", image, model=model, strength=0.7)
    assert pixels(result).shape == (H, W, 4) and not np.array_equal(pixels(result)[..., :3], image[..., :3])


def test_img2img_keeps_size_and_changes_the_picture(client):
    image = picture()
    result = run(client, "img2img", image, strength=0.6)
    assert (result.width, result.height) == (W, H)
    out = pixels(result)
    assert out.shape == (H, W, 4) and not np.array_equal(out[..., :3], image[..., :3])
    # Low strength stays closer to the input than high strength.
    high = run(client, "img2img", image, strength=1.0)
    diff = lambda r: np.abs(pixels(r)[..., :3].astype(int) - image[..., :3]).mean()  # noqa: E731
    low = run(client, "img2img", image, strength=0.3, steps=4)
    assert diff(low) < diff(high)


def test_img2img_runs_steps_times_strength_unless_exact(client):
    image = picture()
    events = []
    run(client, "img2img", image, strength=0.5, steps=4, events=events)
    assert max(e.total for e in events if e.TYPE == "progress" and e.stage == "denoising") == 2
    events.clear()
    run(client, "img2img", image, strength=0.5, steps=4, exact_steps=True, events=events)
    assert max(e.total for e in events if e.TYPE == "progress" and e.stage == "denoising") == 4


@pytest.mark.parametrize("mode", ["just_resize", "crop_and_resize", "resize_and_fill", "latent"])
def test_img2img_resize_modes_give_the_target_size(client, mode):
    image = picture(W, 32)
    result = run(client, "img2img", image, strength=0.7, resize_mode=mode, width=48, height=48)
    assert (result.width, result.height) == (48, 48) and pixels(result).shape == (48, 48, 4)


def test_img2img_resize_modes_differ(client):
    image = picture(W, 32)
    outs = [pixels(run(client, "img2img", image, strength=0.5, resize_mode=m, width=48, height=48))
            for m in ("just_resize", "crop_and_resize", "resize_and_fill")]
    assert not np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[1], outs[2])


def test_img2img_scale_sets_the_output_size(client):
    result = run(client, "img2img", picture(), strength=0.5, scale=1.5)
    assert (result.width, result.height) == (96, 96)


def test_img2img_of_a_selection_is_placed_at_its_bounds(client):
    image = picture()
    result = run(client, "img2img", image, box_mask(W, H, 8, 16, 40, 24), strength=0.6)
    (layer,) = result.layers
    assert (result.width, result.height) == (W, H)
    assert (layer.x, layer.y, layer.image.width, layer.image.height) == (8, 16, 40, 24)


def test_colour_correction_pulls_colours_towards_the_original(client):
    image = picture()
    plain = run(client, "img2img", image, strength=1.0)
    corrected = run(client, "img2img", image, strength=1.0, colour_correction=True)
    mean = lambda a: a[..., :3].reshape(-1, 3).mean(axis=0)  # noqa: E731
    assert np.abs(mean(pixels(corrected)) - mean(image)).sum() < np.abs(mean(pixels(plain)) - mean(image)).sum()


# -- inpaint ----------------------------------------------------------------------------


def test_inpaint_changes_the_mask_only_and_places_the_layer(client):
    image = picture()
    result = run(client, "inpaint", image, MASK, strength=0.9)
    (layer,) = result.layers
    soft = masks.feather(MASK, 4)  # the default: feathered inside the mask only
    box = masks.bounds(soft)
    assert (result.width, result.height) == (W, H)
    assert (layer.x, layer.y, layer.image.width, layer.image.height) == (box.x, box.y, box.width, box.height)
    assert np.array_equal(pixels(result)[..., 3], masks.crop(soft, box))  # the feathered mask is the alpha
    assert_inpainted(image, MASK, result)
    again = run(client, "inpaint", image, MASK, strength=0.9)
    assert np.array_equal(pixels(result), pixels(again))


def test_invert_mask_regenerates_the_outside(client):
    image = picture()
    result = run(client, "inpaint", image, MASK, strength=0.9, invert_mask=True, mask_blur=0)
    out = flat(image, result)
    assert np.array_equal(out[MASK > 0], image[MASK > 0])
    assert (out[MASK == 0] != image[MASK == 0]).any(axis=-1).mean() > 0.5


def test_mask_blur_sets_the_feather(client):
    image = picture()
    result = run(client, "inpaint", image, MASK, strength=0.9, mask_blur=8)
    soft = masks.feather(MASK, 8)
    assert np.array_equal(pixels(result)[..., 3], masks.crop(soft, masks.bounds(soft)))
    assert_inpainted(image, MASK, result, blur=8)
    webui = run(client, "inpaint", image, MASK, strength=0.9, mask_blur=8, mask_blur_outward=True)
    soft = masks.blur(MASK, 8)
    assert np.array_equal(pixels(webui)[..., 3], masks.crop(soft, masks.bounds(soft)))
    assert_inpainted(image, MASK, webui, blur=8, outward=True)


@pytest.mark.parametrize("content", ["fill", "latent_noise", "latent_nothing"])
def test_masked_content_changes_how_the_mask_starts(client, content):
    image = picture()
    original = run(client, "inpaint", image, MASK, strength=0.8)
    other = run(client, "inpaint", image, MASK, strength=0.8, masked_content=content)
    assert_inpainted(image, MASK, other)
    assert not np.array_equal(pixels(original), pixels(other))


def test_inpaint_colour_correction(client):
    image = picture()
    plain = run(client, "inpaint", image, MASK, strength=1.0)
    corrected = run(client, "inpaint", image, MASK, strength=1.0, colour_correction=True)
    assert_inpainted(image, MASK, corrected)
    assert not np.array_equal(pixels(plain), pixels(corrected))


def test_only_masked_works_at_native_resolution_and_pastes_back(client):
    image = picture(128, 96)
    mask = box_mask(128, 96, 70, 50, 20, 16)
    whole = run(client, "inpaint", image, mask, strength=0.9, inpaint_area="whole_picture")
    only = run(client, "inpaint", image, mask, strength=0.9, inpaint_area="only_masked", padding=8)
    assert (only.layers[0].x, only.layers[0].y) == (whole.layers[0].x, whole.layers[0].y)
    assert_inpainted(image, mask, only)
    assert not np.array_equal(pixels(whole), pixels(only))
    wider = run(client, "inpaint", image, mask, strength=0.9, inpaint_area="only_masked", padding=32)
    assert_inpainted(image, mask, wider)
    assert not np.array_equal(pixels(only), pixels(wider))  # more context, a different picture


def test_soft_inpainting_blends_by_difference_and_each_parameter_counts(client):
    image = picture()
    # Four steps, so that the per-step blend runs at several noise levels.
    tiny = {"steps": 4, "exact_steps": True}
    hard = run(client, "inpaint", image, MASK, strength=0.8, mask_blur=6, steps=4, exact_steps=True)
    soft = run(client, "inpaint", image, MASK, strength=0.8, mask_blur=6, soft_inpaint=True, **tiny)
    assert_inpainted(image, MASK, soft, blur=6)
    assert not np.array_equal(pixels(hard), pixels(soft))
    # The alpha comes from the difference to the original, not from the mask alone.
    assert not np.array_equal(pixels(hard)[..., 3], pixels(soft)[..., 3])
    for name, value in [("soft_schedule_bias", 3.0), ("soft_preservation_strength", 2.0), ("soft_transition_contrast", 1.0),
                        ("soft_mask_influence", 1.0), ("soft_difference_threshold", 2.0), ("soft_difference_contrast", 6.0)]:
        changed = run(client, "inpaint", image, MASK, strength=0.8, mask_blur=6, soft_inpaint=True, **{**tiny, name: value})
        assert not np.array_equal(pixels(soft), pixels(changed)), name


def test_inpaint_with_an_inpainting_model_and_with_sdxl(client):
    image = picture()
    for model in (SD15_INPAINT, SDXL):
        result = run(client, "inpaint", image, MASK, model=model, strength=0.9)
        assert_inpainted(image, MASK, result)


def test_inpaint_sketch_lets_the_strokes_show_through(client):
    image = picture()
    image[28:36, 20:40, :3] = (0, 0, 255)  # the painted stroke
    opaque = run(client, "inpaint_sketch", image, MASK, strength=0.7, mask_blur=0)
    half = run(client, "inpaint_sketch", image, MASK, strength=0.7, mask_blur=0, mask_transparency=0.5)
    assert (pixels(opaque)[..., 3] == 255).all()
    assert (pixels(half)[..., 3] == 128).all()
    out = flat(image, half)
    assert np.array_equal(out[MASK == 0], image[MASK == 0])


def test_outpaint_grows_the_canvas_and_keeps_the_original(client):
    image = picture(48, 48)
    result = run(client, "outpaint", image, strength=0.9, left=16, top=8, right=0, bottom=8)
    assert (result.width, result.height) == (64, 64)
    assert (result.offset_x, result.offset_y) == (16, 8)  # where the old canvas lies on the grown one
    (layer,) = result.layers
    assert (layer.x, layer.y, layer.image.width, layer.image.height) == (0, 0, 64, 64)
    out = pixels(result)
    assert (out[..., 3] == 255).all()
    inner = out[8:56, 16:64]
    far = masks.blur(np.pad(np.zeros((48, 48), np.uint8), ((8, 8), (16, 0)), constant_values=255), 4)[8:56, 16:64]
    assert np.array_equal(inner[far == 0], image[far == 0])  # the original, bit for bit, beyond the feather


def test_outpaint_needs_a_side(client):
    with pytest.raises(JobFailed) as info:
        run(client, "outpaint", picture(), strength=0.9)
    assert info.value.error.code is ErrorCode.INVALID_PARAM


# -- upscale ----------------------------------------------------------------------------


def test_upscale_lanczos_then_refine(client):
    image = picture(40, 32)
    plain = run(client, "upscale", image, model=None, refine=False, scale=2.0)
    assert (plain.width, plain.height) == (80, 64)
    refined = run(client, "upscale", image, scale=2.0, strength=0.3, tile_size=48, tile_overlap=16, steps=4)
    assert (refined.width, refined.height) == (80, 64) and pixels(refined).shape == (64, 80, 4)
    assert not np.array_equal(pixels(plain), pixels(refined))
    assert np.abs(pixels(plain).astype(int) - pixels(refined)).mean() < 60  # low strength keeps the picture


def test_unknown_upscaler_is_a_clear_error(client):
    with pytest.raises(JobFailed) as info:
        run(client, "upscale", picture(), upscaler="nope", refine=False)
    assert info.value.error.code is ErrorCode.INVALID_PARAM and info.value.error.field == "job.params.upscaler"


# -- cancel -----------------------------------------------------------------------------


def test_cancel_stops_within_a_step(diffusers_server):
    with Client(diffusers_server.url, name="cancel-test", timeout=120) as c:
        request = JobRequest("diffusers", "txt2img", model=SD15, params={**FAST, "steps": 150, "width": 128, "height": 128})
        events = run_and_cancel(c, request, "denoising")
        steps = [e.step for e in events if e.TYPE == "progress" and e.stage == "denoising"]
        assert max(steps) < 150  # stopped long before the end (and without decoding)
        # The server is free again at once.
        result = run(c, "txt2img", width=W, height=H)
        assert result.layers


def test_the_device_is_reported_by_the_server_and_paintwire_info(client, diffusers_server):
    import subprocess
    import sys

    device = client.capabilities.engine("diffusers").device
    assert (device.name, device.kind, device.dtype) == ("CPU", "cpu", "fp32") and device.total_memory >= device.free_memory > 0
    assert client.capabilities.engine("classical").device is None
    assert "  device: CPU, fp32, " in diffusers_server.log()  # the start-up summary (free memory as it was then)
    info = subprocess.run([sys.executable, "-m", "paintwire", "info", "--url", diffusers_server.url], capture_output=True, text=True, timeout=120)
    assert info.returncode == 0 and "  device: CPU, fp32, " in info.stdout and " GiB free" in info.stdout
    # Each checkpoint's memory plan, in the summary and under each model in paintwire info: on the CPU, nothing is offloaded.
    assert "  memory: " in diffusers_server.log() and "all in the computer's memory" in diffusers_server.log()
    model_line = info.stdout.index(f"  model {SD15} (sd15")
    assert info.stdout[model_line:].splitlines()[1].startswith("    memory: all in the computer's memory")
