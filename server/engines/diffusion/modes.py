"""The modes: turning a validated job into result layers with one loaded model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from paintwire.protocol import ErrorCode, ProtocolError, Rect

from ... import masks
from ...layers import OutputLayer
from ...region import InpaintRegion, context_side, flatten, prepare_region, region_layer
from ...resample import lanczos_resize
from ..base import EngineJob, EngineOutput, JobContext
from .cache import LoadedModel
from .colour import match_colours
from .control.guidance import ControlSet, Guidance, Place
from .families.base import EDIT, INPAINT
from .generate import Sampling, denoise, generators, to_pil
from .models import UPSCALER, ModelRegistry
from .phases import cancel_points
from .previews import PreviewMaker
from .references import edit_references
from .resize import fit, generation_size, multiple_of, resize_mask, resize_rgb
from .sampling import img2img_calls, inference_steps
from .soft_inpaint import SoftBlend, SoftSettings, difference_alpha
from .tiling import TileBlender, TileGrid
from .upscalers import load_upscaler, passes_for, resize_alpha, upscale_rgb
from .vae_codec import encode
from .vae_encodes import reads_masked_image

@dataclass
class ModeRunner:
    loaded: LoadedModel | None  # None only for an upscale without refine
    registry: ModelRegistry
    job: EngineJob
    ctx: JobContext
    sampling: Sampling
    device: torch.device
    controls: ControlSet | None = None  # the job's control layers, models loaded

    @property
    def p(self) -> dict[str, Any]:
        return self.job.params

    def settings(self, seed: int, **extra: Any) -> dict[str, Any]:
        model = self.loaded.entry.name if self.loaded else None
        sampler = self.loaded.entry.family.sampler_used(self.p["scheduler"]) if self.loaded else self.p["scheduler"]
        # The runner adds the engine's name and the mode to every layer's settings.
        return {"model": model, **self.p, "scheduler": sampler, "seed": seed, **extra}

    def previews(self, box: Rect) -> PreviewMaker:
        return PreviewMaker(self.ctx, box, self.loaded.entry.family)

    def require_latent_edits(self, what: str, field: str) -> None:
        """Refuse what blends or fills the latents directly on a family whose latents are packed."""
        family = self.loaded.entry.family
        if not family.latent_edits:
            raise ProtocolError(ErrorCode.INVALID_PARAM, f"{what} works with Stable Diffusion models only, not with this "
                                f"{family.label} model; turn it off (or choose an SD model).", field)

    def check_size(self, width: int, height: int, field: str) -> None:
        if width * height > self.job.max_output_pixels:
            raise ProtocolError(
                ErrorCode.INVALID_PARAM,
                f"The result would be {width}x{height} = {width * height} pixels; this server makes at most {self.job.max_output_pixels}.",
                field,
            )

    def guide(self, place: Place) -> Guidance | None:
        """The control layers for one run: ``place`` takes a canvas-space layer to the run's
        area at its generated size, by the same rule as the run's image."""
        return self.controls.at(place) if self.controls else None

    @property
    def multiple(self) -> int:
        """What generated sides are rounded to (8 for Stable Diffusion, 16 for Flux)."""
        return self.loaded.entry.family.size_multiple

    def names(self, label: str) -> list[str]:
        n = self.sampling.batch
        return [label if n == 1 else f"{label} {i + 1}/{n}" for i in range(n)]

    # -- txt2img ------------------------------------------------------------------------

    def txt2img(self) -> EngineOutput:
        native = self.loaded.native_size
        width, height = self.p["width"] or native, self.p["height"] or native
        self.check_size(width, height, "job.params.width")
        gw, gh = multiple_of(width, self.multiple), multiple_of(height, self.multiple)
        images, _ = denoise(self.loaded, "txt2img", self.sampling, self.ctx, width=gw, height=gh,
                            previews=self.previews(Rect(0, 0, width, height)),
                            guidance=self.guide(lambda layer: fit(layer, gw, gh, "crop_and_resize")))
        layers = [
            OutputLayer(_opaque(resize_rgb(im, width, height)), 0, 0, name, seed, self.settings(seed))
            for im, name, seed in zip(images, self.names("Generated"), self.sampling.seeds)
        ]
        return EngineOutput(layers, width, height)

    # -- img2img ------------------------------------------------------------------------

    def img2img(self) -> EngineOutput:
        image = self.job.image
        canvas_w, canvas_h = self.job.canvas_size
        ox, oy = self.job.origin  # where a crop lies on the canvas
        box = masks.bounds(self.job.mask) if self.job.mask is not None else None
        if self.job.mask is not None and box is None:
            raise ProtocolError(ErrorCode.BAD_MASK, "The mask is empty: select the area to redraw.", "job.mask")
        box = box or Rect(0, 0, image.shape[1], image.shape[0])
        source = np.ascontiguousarray(masks.crop(image, box)[..., :3])
        local = box  # in the image's pixels, as the control layers are
        box = Rect(box.x + ox, box.y + oy, box.width, box.height)  # in canvas pixels from here on
        if box.area != canvas_w * canvas_h:
            width, height = box.width, box.height  # a selection is redrawn in place, at its own size
        else:
            width = self.p["width"] or max(8, round(canvas_w * self.p["scale"]))
            height = self.p["height"] or max(8, round(canvas_h * self.p["scale"]))
        self.check_size(width, height, "job.params.scale")
        gw, gh = multiple_of(width, self.multiple), multiple_of(height, self.multiple)
        if self.p["resize_mode"] == "latent":
            self.require_latent_edits("Resizing in latent space", "job.params.resize_mode")
            # Encode at the input's own size and resize the latents, not the pixels.
            latents = encode(self.loaded.base, resize_rgb(source, multiple_of(source.shape[1], self.multiple), multiple_of(source.shape[0], self.multiple)))
            f = self.loaded.vae_scale_factor
            init: Any = torch.nn.functional.interpolate(latents, size=(gh // f, gw // f), mode="bilinear", align_corners=False)
        else:
            init = to_pil(fit(source, gw, gh, self.p["resize_mode"]))
        out_box = Rect(box.x, box.y, width, height) if box.area != canvas_w * canvas_h else Rect(0, 0, width, height)
        layer_mode = "just_resize" if self.p["resize_mode"] == "latent" else self.p["resize_mode"]
        images, _ = denoise(self.loaded, "img2img", self.sampling, self.ctx, width=gw, height=gh, image=init,
                            strength=self.p["strength"], exact_steps=self.p["exact_steps"], previews=self.previews(out_box),
                            guidance=self.guide(lambda layer: fit(masks.crop(layer, local), gw, gh, layer_mode)))
        layers = []
        for im, name, seed in zip(images, self.names("Img2img"), self.sampling.seeds):
            rgb = resize_rgb(im, width, height)
            if self.p["colour_correction"]:
                rgb = match_colours(rgb, source)
            layers.append(OutputLayer(_opaque(rgb), out_box.x, out_box.y, name, seed, self.settings(seed)))
        if out_box.x or out_box.y:
            return EngineOutput(layers, canvas_w, canvas_h)
        return EngineOutput(layers, width, height)

    # -- inpaint and inpaint sketch -----------------------------------------------------

    def inpaint(self) -> EngineOutput:
        # Inpaint sketch: the strokes are in the image; the transparency lets them show through the result.
        transparency = self.p.get("mask_transparency", 0.0)
        label = "Inpaint sketch" if self.job.mode == "inpaint_sketch" else "Inpaint"
        layers = self.inpaint_region(self.selection_region(), label, transparency)
        return EngineOutput(layers, *self.job.canvas_size)

    def selection_region(self) -> InpaintRegion:
        """The region the job's mask selects, by the inpaint parameters (server/region.py)."""
        p = self.p
        return prepare_region(self.job.image, self.job.mask, blur=p["mask_blur"], blur_outward=p["mask_blur_outward"],
                              invert=p["invert_mask"], padding=p["padding"],
                              whole_picture=p["inpaint_area"] == "whole_picture", min_side=context_side(self.loaded.native_size),
                              origin=self.job.origin, canvas=self.job.canvas)

    def inpaint_region(self, region: InpaintRegion, label: str, transparency: float = 0.0,
                       frame: Callable[[np.ndarray], np.ndarray] | None = None,
                       references: list[Image.Image] | None = None) -> list[OutputLayer]:
        """``frame``: takes a canvas-space control layer to the canvas the region lies on
        (the grown canvas of an expand); None when that is the canvas itself. ``references``:
        an instruction edit's reference pictures (None: no edit)."""
        p, area = self.p, region.area
        only_masked = p["inpaint_area"] == "only_masked"
        gw, gh = generation_size(area.width, area.height, self.loaded.native_size if only_masked else None, self.multiple)
        original = np.ascontiguousarray(region.image[..., :3])
        hard = np.where(region.mask > 0, 255, 0).astype(np.uint8)  # every pixel the result may touch
        # The edit mode offers neither: its selection starts from the original, blended by the mask.
        content, soft = p.get("masked_content", "original"), p.get("soft_inpaint", False)
        start = masks.fill(original, hard) if content == "fill" else original
        gen_rgb = resize_rgb(start, gw, gh)
        if soft:
            self.require_latent_edits("Soft inpainting", "job.params.soft_inpaint")
        # The pipelines binarise their mask at 0.5; soft inpainting does its own blend, so it
        # lets the pipeline regenerate everything the feathered mask touches.
        gen_mask = resize_mask(hard if soft else region.mask, gw, gh)
        init: Any = to_pil(gen_rgb)
        masked_latents = None
        strength = p["strength"]
        if content in ("latent_noise", "latent_nothing") and strength < 1.0:
            self.require_latent_edits("Masked content latent noise or latent nothing", "job.params.masked_content")
            init, masked_latents = self.latent_content(gen_rgb, gen_mask, content)
        blends: list[SoftBlend] = []  # the soft blend of this run, made once the run's scheduler exists
        make_blend = None
        if soft:
            f = self.loaded.vae_scale_factor
            latent_mask = torch.from_numpy(resize_mask(region.mask, gw // f, gh // f).astype(np.float32) / 255)[None, None]
            settings = SoftSettings.from_params(p)

            def make_blend(tap: Any) -> SoftBlend:
                blends.append(SoftBlend(settings, latent_mask, tap, lambda: encode(self.loaded.base, gen_rgb)))
                return blends[-1]
        to_frame = frame or (lambda layer: layer)
        ox, oy = self.job.origin  # the area is in canvas pixels; control layers have the image's geometry (a crop's)
        local = Rect(area.x - ox, area.y - oy, area.width, area.height)
        guidance = self.guide(lambda layer: resize_rgb(masks.crop(to_frame(layer), local), gw, gh))
        images, hook = denoise(self.loaded, "inpaint", self.sampling, self.ctx, width=gw, height=gh, image=init,
                               mask=to_pil(gen_mask), strength=strength, exact_steps=p["exact_steps"],
                               masked_image_latents=masked_latents, previews=self.previews(area), blend=make_blend,
                               guidance=guidance, references=references)
        layers = []
        for i, (im, name, seed) in enumerate(zip(images, self.names(label), self.sampling.seeds)):
            rgb = resize_rgb(im, area.width, area.height)
            if p["colour_correction"]:
                rgb = match_colours(rgb, original)
            alpha = region.mask
            if blends and hook.last_latents is not None:
                # Soft inpainting: the alpha is where the result differs from the original.
                weight = difference_alpha(settings, hook.last_latents[i:i + 1], blends[0].original()[:1], latent_mask)
                alpha = masks.attenuate(hard, resize_mask(weight, area.width, area.height))
            if transparency:
                alpha = masks.attenuate(alpha, 1.0 - transparency)
            layers.append(region_layer(dataclasses.replace(region, mask=alpha), rgb, name, seed, self.settings(seed)))
        return layers

    def latent_content(self, rgb: np.ndarray, mask: np.ndarray, content: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Start latents whose masked part is random noise or zeros, and the latents of the
        masked image (which the pipeline cannot compute itself from latents; zeros for a
        UNet that does not read them)."""
        pipe = self.loaded.base
        latents = encode(pipe, rgb)
        f = self.loaded.vae_scale_factor
        m = torch.from_numpy((resize_mask(mask, rgb.shape[1] // f, rgb.shape[0] // f) > 127).astype(np.float32))[None, None]
        m = m.to(latents)
        if content == "latent_noise":
            noise = torch.cat([torch.randn(latents.shape, generator=g) for g in generators(self.sampling.seeds)]).to(latents)
            start = latents * (1 - m) + noise * m
        else:
            start = latents * (1 - m)
        if not reads_masked_image(pipe):
            return start, torch.zeros_like(latents)
        keep = rgb * (mask < 128)[..., None]
        return start, encode(pipe, keep.astype(np.uint8))

    # The sketch's strokes are already in the image and the mask: inpainting does the rest.
    inpaint_sketch = inpaint

    # -- edit ---------------------------------------------------------------------------

    def edit(self) -> EngineOutput:
        """The instruction (the prompt) applied to the selection, with the promises of an
        inpaint (region first, the feather inside the selection, every pixel outside it
        kept), or to the whole picture when nothing is selected. The edit reference
        layers go to the model beside the picture, as its family takes them."""
        references = edit_references(self.job.controls)
        if self.job.mask is None:
            return self.edit_whole(references)
        layers = self.inpaint_region(self.selection_region(), "Edit", references=references)
        return EngineOutput(layers, *self.job.canvas_size)

    def edit_whole(self, references: list[Image.Image]) -> EngineOutput:
        image, p = self.job.image, self.p
        h, w = image.shape[:2]
        self.check_size(w, h, "job.image")
        gw, gh = multiple_of(w, self.multiple), multiple_of(h, self.multiple)
        source = np.ascontiguousarray(image[..., :3])
        picture = to_pil(resize_rgb(source, gw, gh))
        ox, oy = self.job.origin
        previews = self.previews(Rect(ox, oy, w, h))
        if p["strength"] >= 1.0:
            images, _ = denoise(self.loaded, EDIT, self.sampling, self.ctx, width=gw, height=gh, image=picture,
                                previews=previews, references=references)
        else:  # keeping more of the picture: an inpaint of all of it, from the picture partly noised
            everything = to_pil(np.full((gh, gw), 255, np.uint8))
            images, _ = denoise(self.loaded, INPAINT, self.sampling, self.ctx, width=gw, height=gh, image=picture, mask=everything,
                                strength=p["strength"], exact_steps=p["exact_steps"], previews=previews, references=references)
        layers = []
        for im, name, seed in zip(images, self.names("Edit"), self.sampling.seeds):
            rgb = resize_rgb(im, w, h)
            if p["colour_correction"]:
                rgb = match_colours(rgb, source)
            layers.append(OutputLayer(_opaque(rgb), ox, oy, name, seed, self.settings(seed)))
        return EngineOutput(layers, *self.job.canvas_size)

    # -- outpaint -----------------------------------------------------------------------

    def outpaint(self) -> EngineOutput:
        image, p = self.job.image, self.p
        left, top, right, bottom = p["left"], p["top"], p["right"], p["bottom"]
        if not (left or top or right or bottom):
            raise ProtocolError(ErrorCode.INVALID_PARAM, "Expand needs at least one of left, top, right, bottom above 0.", "job.params.left")
        h, w = image.shape[:2]
        width, height = w + left + right, h + top + bottom
        self.check_size(width, height, "job.params.left")
        inner = Rect(left, top, w, h)
        base = np.zeros((height, width, 4), np.uint8)  # the grown canvas: transparent around the original
        masks.paste(base, image, inner)
        new_area = np.full((height, width), 255, np.uint8)
        masks.paste(new_area, np.zeros((h, w), np.uint8), inner)
        canvas = base.copy()
        canvas[..., :3] = masks.fill(base[..., :3], new_area)  # colours from the edges, under the new area
        canvas[..., 3] = 255
        # The feather reaches into the original only; the new area stays fully generated.
        soft = masks.feather_outside(new_area, p["mask_blur"])
        region = prepare_region(canvas, soft, blur=0, invert=False, padding=p["padding"],
                                whole_picture=p["inpaint_area"] == "whole_picture", min_side=context_side(self.loaded.native_size))
        def grow(layer: np.ndarray) -> np.ndarray:  # a control layer at the input's size, on the grown canvas
            grown = np.zeros((height, width, 4), np.uint8)
            masks.paste(grown, layer, inner)
            return grown

        layers = []
        for layer in self.inpaint_region(region, "Expand", frame=grow):
            # One layer of the whole new canvas: the original, untouched, with the new area around it.
            layers.append(OutputLayer(flatten(base, layer), 0, 0, layer.name, layer.seed, layer.settings))
        return EngineOutput(layers, width, height, (left, top))

    # -- upscale ------------------------------------------------------------------------

    def upscale(self) -> EngineOutput:
        """The WebUI's "SD upscale": enlarge with Lanczos or an upscaler model, then (with
        ``refine``) add detail with a tiled low-strength img2img pass."""
        image, p = self.job.image, self.p
        h, w = image.shape[:2]
        width, height = p["width"] or max(1, round(w * p["scale"])), p["height"] or max(1, round(h * p["scale"]))
        self.check_size(width, height, "job.params.scale")
        if p["upscaler"] == "lanczos":
            up = lanczos_resize(image, width, height, on_tile=lambda i, n: self.ctx.progress(i, n, "upscaling"))
        else:
            up = self.model_upscale(image, width, height)
        seed = self.sampling.seed
        if p["refine"] and p["strength"] > 0:
            up[..., :3] = self.refine_tiled(up[..., :3])
        layer = OutputLayer(up, 0, 0, f"Upscale {width}x{height}", seed, self.settings(seed))
        return EngineOutput([layer], width, height)

    def model_upscale(self, image: np.ndarray, width: int, height: int) -> np.ndarray:
        entry = self.registry.get(self.p["upscaler"])
        if entry is None or entry.kind != UPSCALER:
            known = ", ".join(["lanczos"] + [e.name for e in self.registry.of_kind(UPSCALER)])
            raise ProtocolError(ErrorCode.INVALID_PARAM, f"Unknown upscaler {self.p['upscaler']!r}; the server has: {known}.", "job.params.upscaler")
        self.ctx.progress(0, 1, "loading upscaler")
        model = load_upscaler(entry, self.device)
        h, w = image.shape[:2]
        passes = passes_for(model.scale, w, h, width, height)
        reach = model.scale**passes
        # The model's own output may be bigger than the result (a 4x model asked for 2x): bound it too.
        self.check_size(w * reach, h * reach, "job.params.upscaler")
        with cancel_points(model.descriptor.model, self.ctx):  # a tile can take seconds on a CPU
            rgb = upscale_rgb(model, np.ascontiguousarray(image[..., :3]), passes, lambda i, n: self.ctx.progress(i, n, "upscaling"))
        del model
        if rgb.shape[:2] != (height, width):
            rgb = resize_rgb(rgb, width, height)
        return np.dstack([rgb, resize_alpha(np.ascontiguousarray(image[..., 3]), width, height)])

    def refine_tiled(self, rgb: np.ndarray) -> np.ndarray:
        """A low-strength img2img pass over overlapping tiles at the model's native size, blended
        with feathered ramps so that no seam shows; one row of tiles is held in float at a time."""
        p = self.p
        h, w = rgb.shape[:2]
        tile = min(multiple_of(p["tile_size"] or self.loaded.native_size, self.multiple), multiple_of(max(h, w), self.multiple))
        grid = TileGrid(w, h, tile, min(p["tile_overlap"], tile // 2))
        s = self.sampling
        scheduler = self.loaded.entry.family.scheduler(s, self.loaded.scheduler_config)
        steps = img2img_calls(scheduler, inference_steps(s.steps, p["strength"], p["exact_steps"]), p["strength"])
        blender = TileBlender(grid, 1)
        single = dataclasses.replace(self.sampling, batch=1)
        boxes = grid.boxes()
        for i, box in enumerate(boxes):
            self.ctx.check_cancelled()
            src = np.ascontiguousarray(masks.crop(rgb, box))
            gw, gh = multiple_of(box.width, self.multiple), multiple_of(box.height, self.multiple)
            out, _ = denoise(self.loaded, "img2img", single, self.ctx, width=gw, height=gh, image=to_pil(resize_rgb(src, gw, gh)),
                             strength=p["strength"], exact_steps=p["exact_steps"], previews=self.previews(box),
                             stage="refining", offset=i * steps, total=len(boxes) * steps)
            blender.add(box, resize_rgb(out[0], box.width, box.height))
        return blender.result()


def _opaque(rgb: np.ndarray) -> np.ndarray:
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
