"""The diffusers engine's small parts: prompt parsing, step counts, resizing, colour,
previews, soft-inpainting maths, the model cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from paintwire.protocol import ErrorCode, ProtocolError  # noqa: E402
from paintwire.server.engines.diffusion.cache import ModelCache  # noqa: E402
from paintwire.server.engines.diffusion.colour import match_colours  # noqa: E402
from paintwire.server.engines.diffusion.lora import embeddings_in, parse_prompt  # noqa: E402
from paintwire.server.engines.diffusion.models import ModelEntry, ModelRegistry  # noqa: E402
from paintwire.server.engines.diffusion.families import SD15, SDXL, family_of  # noqa: E402
from paintwire.server.engines.diffusion.entries import CHECKPOINT_KINDS  # noqa: E402
from paintwire.server.engines.diffusion.previews import PreviewMaker, latents_to_rgb  # noqa: E402
from paintwire.server.engines.diffusion.resize import fit, generation_size  # noqa: E402
from paintwire.server.engines.diffusion.sampling import inference_steps  # noqa: E402
from paintwire.server.engines.diffusion.soft_inpaint import SoftSettings, latent_blend, modified_mask  # noqa: E402
from paintwire.server.engines.base import JobContext  # noqa: E402
from paintwire.protocol.rect import Rect  # noqa: E402


def registry(*entries: tuple[str, str]) -> ModelRegistry:
    return ModelRegistry({n: ModelEntry(n, k, Path(f"/m/{n}.safetensors"), True, family_of(k) if k in CHECKPOINT_KINDS else None) for n, k in entries})


def test_lora_tags_are_parsed_out_of_the_prompt():
    reg = registry(("detail", "lora"), ("style-2", "lora"), ("ckpt", "sd15"))
    prompt, uses = parse_prompt("a cat <lora:detail:0.6>, sunset <lora:style-2> <lora:detail:-0.25>", reg)
    assert prompt == "a cat , sunset"
    assert [(u.entry.name, u.weight) for u in uses] == [("detail", -0.25), ("style-2", 1.0)]


@pytest.mark.parametrize("name", ["nope", "ckpt"])
def test_an_unknown_lora_names_the_field_and_the_known_ones(name):
    with pytest.raises(ProtocolError) as info:
        parse_prompt(f"x <lora:{name}:1>", registry(("detail", "lora"), ("ckpt", "sd15")))
    assert info.value.code is ErrorCode.INVALID_PARAM and info.value.field == "job.params.prompt"
    assert "detail" in info.value.message


def test_embeddings_are_found_by_name():
    reg = registry(("badhands", "embedding"), ("style", "embedding"))
    assert [e.name for e in embeddings_in(["a portrait", "badhands, blurry"], reg)] == ["badhands"]


@pytest.mark.parametrize("steps,strength", [(20, 0.75), (4, 0.5), (3, 0.35), (10, 0.2), (7, 0.99), (1, 0.01)])
def test_steps_times_strength_by_default_and_exact_on_request(steps, strength):
    assert int(inference_steps(steps, strength, False) * strength) == max(1, int(steps * strength))
    assert int(inference_steps(steps, strength, True) * strength) == steps
    assert inference_steps(steps, 1.0, True) == steps


def test_only_masked_generates_at_the_native_pixel_count():
    w, h = generation_size(40, 20, native=512)
    assert w % 8 == 0 and h % 8 == 0 and abs(w / h - 2) < 0.1 and abs(w * h - 512 * 512) / 512**2 < 0.05
    assert generation_size(61, 30) == (64, 32)


def test_resize_modes():
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = 200  # left half bright
    assert fit(img, 40, 40, "just_resize").shape == (40, 40, 3)
    crop = fit(img, 20, 20, "crop_and_resize")
    assert crop.shape == (20, 20, 3) and crop[:, :9].mean() > 150 and crop[:, 11:].mean() < 50
    filled = fit(img, 40, 40, "resize_and_fill")
    assert filled.shape == (40, 40, 3)
    assert np.array_equal(filled[0], filled[10])  # the band repeats the edge row


def test_colour_correction_matches_the_histogram():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 255, (32, 32, 3)).astype(np.uint8)
    ref[..., 0] = np.clip(ref[..., 0] // 2 + 120, 0, 255)
    src = rng.integers(0, 255, (24, 24, 3)).astype(np.uint8)
    out = match_colours(src, ref)
    assert out.shape == src.shape
    assert abs(out.mean(axis=(0, 1)) - ref.mean(axis=(0, 1))).sum() < abs(src.mean(axis=(0, 1)) - ref.mean(axis=(0, 1))).sum() / 3


def test_previews_project_latents_and_are_rate_limited():
    sent = []
    ctx = JobContext(on_preview=lambda rgba, box: sent.append((rgba, box)), previews_per_second=1 / 60)
    maker = PreviewMaker(ctx, Rect(8, 4, 40, 24), SD15)
    assert maker.offer(torch.randn(1, 4, 3, 5)) and not maker.offer(torch.randn(1, 4, 3, 5))
    (rgba, box), = sent
    assert rgba.shape == (24, 40, 4) and rgba.dtype == np.uint8 and box == Rect(8, 4, 40, 24)
    # A big work area gets a preview of at most PREVIEW_MAX_SIDE, made small from the start.
    big = PreviewMaker(JobContext(on_preview=lambda rgba, box: sent.append((rgba, box))), Rect(0, 0, 2048, 1024), SD15)
    assert big.offer(torch.randn(1, 4, 128, 256)) and sent[-1][0].shape == (128, 256, 4)
    # Previews off: nothing is made.
    assert not PreviewMaker(JobContext(on_preview=sent.append, previews_per_second=0), Rect(0, 0, 8, 8), SD15).offer(torch.randn(1, 4, 1, 1))
    assert latents_to_rgb(torch.zeros(4, 2, 2), SDXL).shape == (2, 2, 3)


def test_soft_blend_ends_and_schedule():
    s = SoftSettings()
    a, b = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3)
    assert torch.allclose(latent_blend(s, a, b, torch.zeros(1, 1, 3, 3)), a, atol=1e-5)
    assert torch.allclose(latent_blend(s, a, b, torch.ones(1, 1, 3, 3)), b, atol=1e-5)
    half = torch.full((1, 1, 1, 1), 0.5)
    # Early (high noise) a half-masked pixel keeps more of the original than late.
    assert modified_mask(s, half, 10.0) < modified_mask(s, half, 0.1)
    assert modified_mask(SoftSettings(preservation_strength=4.0), half, 1.0) < modified_mask(s, half, 1.0)


class FakePipe:
    def __init__(self, size):
        self.components = {"unet": torch.nn.Linear(size, 1, bias=False)}


def test_cache_keeps_models_warm_and_evicts_the_least_recent_over_budget():
    loads = []

    def load(entry, vae):
        loads.append(entry.name)
        return FakePipe(256)  # 1 KiB of weights

    cache = ModelCache(load, budget=2500)
    a, b, c = (ModelEntry(n, "sd15", Path(n), family=SD15) for n in "abc")
    first = cache.get(a)
    assert cache.get(a) is first and loads == ["a"]
    cache.get(b)
    cache.get(a)  # a is now the most recent
    cache.get(c)  # three do not fit: b goes
    assert cache.loaded == ["a", "c"] and loads == ["a", "b", "c"]
    cache.get(b)
    assert loads[-1] == "b"


def test_mask_attenuate_and_feather_outside():
    from paintwire.server import masks

    mask = np.zeros((20, 20), np.uint8)
    mask[5:15, 5:15] = 255
    half = masks.attenuate(mask, 0.5)
    assert set(np.unique(half)) == {0, 128}
    weights = np.linspace(0, 1, 20, dtype=np.float32)[None, :].repeat(20, 0)
    varied = masks.attenuate(mask, weights)
    assert (varied[mask == 0] == 0).all() and varied[10, 14] > varied[10, 6]
    grown = masks.feather_outside(mask, 3)
    assert (grown[mask == 255] == 255).all()  # the masked area stays fully masked
    assert grown[10, 3] > 0 and grown[10, 3] < 255  # the feather reaches outwards


class _LocalUpscaler:
    """A real torch image model with spandrel's calling shape (``.scale``, called on
    (1, 3, H, W) in [0, 1]): a 3x3 convolution, then 2x nearest upsampling. Its receptive
    field is smaller than a tile's context, so tiles must give the pixels of one whole pass."""

    scale = 2

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Conv2d(3, 3, 3, padding=1, padding_mode="replicate")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(torch.sigmoid(self.model(x)), scale_factor=2, mode="nearest")


def test_upscaler_tiles_give_the_same_pixels_as_one_pass():
    from paintwire.server.engines.diffusion.tiling import TileGrid
    from paintwire.server.engines.diffusion.upscalers import OVERLAP, TILE, Upscaler, run_tiles

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (TILE + 90, TILE * 2 + 33, 3), dtype=np.uint8)
    model = Upscaler("local", _LocalUpscaler(), torch.device("cpu"), torch.float32)
    steps = []
    grid = TileGrid(rgb.shape[1], rgb.shape[0], TILE, OVERLAP)
    tiled = run_tiles(model, rgb, grid, lambda i, n: steps.append((i, n)))
    with torch.inference_mode():
        whole = model(torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(255))[0]
    whole = whole.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    assert tiled.shape == (rgb.shape[0] * 2, rgb.shape[1] * 2, 3)
    diff = np.abs(tiled.astype(int) - whole)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999  # equal but for float rounding in the blend
    assert steps == [(i, 6) for i in range(1, 7)]  # 2 rows x 3 columns of tiles, each reported


@pytest.mark.parametrize("scale,size,target,passes", [(4, 100, 400, 1), (4, 100, 200, 1), (2, 100, 400, 2), (2, 100, 800, 3),
                                                      (2, 100, 1600, 3), (1, 100, 300, 1), (2, 100, 150, 1)])
def test_upscaler_passes_reach_the_target(scale, size, target, passes):
    from paintwire.server.engines.diffusion.upscalers import passes_for

    assert passes_for(scale, size, size, target, target) == passes
